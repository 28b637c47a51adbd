#!/usr/bin/env node
// `npm run dev:resolver -- <name>=<value> … [--file records.json] [--port 8788]`
//
// A tiny DNS-over-HTTPS resolver (the JSON API: GET /dns-query?name=&type=TXT) for local
// development, so a person running `npm run dev` can verify a domain without publishing a real
// DNS record. It answers TXT questions from the records given on the command line or in a JSON
// file (`{"<name>": "<value>" | ["<value>", …]}`); every other name is NXDOMAIN. Point the API
// at it with `DOH_RESOLVER_URL=http://127.0.0.1:8788/dns-query` in .dev.vars. Development only:
// it listens on 127.0.0.1.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";

const TXT = 16;
const records = new Map();
let port = Number(process.env.PORT ?? 8788);

const normalize = (name) => String(name).trim().toLowerCase().replace(/\.$/, "");
function add(name, value) {
  const key = normalize(name);
  if (!key) throw new Error("a record needs a name");
  records.set(key, [...(records.get(key) ?? []), String(value)]);
}
function addFile(file) {
  const parsed = JSON.parse(readFileSync(file, "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: expected {"<name>": "<value>" | ["<value>", …]}`);
  for (const [name, value] of Object.entries(parsed)) for (const v of Array.isArray(value) ? value : [value]) add(name, v);
}

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--help" || arg === "-h") {
    console.log("usage: npm run dev:resolver -- [<name>=<value> …] [--file records.json] [--port 8788]");
    process.exit(0);
  } else if (arg === "--file") addFile(args[++i]);
  else if (arg.startsWith("--file=")) addFile(arg.slice("--file=".length));
  else if (arg === "--port") port = Number(args[++i]);
  else if (arg.startsWith("--port=")) port = Number(arg.slice("--port=".length));
  else {
    const eq = arg.indexOf("=");
    if (eq <= 0) {
      console.error(`dev-resolver: expected <name>=<value>, got ${JSON.stringify(arg)}`);
      process.exit(2);
    }
    add(arg.slice(0, eq), arg.slice(eq + 1));
  }
}
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error("dev-resolver: --port must be 1-65535");
  process.exit(2);
}

// A TXT record's data in zone-file form, as public resolvers return it: quoted strings of at
// most 255 bytes each, with `"` and `\` escaped.
function txtData(value) {
  const chunks = [];
  for (let rest = value; chunks.length === 0 || rest.length > 0; rest = rest.slice(255)) chunks.push(rest.slice(0, 255));
  return chunks.map((c) => `"${c.replace(/[\\"]/g, (m) => `\\${m}`)}"`).join(" ");
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  const send = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/dns-json", "Cache-Control": "no-store" });
    res.end(JSON.stringify(body));
  };
  if (req.method !== "GET" || url.pathname !== "/dns-query") return send(404, { error: "use GET /dns-query?name=<name>&type=TXT" });
  const name = normalize(url.searchParams.get("name") ?? "");
  const type = (url.searchParams.get("type") ?? "A").toUpperCase();
  if (!name) return send(400, { error: "name is required" });
  const question = [{ name: `${name}.`, type: type === "TXT" || type === "16" ? TXT : type }];
  const values = records.get(name);
  const base = { TC: false, RD: true, RA: true, AD: false, CD: false, Question: question };
  let answer;
  if (!values) answer = { Status: 3, ...base };
  else if (type !== "TXT" && type !== "16") answer = { Status: 0, ...base };
  else answer = { Status: 0, ...base, Answer: values.map((v) => ({ name: `${name}.`, type: TXT, TTL: 60, data: txtData(v) })) };
  console.log(`dev-resolver: ${type} ${name} -> ${values ? `${values.length} record(s)` : "NXDOMAIN"}`);
  send(200, answer);
});

server.listen(port, "127.0.0.1", () => {
  console.log(`dev-resolver: DNS-over-HTTPS (JSON) on http://127.0.0.1:${port}/dns-query`);
  console.log(`dev-resolver: set DOH_RESOLVER_URL=http://127.0.0.1:${port}/dns-query in .dev.vars and restart npm run dev`);
  for (const [name, values] of records) for (const v of values) console.log(`  TXT ${name} ${JSON.stringify(v)}`);
  if (records.size === 0) console.log("  (no records: every name is NXDOMAIN)");
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
