import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, get, patch, post } from "../helpers/client";
import { createOrg, createUser, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import { spyD1 } from "../helpers/binding-spies";

const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;
const bookmarkOf = (res: { headers: Headers }) => res.headers.get("x-d1-bookmark");
const orgCount = async (name: string) => (await env.DB.prepare("select count(*) as n from organizations where name = ?").bind(name).first<{ n: number }>())!.n;

describe("X-D1-Bookmark on responses", () => {
  it("a read that touches D1 carries the session's bookmark, on a session started anywhere", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const spy = spyD1();
    const res = await get(`/v1/organizations/${org.id}`, { token: user.accessToken, env: { DB: spy.binding } });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBeGreaterThan(0);
    expect(bookmarkOf(res)).toMatch(BOOKMARK);
    expect(spy.starts).toEqual(["first-unconstrained"]);
  });

  it("a write carries one too, on a session started at the primary", async () => {
    const user = await createUser();
    const spy = spyD1();
    const res = await post("/v1/organizations", { name: `Bookmarked ${unique()}` }, { token: user.accessToken, env: { DB: spy.binding } });
    expect(res.status, res.text).toBe(201);
    expect(bookmarkOf(res)).toMatch(BOOKMARK);
    expect(spy.starts).toEqual(["first-primary"]);
  });

  it("SCIM reads start at the primary: identity providers cannot carry a bookmark and read right after they write", async () => {
    const spy = spyD1();
    await get("/scim/v2/ServiceProviderConfig", { env: { DB: spy.binding } });
    expect(spy.starts).toEqual(["first-primary"]);
  });

  it("errors carry it as well: the reads before the failure moved the session", async () => {
    const user = await createUser();
    const res = await get("/v1/organizations/org_00000000000000000000000000", { token: user.accessToken });
    expect(res.status).toBe(404);
    expect(bookmarkOf(res)).toMatch(BOOKMARK);
  });

  it("a request that never reaches D1 echoes the bookmark it was sent, and has none without one", async () => {
    const seed = bookmarkOf(await get("/v1/me/organizations", { token: (await createUser()).accessToken }))!;
    expect(seed).toMatch(BOOKMARK);
    const echoed = await get("/healthz", { headers: { "X-D1-Bookmark": seed } });
    expect(echoed.cost.queries).toBe(0);
    expect(bookmarkOf(echoed)).toBe(seed);
    const fresh = await get("/healthz");
    expect(bookmarkOf(fresh)).toBeNull();
  });

  it("is readable cross-origin: exposed on responses and allowed on requests", async () => {
    const res = await get("/healthz", { headers: { Origin: "http://app.test" } });
    expect(res.headers.get("access-control-expose-headers")?.toLowerCase()).toContain("x-d1-bookmark");
    const preflight = await api("OPTIONS", "/v1/organizations", {
      headers: { Origin: "http://app.test", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, x-d1-bookmark" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-d1-bookmark");
  });
});

describe("resuming from a bookmark", () => {
  it("a request that sends a bookmark is served from a session started at it", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const sent = bookmarkOf(await get(`/v1/organizations/${org.id}`, { token: user.accessToken }))!;
    for (const method of ["GET", "PATCH"] as const) {
      const spy = spyD1();
      const body = method === "PATCH" ? { description: unique("d") } : undefined;
      const res = await api(method, `/v1/organizations/${org.id}`, {
        token: user.accessToken,
        body,
        headers: { "X-D1-Bookmark": sent },
        env: { DB: spy.binding },
      });
      expect(res.status, res.text).toBe(200);
      expect(spy.starts).toEqual([sent]);
      // D1 bookmarks sort oldest to newest; a session never goes back before where it started.
      expect(bookmarkOf(res)! >= sent).toBe(true);
    }
  });

  it("writes move the bookmark forward, and a read resumed from it sees the write", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const before = bookmarkOf(await get(`/v1/organizations/${org.id}`, { token: user.accessToken }))!;
    const name = `Renamed ${unique()}`;
    const write = await patch(`/v1/organizations/${org.id}`, { name }, { token: user.accessToken, headers: { "X-D1-Bookmark": before } });
    expect(write.status, write.text).toBe(200);
    const after = bookmarkOf(write)!;
    expect(after).toMatch(BOOKMARK);
    expect(after > before).toBe(true);
    const read = await get(`/v1/organizations/${org.id}`, { token: user.accessToken, headers: { "X-D1-Bookmark": after } });
    expect(read.body.name).toBe(name);
    expect(bookmarkOf(read)! >= after).toBe(true);
  });

  it("an empty header is no bookmark, as a client that stored none would send", async () => {
    const user = await createUser();
    const spy = spyD1();
    const res = await get("/v1/me/organizations", { token: user.accessToken, headers: { "X-D1-Bookmark": " " }, env: { DB: spy.binding } });
    expect(res.status, res.text).toBe(200);
    expect(spy.starts).toEqual(["first-unconstrained"]);
  });
});

describe("bookmarks the API cannot use", () => {
  const malformed = [
    "garbage",
    "first-primary",
    "first-unconstrained",
    "00000000-0000000G-00000000-00000000000000000000000000000000",
    "00000000-0000000A-00000000-00000000000000000000000000000000",
    "0000000000000000",
    `00000000-${"0".repeat(65)}`,
    "00000000-00000001, 00000000-00000002",
    "00000000--00000001",
  ];

  it("a malformed bookmark is 400 validation_failed naming the header, before any handler runs", async () => {
    const user = await createUser();
    for (const bookmark of malformed) {
      const spy = spyD1();
      const name = `Never ${unique()}`;
      const res = await post(
        "/v1/organizations",
        { name },
        { token: user.accessToken, headers: { "X-D1-Bookmark": bookmark, Origin: "https://app.example.com" }, env: { DB: spy.binding } },
      );
      expectProblem(res, 400, "validation_failed");
      // After CORS: a browser can read the refusal.
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(errorPaths(res)).toEqual(["X-D1-Bookmark"]);
      expect(bookmarkOf(res)).toBeNull();
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.cost.queries).toBe(0);
      expect(spy.starts).toEqual([]);
      expect(await orgCount(name)).toBe(0);
    }
  });

  it("locally, a well-formed bookmark the database never issued is served (workerd passes it on, no replica checks it)", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const past = "00000000-00000000-00000000-00000000000000000000000000000000";
    const res = await get(`/v1/organizations/${org.id}`, { token: user.accessToken, headers: { "X-D1-Bookmark": past } });
    expect(res.status, res.text).toBe(200);
    expect(bookmarkOf(res)! > past).toBe(true);
  });

  it("a bookmark D1 refuses restarts the session at the primary: 200, and the client gets a good bookmark back", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const unknown = "ffffffff-ffffffff-ffffffff-ffffffffffffffffffffffffffffffff";
    const spy = spyD1((start) => start === unknown);
    const read = await get(`/v1/organizations/${org.id}`, { token: user.accessToken, headers: { "X-D1-Bookmark": unknown }, env: { DB: spy.binding } });
    expect(read.status, read.text).toBe(200);
    expect(read.body.id).toBe(org.id);
    expect(spy.starts).toEqual([unknown, "first-primary"]);
    expect(bookmarkOf(read)).toMatch(BOOKMARK);
    expect(bookmarkOf(read)).not.toBe(unknown);

    const spyWrite = spyD1((start) => start === unknown);
    const name = `Once ${unique()}`;
    const write = await post("/v1/organizations", { name }, { token: user.accessToken, headers: { "X-D1-Bookmark": unknown }, env: { DB: spyWrite.binding } });
    expect(write.status, write.text).toBe(201);
    expect(spyWrite.starts).toEqual([unknown, "first-primary"]);
    expect(await orgCount(name)).toBe(1);
  });
});
