import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decryptString } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { proxyPasswordAad } from "../../src/routes/proxies/proxies.service";
import { api, del, get, patch, post, put, testEnv } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const PRX_ID = /^prx_[0-9A-HJKMNP-TV-Z]{26}$/;

const proxiesPath = (orgId: string) => `/v1/organizations/${orgId}/proxies`;
const defaultPath = (orgId: string) => `${proxiesPath(orgId)}/default`;

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

type Proxy = {
  id: string;
  name: string;
  url: string;
  username: string | null;
  password_set: boolean;
  default: boolean;
  created_at: string;
  updated_at: string;
};

async function createProxy(caller: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(proxiesPath(orgId), { name: `proxy ${unique()}`, url: "http://proxy.example.com:3128", ...body }, { token: caller.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as Proxy;
}

const row = (id: string) => env.DB.prepare("select * from proxies where id = ?").bind(id).first<Record<string, unknown>>();

/** Every console line the worker writes during a test, to prove no secret is logged. */
let logged: string[] = [];
beforeEach(() => {
  logged = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

describe("happy", () => {
  it("POST creates a proxy; the password is sealed, never returned, never logged", async () => {
    const { admin, org } = await adminAndOrg();
    const password = `pw-${unique()}-secret`;
    const res = await post(proxiesPath(org.id), { name: "Office", url: "socks5://10.0.0.1:1080", username: "alice", password }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(PRX_ID),
      name: "Office",
      url: "socks5://10.0.0.1:1080",
      username: "alice",
      password_set: true,
      default: false,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(res.text).not.toContain(password);

    const stored = await row(res.body.id);
    expect(stored!.password_ciphertext).toMatch(/^v1\./);
    for (const value of Object.values(stored!)) expect(String(value)).not.toContain(password);
    // Sealed for this organization and proxy only.
    expect(await decryptString(testEnv().ENCRYPTION_KEY!, String(stored!.password_ciphertext), proxyPasswordAad(org.id, res.body.id))).toBe(password);
    await expect(decryptString(testEnv().ENCRYPTION_KEY!, String(stored!.password_ciphertext), proxyPasswordAad(org.id, newId("proxy")))).rejects.toThrow();

    const one = await get(`${proxiesPath(org.id)}/${res.body.id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(res.body);
    const list = await get(proxiesPath(org.id), { token: admin.accessToken });
    expect(list.body.items).toEqual([res.body]);
    for (const r of [one, list]) expect(r.text).not.toContain(password);
    expect(logged.join("\n")).not.toContain(password);
  });

  it("accepts http, https and socks5 URLs with a host, an optional port and a bare trailing slash", async () => {
    const { admin, org } = await adminAndOrg();
    for (const url of ["http://proxy.example.com", "https://proxy.example.com:8443/", "socks5://[::1]:1080", "HTTP://Proxy.Example.com:3128"]) {
      const p = await createProxy(admin, org.id, { url });
      expect(p.url).toBe(url);
      expect(p).toMatchObject({ username: null, password_set: false, default: false });
    }
  });

  it("PATCH changes fields; password: null clears it; omitted fields are unchanged", async () => {
    const { admin, org } = await adminAndOrg();
    const password = `pw-${unique()}`;
    const p = await createProxy(admin, org.id, { username: "bob", password });
    const renamed = await patch(`${proxiesPath(org.id)}/${p.id}`, { name: "Renamed", url: "https://other.example.com:443" }, { token: admin.accessToken });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body).toMatchObject({
      id: p.id,
      name: "Renamed",
      url: "https://other.example.com:443",
      username: "bob",
      password_set: true,
      created_at: p.created_at,
    });
    expect(Date.parse(renamed.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(p.updated_at));
    const sealed = (await row(p.id))!.password_ciphertext;

    const newPassword = `pw2-${unique()}`;
    const rotated = await patch(`${proxiesPath(org.id)}/${p.id}`, { password: newPassword }, { token: admin.accessToken });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.text).not.toContain(newPassword);
    const resealed = (await row(p.id))!.password_ciphertext;
    expect(resealed).not.toBe(sealed);
    expect(await decryptString(testEnv().ENCRYPTION_KEY!, String(resealed), proxyPasswordAad(org.id, p.id))).toBe(newPassword);

    const cleared = await patch(`${proxiesPath(org.id)}/${p.id}`, { password: null, username: null }, { token: admin.accessToken });
    expect(cleared.status, cleared.text).toBe(200);
    expect(cleared.body).toMatchObject({ username: null, password_set: false });
    expect((await row(p.id))!.password_ciphertext).toBeNull();

    const same = await patch(`${proxiesPath(org.id)}/${p.id}`, {}, { token: admin.accessToken });
    expect(same.status, same.text).toBe(200);
    expect(same.body).toEqual(cleared.body);
    expect(logged.join("\n")).not.toContain(password);
    expect(logged.join("\n")).not.toContain(newPassword);
  });

  it("default: none → set → switch → re-set (idempotent) → clear", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const none = await get(defaultPath(org.id), t);
    expect(none.status, none.text).toBe(200);
    expect(none.body).toEqual({ proxy: null });

    const a = await createProxy(admin, org.id);
    const b = await createProxy(admin, org.id);
    const setA = await put(defaultPath(org.id), { proxy_id: a.id }, t);
    expect(setA.status, setA.text).toBe(200);
    expect(setA.body.proxy).toMatchObject({ id: a.id, default: true });
    expect((await get(defaultPath(org.id), t)).body).toEqual(setA.body);
    expect((await get(`${proxiesPath(org.id)}/${a.id}`, t)).body.default).toBe(true);

    const setB = await put(defaultPath(org.id), { proxy_id: b.id }, t);
    expect(setB.status, setB.text).toBe(200);
    expect(setB.body.proxy).toMatchObject({ id: b.id, default: true });
    const list = await get(proxiesPath(org.id), t);
    expect(list.body.items.map((p: Proxy) => [p.id, p.default])).toEqual([
      [a.id, false],
      [b.id, true],
    ]);

    const again = await put(defaultPath(org.id), { proxy_id: b.id }, t);
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual(setB.body);

    const cleared = await put(defaultPath(org.id), { proxy_id: null }, t);
    expect(cleared.status, cleared.text).toBe(200);
    expect(cleared.body).toEqual({ proxy: null });
    expect((await get(defaultPath(org.id), t)).body).toEqual({ proxy: null });
    const { results } = await env.DB.prepare("select id from proxies where organization_id = ? and is_default = 1").bind(org.id).all();
    expect(results).toEqual([]);
    // Clearing when nothing is set is fine too.
    expect((await put(defaultPath(org.id), { proxy_id: null }, t)).status).toBe(200);
  });

  it("GET /proxies/default costs one round trip and reads at most one proxy row", async () => {
    const { admin, org } = await adminAndOrg();
    for (let i = 0; i < 5; i++) await createProxy(admin, org.id);
    const p = await createProxy(admin, org.id);
    await put(defaultPath(org.id), { proxy_id: p.id }, { token: admin.accessToken });
    const res = await get(defaultPath(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.proxy.id).toBe(p.id);
    expect(res.cost.queries).toBe(1);
    const baseline = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(res.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(2);
  });

  it("deleting the default proxy clears the default", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProxy(admin, org.id);
    await put(defaultPath(org.id), { proxy_id: p.id }, t);
    const res = await del(`${proxiesPath(org.id)}/${p.id}`, t);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expect((await get(defaultPath(org.id), t)).body).toEqual({ proxy: null });
    expectProblem(await get(`${proxiesPath(org.id)}/${p.id}`, t), 404, "not_found");
    expectProblem(await del(`${proxiesPath(org.id)}/${p.id}`, t), 404, "not_found");
    // A new default can be set afterwards (the partial unique index holds no stale row).
    const q = await createProxy(admin, org.id);
    expect((await put(defaultPath(org.id), { proxy_id: q.id }, t)).status).toBe(200);
  });

  it("lists in creation order across pages to the end, one round trip, rows bounded by the page", async () => {
    const { admin, org } = await adminAndOrg();
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await createProxy(admin, org.id)).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await get(`${proxiesPath(org.id)}?page_size=3${token ? `&page_token=${encodeURIComponent(token)}` : ""}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((p: Proxy) => p.id));
      token = res.body.next_page_token;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(created);
  });

  it("a page reads about page_size rows whatever the organization holds", async () => {
    const { admin, org } = await adminAndOrg();
    const now = Date.now();
    const seed = Array.from({ length: 300 }, (_, i) =>
      env.DB.prepare(
        "insert into proxies (id, organization_id, name, url, is_default, created_at, updated_at) values (?, ?, ?, 'http://p.example.com', 0, ?, ?)",
      ).bind(newId("proxy", now - 1000 + i), org.id, `p${i}`, now, now),
    );
    for (let i = 0; i < seed.length; i += 100) await env.DB.batch(seed.slice(i, i + 100));
    const small = await get(`${proxiesPath(org.id)}?page_size=5`, { token: admin.accessToken });
    expect(small.status, small.text).toBe(200);
    expect(small.body.items.length).toBe(5);
    expect(small.cost.queries).toBe(1);
    const baseline = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    // page_size + 1 proxy rows, plus what authorization reads.
    expect(small.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(5 + 1 + 2);
    const next = await get(`${proxiesPath(org.id)}?page_size=5&page_token=${encodeURIComponent(small.body.next_page_token)}`, { token: admin.accessToken });
    expect(next.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(5 + 1 + 2);
  });

  it("a user with a custom role holding proxies:read and proxies:write manages proxies", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("netops").slice(0, 30), permissions: ["proxies:read", "proxies:write"] },
      { token: admin.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const ops = await createUser();
    await addMemberDirect(org.id, ops, role.body.name);
    const p = await createProxy(ops, org.id);
    expect((await put(defaultPath(org.id), { proxy_id: p.id }, { token: ops.accessToken })).status).toBe(200);
    expect((await get(proxiesPath(org.id), { token: ops.accessToken })).status).toBe(200);
  });

  it("PATs: organization:read reads, organization:write writes", async () => {
    const { admin, org } = await adminAndOrg();
    const reader = await createPat(admin, ["organization:read"]);
    const writer = await createPat(admin, ["organization:write"]);
    const p = await createProxy({ accessToken: writer.token }, org.id);
    expect((await get(`${proxiesPath(org.id)}/${p.id}`, { token: reader.token })).status).toBe(200);
    expect((await get(defaultPath(org.id), { token: reader.token })).status).toBe(200);
  });
});

describe("errors", () => {
  it("POST validates every field and lists each bad one", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(proxiesPath(org.id), { name: "", url: 42, username: "a\nb", password: "" }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["name", "password", "url", "username"]);
    const missing = await post(proxiesPath(org.id), {}, { token: admin.accessToken });
    expectProblem(missing, 400, "validation_failed");
    expect(errorPaths(missing).sort()).toEqual(["name", "url"]);
  });

  it.each([
    ["ftp://proxy.example.com", "scheme"],
    ["socks4://proxy.example.com:1080", "scheme"],
    ["javascript:alert(1)", "scheme"],
    ["file:///etc/passwd", "scheme"],
    ["proxy.example.com:3128", "scheme"],
    ["not a url", "spaces"],
    ["http://", "absolute"],
    ["http:proxy.example.com", "host"],
    ["http:///proxy.example.com", "host"],
    ["socks5://", "host"],
    ["socks5:proxy", "host"],
    ["http://user:pass@proxy.example.com", "username/password"],
    ["http://user@proxy.example.com", "username/password"],
    ["http://@proxy.example.com", "username/password"],
    ["socks5://u:p@10.0.0.1:1080", "username/password"],
    ["http://proxy.example.com/#frag", "fragment"],
    ["http://proxy.example.com?token=abc", "query"],
    ["http://proxy.example.com/path", "path"],
    ["http://proxy.example.com\\path", "path"],
    ["http://proxy.example.com:99999", "absolute"],
    [" http://proxy.example.com", "spaces"],
    ["http://proxy.exam\nple.com", "spaces"],
    ["http://proxy.exam\tple.com", "spaces"],
    [`http://${"a".repeat(2040)}.com`, "2048"],
  ])("url %j is refused (%s)", async (url, why) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(proxiesPath(org.id), { name: "bad", url }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["url"]);
    expect(res.body.errors[0].message).toContain(why);
  });

  it("credentials in a URL are never echoed or stored", async () => {
    const { admin, org } = await adminAndOrg();
    const secret = `s3cr3t${unique()}`;
    const res = await post(proxiesPath(org.id), { name: "bad", url: `http://alice:${secret}@proxy.example.com` }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(res.text).not.toContain(secret);
    const { results } = await env.DB.prepare("select * from proxies where organization_id = ?").bind(org.id).all();
    expect(results).toEqual([]);
    expect(logged.join("\n")).not.toContain(secret);
  });

  it("a password needs a username, on create and on update", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(proxiesPath(org.id), { name: "x", url: "http://p.example.com", password: "pw" }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["password"]);
    const p = await createProxy(admin, org.id, { username: "u", password: "pw" });
    const drop = await patch(`${proxiesPath(org.id)}/${p.id}`, { username: null }, { token: admin.accessToken });
    expectProblem(drop, 400, "validation_failed");
    expect(errorPaths(drop)).toEqual(["password"]);
    const bare = await createProxy(admin, org.id);
    expectProblem(await patch(`${proxiesPath(org.id)}/${bare.id}`, { password: "pw" }, { token: admin.accessToken }), 400, "validation_failed");
    expect((await patch(`${proxiesPath(org.id)}/${bare.id}`, { password: "pw", username: "u" }, { token: admin.accessToken })).body.password_set).toBe(true);
  });

  it("PATCH validates its fields", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProxy(admin, org.id);
    const res = await patch(`${proxiesPath(org.id)}/${p.id}`, { name: null, url: "ftp://x", password: 5 }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["name", "password", "url"]);
  });

  it("PUT default validates the body and refuses unknown or malformed ids with 404, changing nothing", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProxy(admin, org.id);
    await put(defaultPath(org.id), { proxy_id: p.id }, t);
    expectProblem(await put(defaultPath(org.id), {}, t), 400, "validation_failed");
    expectProblem(await put(defaultPath(org.id), { proxy_id: 7 }, t), 400, "validation_failed");
    for (const bad of [newId("proxy"), "prx_nope", "default", ""]) {
      expectProblem(await put(defaultPath(org.id), { proxy_id: bad }, t), 404, "not_found");
    }
    // The old default is still in place.
    expect((await get(defaultPath(org.id), t)).body.proxy.id).toBe(p.id);
  });

  it("unknown and malformed proxy ids are 404 on every id route", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    for (const id of [newId("proxy"), "nope", "prx_", newId("integration")]) {
      expectProblem(await get(`${proxiesPath(org.id)}/${id}`, t), 404, "not_found");
      expectProblem(await patch(`${proxiesPath(org.id)}/${id}`, { name: "x" }, t), 404, "not_found");
      expectProblem(await del(`${proxiesPath(org.id)}/${id}`, t), 404, "not_found");
    }
    // `default` is not an id: PATCH and DELETE on it find no proxy.
    expectProblem(await patch(defaultPath(org.id), { name: "x" }, t), 404, "not_found");
    expectProblem(await del(defaultPath(org.id), t), 404, "not_found");
  });

  it("a bad page_size or page token is 400; a token of another organization is refused", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    for (let i = 0; i < 3; i++) await createProxy(admin, other.id);
    const page = await get(`${proxiesPath(other.id)}?page_size=1`, { token: admin.accessToken });
    expectProblem(await get(`${proxiesPath(org.id)}?page_size=0`, { token: admin.accessToken }), 400, "validation_failed");
    expectProblem(await get(`${proxiesPath(org.id)}?page_token=garbage`, { token: admin.accessToken }), 400, "invalid_page_token");
    expectProblem(
      await get(`${proxiesPath(org.id)}?page_token=${encodeURIComponent(page.body.next_page_token)}`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
  });

  it("an inactive organization is read-only: writes are 409, reads work", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProxy(admin, org.id);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, t)).status).toBe(200);
    expectProblem(await post(proxiesPath(org.id), { name: "late", url: "http://p.example.com" }, t), 409, "organization_inactive");
    expectProblem(await patch(`${proxiesPath(org.id)}/${p.id}`, { name: "x" }, t), 409, "organization_inactive");
    expectProblem(await del(`${proxiesPath(org.id)}/${p.id}`, t), 409, "organization_inactive");
    expectProblem(await put(defaultPath(org.id), { proxy_id: p.id }, t), 409, "organization_inactive");
    expect((await get(proxiesPath(org.id), t)).status).toBe(200);
    expect((await get(`${proxiesPath(org.id)}/${p.id}`, t)).status).toBe(200);
    expect((await get(defaultPath(org.id), t)).body).toEqual({ proxy: null });
  });
});

describe("security", () => {
  async function setup() {
    const { admin, org } = await adminAndOrg();
    const p = await createProxy(admin, org.id, { username: "u", password: "pw" });
    return { admin, org, p };
  }

  const routes = (orgId: string, id: string): [string, string, unknown?][] => [
    ["GET", proxiesPath(orgId)],
    ["POST", proxiesPath(orgId), { name: "x", url: "http://p.example.com" }],
    ["GET", `${proxiesPath(orgId)}/${id}`],
    ["PATCH", `${proxiesPath(orgId)}/${id}`, { name: "x" }],
    ["DELETE", `${proxiesPath(orgId)}/${id}`],
    ["GET", defaultPath(orgId)],
    ["PUT", defaultPath(orgId), { proxy_id: id }],
  ];

  it("every route: 401 without a credential", async () => {
    const { org, p } = await setup();
    for (const [method, path, body] of routes(org.id, p.id)) {
      const res = await api(method, path, { body });
      expectProblem(res, 401, "unauthenticated");
    }
  });

  it("every route: the built-in user role is 403 (it lacks proxies:*)", async () => {
    const { org, p } = await setup();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    for (const [method, path, body] of routes(org.id, p.id)) {
      const res = await api(method, path, { body, token: member.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.body.required_permission).toMatch(/^proxies:(read|write)$/);
    }
  });

  it("a custom role with proxies:read only may read but not write", async () => {
    const { admin, org, p } = await setup();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("viewer").slice(0, 30), permissions: ["proxies:read"] },
      { token: admin.accessToken },
    );
    const viewer = await createUser();
    await addMemberDirect(org.id, viewer, role.body.name);
    for (const [method, path, body] of routes(org.id, p.id)) {
      const res = await api(method, path, { body, token: viewer.accessToken });
      if (method === "GET") expect(res.status, res.text).toBe(200);
      else expectProblem(res, 403, "forbidden");
    }
  });

  it("every route: a PAT without the scope is 403 insufficient_scope", async () => {
    const { admin, org, p } = await setup();
    const members = await createPat(admin, ["organization_member:write", "organization_integration:write"]);
    const reader = await createPat(admin, ["organization:read"]);
    for (const [method, path, body] of routes(org.id, p.id)) {
      const res = await api(method, path, { body, token: members.token });
      expectProblem(res, 403, "insufficient_scope");
      expect(res.body.required_scope).toBe(method === "GET" ? "organization:read" : "organization:write");
      if (method !== "GET") expectProblem(await api(method, path, { body, token: reader.token }), 403, "insufficient_scope");
    }
  });

  it("another organization's proxy is 404 on every id route, and as a default", async () => {
    const a = await setup();
    const b = await setup();
    const t = { token: a.admin.accessToken };
    expectProblem(await get(`${proxiesPath(a.org.id)}/${b.p.id}`, t), 404, "not_found");
    expectProblem(await patch(`${proxiesPath(a.org.id)}/${b.p.id}`, { name: "stolen" }, t), 404, "not_found");
    expectProblem(await del(`${proxiesPath(a.org.id)}/${b.p.id}`, t), 404, "not_found");
    const mine = await createProxy(a.admin, a.org.id);
    await put(defaultPath(a.org.id), { proxy_id: mine.id }, t);
    expectProblem(await put(defaultPath(a.org.id), { proxy_id: b.p.id }, t), 404, "not_found");
    // Nothing moved in either organization.
    expect((await get(defaultPath(a.org.id), t)).body.proxy.id).toBe(mine.id);
    expect((await row(b.p.id))!).toMatchObject({ name: b.p.name, is_default: 0, organization_id: b.org.id });
    expect((await get(`${proxiesPath(b.org.id)}/${b.p.id}`, { token: b.admin.accessToken })).status).toBe(200);
    const list = await get(proxiesPath(a.org.id), t);
    expect(list.body.items.map((p: Proxy) => p.id)).not.toContain(b.p.id);
  });

  it("an outsider gets 404 on every route of an organization it is not in", async () => {
    const { org, p } = await setup();
    const outsider = await createUser();
    await createOrg(outsider);
    for (const [method, path, body] of routes(org.id, p.id)) {
      expectProblem(await api(method, path, { body, token: outsider.accessToken }), 404, "not_found");
    }
  });

  it("concurrent default switches leave exactly one default", async () => {
    const { admin, org } = await adminAndOrg();
    const ps: Proxy[] = [];
    for (let i = 0; i < 4; i++) ps.push(await createProxy(admin, org.id));
    const results = await Promise.all(ps.map((p) => put(defaultPath(org.id), { proxy_id: p.id }, { token: admin.accessToken })));
    for (const r of results) expect(r.status, r.text).toBe(200);
    const { results: defaults } = await env.DB.prepare("select id from proxies where organization_id = ? and is_default = 1").bind(org.id).all();
    expect(defaults.length).toBe(1);
  });

  it("deleting the organization removes its proxies", async () => {
    const { admin, org, p } = await setup();
    const res = await del(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(await row(p.id)).toBeNull();
  });
});
