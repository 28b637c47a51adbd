import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../src/lib/errors";
import { get } from "../helpers/client";
import { expectProblem } from "../helpers/problems";

const API_BASE_URL = "http://api.test";

/** Every `src` and `href` the HTML names. */
const urlsIn = (page: string) => [...page.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!.replaceAll("&amp;", "&"));

/** The directives of a CSP header, by name. */
const cspOf = (header: string | null) =>
  new Map(
    (header ?? "")
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...sources]) => [name!, sources]),
  );

describe("/docs", () => {
  it("loads Swagger UI and its settings from this origin, under a CSP that names no other", async () => {
    const res = await get("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.text).toContain('<div id="swagger-ui">');
    expect(res.text).not.toMatch(/https?:\/\//);
    const urls = urlsIn(res.text);
    expect(urls).toEqual(expect.arrayContaining([expect.stringMatching(/^\/docs\/assets\/swagger-ui-bundle\.js\?v=\d+\.\d+\.\d+$/)]));
    for (const url of urls) expect(url, "same-origin path").toMatch(/^\/(?!\/)/);

    const csp = cspOf(res.headers.get("content-security-policy"));
    expect(csp.get("default-src")).toEqual(["'none'"]);
    expect(csp.get("script-src")).toEqual(["'self'"]);
    expect(csp.get("style-src")).toEqual(["'self'"]);
    expect(csp.get("img-src")).toEqual(["'self'", "data:"]);
    // Try-it-out calls the API's public base URL (here the page's own origin).
    expect(csp.get("connect-src")).toEqual(["'self'", API_BASE_URL]);
    expect(csp.get("frame-ancestors")).toEqual(["'none'"]);
    expect(res.headers.get("content-security-policy")).not.toMatch(/unsafe-(inline|eval)/);
  });

  it("serves every asset the page names with its content type and cache policy", async () => {
    const page = await get("/docs");
    const assets = urlsIn(page.text).filter((u) => u.startsWith("/docs/assets/"));
    expect(assets.map((u) => u.replace(/\?.*/, "")).sort()).toEqual(
      ["/docs/assets/docs.css", "/docs/assets/docs.js", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"].sort(),
    );
    for (const url of assets) {
      const res = await get(url);
      expect(res.status, url).toBe(200);
      expect(res.headers.get("content-type"), url).toBe(url.includes(".js?") ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8");
      // The renderer's URLs carry its version, so they never change: cached for good. Ours, briefly.
      const renderer = url.includes("swagger-ui");
      expect(res.headers.get("cache-control"), url).toBe(renderer ? "public, max-age=31536000, immutable" : "public, max-age=300");
      expect(res.cost.queries, url).toBe(0);
    }
    const bundle = await get(assets.find((u) => u.includes("swagger-ui-bundle.js"))!);
    expect(bundle.text.length).toBeGreaterThan(1_000_000);
    expect(bundle.text).toContain("SwaggerUIBundle");
    const settings = await get("/docs/assets/docs.js");
    expect(settings.text).toContain('url: "/openapi.json"');
    // Swagger UI's default would send the document to an outside validator.
    expect(settings.text).toContain("validatorUrl: null");
  });

  it("answers an unknown asset with a 404 problem, prototype names included", async () => {
    for (const name of ["nope.js", "constructor", "__proto__", "toString"]) {
      expectProblem(await get(`/docs/assets/${name}`), 404, "not_found");
    }
  });

  it("keeps default-src 'none' on the API's own responses", async () => {
    for (const path of ["/healthz", "/openapi.json", "/v1/nothing-here"]) {
      const res = await get(path);
      expect(res.headers.get("content-security-policy"), path).toBe("default-src 'none'; frame-ancestors 'none'");
    }
  });
});

describe("/openapi.json", () => {
  it("links every error code to the catalogue and gives each an example body that resolves", async () => {
    const doc = (await get("/openapi.json")).body;
    const examples = doc.components.examples as Record<string, { value: Record<string, unknown> }>;
    expect(Object.keys(examples).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, { value }] of Object.entries(examples)) {
      expect(value).toMatchObject({ type: `${API_BASE_URL}/docs/problems#${code}`, code, status: ERROR_CODES[code as keyof typeof ERROR_CODES].status });
    }
    let seen = 0;
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
          const problem = response.content?.["application/problem+json"];
          if (!problem) continue;
          const where = `${method} ${path} ${status}`;
          const codes = Object.keys(problem.examples);
          expect(codes.length, where).toBeGreaterThan(0);
          for (const code of codes) {
            seen++;
            expect(problem.examples[code], where).toEqual({ $ref: `#/components/examples/${code}` });
            expect(String(ERROR_CODES[code as keyof typeof ERROR_CODES].status), where).toBe(status);
            expect(response.description, where).toContain(`[\`${code}\`](/docs/problems#${code})`);
          }
        }
      }
    }
    expect(seen).toBeGreaterThan(100);
    expect(doc.info.description).toContain("(/docs/problems)");
  });
});

describe("/docs/problems", () => {
  it("lists every code once, with its status, title and what to do, under an anchor named by the code", async () => {
    const res = await get("/docs/problems");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.text).not.toMatch(/<script/);
    for (const [code, { status, title }] of Object.entries(ERROR_CODES)) {
      const rows = [...res.text.matchAll(new RegExp(`<tr id="${code}">([\\s\\S]*?)</tr>`, "g"))];
      expect(rows.length, code).toBe(1);
      const cells = [...rows[0]![1]!.matchAll(/<td>([\s\S]*?)<\/td>/g)].map((m) => m[1]!.trim());
      expect(cells[0], code).toContain(`href="#${code}"`);
      expect(cells[1], code).toBe(String(status));
      expect(cells[2], code).toBe(title.replaceAll("'", "&#39;"));
      expect(cells[3]!.length, code).toBeGreaterThan(10);
    }
    expect(res.text.match(/<tr id=/g)).toHaveLength(Object.keys(ERROR_CODES).length);
  });

  it("escapes what it shows and renders backticks as code", async () => {
    const res = await get("/docs/problems");
    // `unauthenticated` says to send `Authorization: Bearer <token>`.
    expect(res.text).toContain("<code>Authorization: Bearer &lt;token&gt;</code>");
    expect(res.text).not.toContain("`");
  });

  it("is where a real problem's type points", async () => {
    const problem = expectProblem(await get("/v1/nothing-here"), 404, "not_found");
    expect(problem.type).toBe(`${API_BASE_URL}/docs/problems#not_found`);
    const url = new URL(problem.type);
    expect(url.origin).toBe(API_BASE_URL);
    const page = await get(url.pathname);
    expect(page.status).toBe(200);
    expect(page.text).toContain(`id="${url.hash.slice(1)}"`);
  });

  it("follows API_BASE_URL, and the request's origin when the configuration cannot be read", async () => {
    const elsewhere = await get("/v1/nothing-here", { env: { API_BASE_URL: "https://api.example.com/" } });
    expect(elsewhere.body.type).toBe("https://api.example.com/docs/problems#not_found");
    const misconfigured = await get("/healthz", { env: { JWT_SIGNING_KEYS: "" } });
    expect(misconfigured.body).toMatchObject({ code: "internal", type: `${API_BASE_URL}/docs/problems#internal` });
  });

  it("leaves SCIM's RFC 7644 error body without a type", async () => {
    const res = await get("/scim/v2/Users");
    expect(res.status).toBe(401);
    expect(res.body.schemas).toEqual(["urn:ietf:params:scim:api:messages:2.0:Error"]);
    expect(res.body.type).toBeUndefined();
  });
});
