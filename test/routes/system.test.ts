import { describe, expect, it } from "vitest";
import { api, get, post } from "../helpers/client";

describe("happy", () => {
  it("GET /healthz answers with the build version and cost headers", async () => {
    const res = await get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok", version: "dev" });
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(res.headers.get("server-timing")).toMatch(/^db;dur=\d+;desc="queries=0 rows_read=0 statements=0", kv;desc="reads=0 writes=0"/);
    expect(res.cost).toEqual({ queries: 0, rowsRead: 0, statements: 0, kvReads: 0, kvWrites: 0 });
  });

  it("/healthz and /.well-known/* ignore a query string (a monitor's cache-buster); a /v1 route names an undeclared parameter", async () => {
    expect((await get("/healthz?ts=1733050000")).status).toBe(200);
    expect((await get("/.well-known/jwks.json?nocache=1")).status).toBe(200);
    expect((await get("/.well-known/openid-configuration?x=1")).status).toBe(200);
    const strict = await get("/v1/sso/discover?email=a%40example.com&fliter=1");
    expect(strict.status).toBe(400);
    expect(strict.body.errors).toContainEqual({ path: "fliter", message: "unknown query parameter" });
  });

  it("publishes the verification keys without private parts", async () => {
    const res = await get("/.well-known/jwks.json");
    expect(res.status).toBe(200);
    expect(res.body.keys.length).toBeGreaterThan(0);
    for (const k of res.body.keys) {
      expect(k).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
      expect(k.kid).toBeTruthy();
      expect(k.d).toBeUndefined();
    }
  });

  it("serves an OpenAPI 3.1 document where every operation states its authorization", async () => {
    const res = await get("/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    const ops = Object.entries(res.body.paths as Record<string, Record<string, any>>).flatMap(([p, item]) =>
      Object.entries(item).map(([m, op]) => ({ p, m, op })),
    );
    expect(ops.length).toBeGreaterThan(20);
    for (const { p, m, op } of ops) {
      expect(op["x-authorization"], `${m} ${p}`).toBeTruthy();
      expect(op.responses, `${m} ${p}`).toBeTruthy();
    }
    // Scopes are documented per route.
    const getOrg = res.body.paths["/v1/organizations/{org_id}"].get;
    expect(getOrg["x-authorization"]).toEqual({ kind: "org", permission: "organization:read", scope: "organization:read" });
    expect(res.body.info.description).toContain("| `admin` |");
  });

  it("renders /docs from /openapi.json with scripts from its own origin only (test/routes/docs.test.ts has the rest)", async () => {
    const res = await get("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    const scripts = [...res.text.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]);
    expect(scripts.length).toBeGreaterThan(0);
    for (const src of scripts) expect(src).toMatch(/^\/docs\/assets\//);
    expect(res.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
  });

  it("echoes a valid X-Request-Id and uses it in problem bodies", async () => {
    const res = await get("/v1/nothing-here", { headers: { "X-Request-Id": "abc.DEF-123_x" } });
    expect(res.headers.get("x-request-id")).toBe("abc.DEF-123_x");
    expect(res.body.request_id).toBe("abc.DEF-123_x");
  });

  it("answers CORS preflights and exposes the cost headers", async () => {
    const res = await api("OPTIONS", "/v1/me", {
      headers: { Origin: "https://app.example.com", "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,content-type" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-methods")).toContain("PATCH");
    const normal = await get("/healthz", { headers: { Origin: "https://app.example.com" } });
    expect(normal.headers.get("access-control-expose-headers")).toContain("Server-Timing");
  });

  it("restricts CORS to the configured origins when there are some", async () => {
    const env = { CORS_ORIGINS: "https://app.example.com" };
    const ok = await get("/healthz", { headers: { Origin: "https://app.example.com" }, env });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const other = await get("/healthz", { headers: { Origin: "https://evil.example" }, env });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("sets security headers on every response", async () => {
    const res = await get("/healthz");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("cache-control")).toBe("no-store");
  });
});

describe("errors", () => {
  it("answers unknown routes with a 404 problem", async () => {
    const res = await get("/v1/nothing-here");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/problem+json");
    expect(res.body).toMatchObject({ status: 404, code: "not_found", errors: [] });
    expect(res.body.request_id).toBe(res.headers.get("x-request-id"));
  });

  it("answers a known path with the wrong method with 405 and Allow", async () => {
    const res = await api("DELETE", "/healthz");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
    expect(res.body.code).toBe("method_not_allowed");
    const withParam = await api("PUT", "/v1/organizations/org_01M84XG0E82E0H722F3WTQPDTC");
    expect(withParam.status).toBe(405);
    expect(withParam.headers.get("allow")).toContain("PATCH");
  });

  it.each([["x y"], ["a".repeat(129)], ["<script>"]])("replaces an invalid X-Request-Id %#", async (id) => {
    const res = await get("/healthz", { headers: { "X-Request-Id": id } });
    expect(res.headers.get("x-request-id")).toMatch(/^req_[0-9a-f]{32}$/);
  });

  it("refuses bodies over 1 MiB with 413, by header and by stream", async () => {
    const big = JSON.stringify({ email: "a@b.co", password: "x".repeat(1024 * 1024), display_name: "x" });
    const res = await api("POST", "/v1/auth/signup", { raw: big, headers: { "Content-Type": "application/json" } });
    expect(res.status).toBe(413);
    expect(res.body.code).toBe("payload_too_large");
  });

  it("maps malformed JSON, wrong media types and wrong shapes to 4xx problems", async () => {
    const bad = await api("POST", "/v1/auth/login", { raw: "{nope", headers: { "Content-Type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe("malformed_json");
    const media = await api("POST", "/v1/auth/login", { raw: "email=a", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    expect(media.status).toBe(415);
    expect(media.body.code).toBe("unsupported_media_type");
    const shape = await post("/v1/auth/login", [1, 2]);
    expect(shape.status).toBe(400);
    expect(shape.body.code).toBe("validation_failed");
    const missing = await api("POST", "/v1/auth/login");
    expect(missing.status).toBe(400);
    expect(missing.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(["email", "password"]);
    expect(missing.body.errors[0].message).toBe("is required");
  });

  it("fails loudly, without leaking, when the worker is misconfigured", async () => {
    const res = await get("/healthz", { env: { JWT_SIGNING_KEYS: "" } });
    expect(res.status).toBe(500);
    expect(res.body.code).toBe("internal");
    expect(res.text).not.toContain("JWT_SIGNING_KEYS");
  });
});
