/**
 * A self-contained page that renders /openapi.json: no CDN, so it works offline under
 * `npm run dev` and under a strict CSP.
 */
export const DOCS_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tenancy API</title>
<style>
body{font:14px/1.5 system-ui,sans-serif;margin:0;display:flex}nav{width:300px;height:100vh;overflow:auto;border-right:1px solid #ddd;padding:12px;box-sizing:border-box;position:sticky;top:0}
main{flex:1;padding:16px 32px;max-width:1000px}h2{border-bottom:1px solid #eee}.op{border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:8px 12px}
.m{display:inline-block;min-width:56px;font-weight:bold;text-transform:uppercase}.get{color:#0a7}.post{color:#07c}.patch,.put{color:#c70}.delete{color:#c22}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}nav a{display:block;color:#333;text-decoration:none;font-size:12px}code{background:#f2f2f2;padding:0 3px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px}
</style></head><body><nav id="nav"></nav><main id="main">Loading /openapi.json…</main>
<script>
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const md = (s) => esc(s).replace(/\`([^\`]+)\`/g, "<code>$1</code>").replace(/\\n/g, "<br>");
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const main = document.getElementById("main"), nav = document.getElementById("nav");
  let html = "<h1>" + esc(doc.info.title) + " <small>" + esc(doc.info.version) + "</small></h1><p>" + md(doc.info.description) + "</p>";
  let links = "";
  const byTag = {};
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const tag = (op.tags && op.tags[0]) || "Other"; (byTag[tag] ||= []).push({ path, method, op });
  }
  let n = 0;
  for (const [tag, ops] of Object.entries(byTag)) {
    html += "<h2>" + esc(tag) + "</h2>";
    for (const { path, method, op } of ops) {
      const id = "op" + n++;
      links += '<a href="#' + id + '"><span class="m ' + method + '">' + method + "</span>" + esc(path) + "</a>";
      html += '<div class="op" id="' + id + '"><div><span class="m ' + method + '">' + method + "</span> <b>" + esc(path) + "</b> — " + esc(op.summary) + "</div>";
      if (op.description) html += "<p>" + md(op.description) + "</p>";
      if (op["x-authorization"]) html += "<p>Authorization: <code>" + esc(JSON.stringify(op["x-authorization"])) + "</code></p>";
      if (op.parameters) html += "<p>Parameters: " + op.parameters.map((p) => "<code>" + esc(p.name) + "</code> (" + esc(p.in) + ")").join(", ") + "</p>";
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      if (body) html += "<details><summary>Request body</summary><pre>" + esc(JSON.stringify(body.schema, null, 2)) + "</pre></details>";
      html += "<details><summary>Responses</summary><pre>" + esc(JSON.stringify(op.responses, null, 2)) + "</pre></details></div>";
    }
  }
  nav.innerHTML = links; main.innerHTML = html;
}).catch((e) => { document.getElementById("main").textContent = "Could not load /openapi.json: " + e; });
</script></body></html>`;
