import { describe, expect, it } from "vitest";
import { get } from "../helpers/client";

// The pages run in a real browser in test/browser; here, only what the worker answers.
const PAGES = ["/invitations/accept?token=inv_secret_from_the_email", "/verify-email?token=vfy_secret_from_the_email", "/sso/callback?code=ssoc_secret_code"];
/** APP_BASE_URL is the API itself, as under `npm run dev`. */
const hosted = { env: { APP_BASE_URL: "http://api.test", API_BASE_URL: "http://api.test" } };

describe("happy", () => {
  it.each(PAGES)("%s: a page when APP_BASE_URL is the API", async (path) => {
    const res = await get(path, hosted);
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.text.startsWith("<!doctype html>")).toBe(true);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    // Pages read nothing from the database: the script calls the API.
    expect(res.cost.queries).toBe(0);
  });
});

describe("errors", () => {
  it.each(PAGES)("%s: 404 when a front end of its own owns APP_BASE_URL", async (path) => {
    const res = await get(path);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe("not_found");
  });

  it("404 when APP_BASE_URL is a path under the API's origin (the links would not land here)", async () => {
    const res = await get(PAGES[0]!, { env: { APP_BASE_URL: "http://api.test/app", API_BASE_URL: "http://api.test" } });
    expect(res.status).toBe(404);
  });
});

describe("security", () => {
  it.each(PAGES)("%s: CSP allows only the page's own nonce'd script and style, and the API", async (path) => {
    const [a, b] = [await get(path, hosted), await get(path, hosted)];
    const csp = a.headers.get("content-security-policy")!;
    const nonce = /script-src 'nonce-([A-Za-z0-9_-]{22})'/.exec(csp)?.[1];
    expect(nonce, csp).toBeTruthy();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("form-action 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe");
    const nonces = [...a.text.matchAll(/nonce="([^"]+)"/g)].map((m) => m[1]);
    expect(nonces.length).toBe(2);
    expect(new Set(nonces)).toEqual(new Set([nonce]));
    expect(b.headers.get("content-security-policy")).not.toContain(nonce);
  });

  it.each(PAGES)("%s: the token or code in the link is not echoed into the page", async (path) => {
    const res = await get(path, hosted);
    expect(res.text).not.toContain("secret");
  });

  it("markup in the query stays out of the page", async () => {
    const res = await get(`/invitations/accept?token=${encodeURIComponent('"><script>alert(1)</script>')}`, hosted);
    expect(res.text).not.toContain("alert(1)");
  });
});
