import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { del, get, post } from "../helpers/client";
import { createOrg, createPat, createUser } from "../helpers/factories";
import { expectProblem, sortedErrorPaths as errorPaths } from "../helpers/problems";

// ---------------------------------------------------------------------------------------------
// Local helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const DAY_MS = 86_400_000;

/** Creates `n` tokens one after another, a few ms apart so "newest first" is unambiguous. */
async function createTokens(user: { accessToken: string }, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push((await createPat(user, ["organization:read"], { name: `pat ${i}` })).id);
    await sleep(3);
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------

describe("happy", () => {
  it("POST /v1/me/tokens → 201 with the record and the secret, once", async () => {
    const user = await createUser();
    const res = await post(
      "/v1/me/tokens",
      { name: "  CI deploys  ", scopes: ["organization:read", "organization_member:write"], expires_in_days: 30 },
      { token: user.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    const body = res.body;
    expect(Object.keys(body).sort()).toEqual(["created_at", "expires_at", "id", "last_used_at", "name", "scopes", "token", "token_prefix"]);
    expect(body.id).toMatch(/^tok_[0-9A-Z]{26}$/);
    expect(body.name).toBe("CI deploys");
    expect(body.scopes).toEqual(["organization:read", "organization_member:write"]);
    expect(body.token).toMatch(/^pat_[A-Za-z0-9_-]{20,}$/);
    expect(body.token_prefix).toMatch(/^pat_/);
    expect(body.token.startsWith(body.token_prefix)).toBe(true);
    expect(body.token_prefix.length).toBeLessThan(body.token.length - 16);
    expect(body.last_used_at).toBeNull();
    expect(body.created_at).toMatch(ISO);
    expect(body.expires_at).toMatch(ISO);
    const days = (Date.parse(body.expires_at) - Date.parse(body.created_at)) / DAY_MS;
    expect(days).toBeCloseTo(30, 3);

    const me = await get("/v1/me", { token: body.token });
    expect(me.status, me.text).toBe(200);
    expect(me.body.id).toBe(user.id);
  });

  it("without expires_in_days the token expires in 90 days: no token lives forever", async () => {
    const user = await createUser();
    const res = await post("/v1/me/tokens", { name: "default", scopes: ["organization:read"] }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    const days = (Date.parse(res.body.expires_at) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89.9);
    expect(days).toBeLessThanOrEqual(90);
  });

  it.each([1, 365])("expires_in_days %i is accepted", async (days) => {
    const user = await createUser();
    const res = await post("/v1/me/tokens", { name: "edge", scopes: ["organization:read"], expires_in_days: days }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    expect((Date.parse(res.body.expires_at) - Date.parse(res.body.created_at)) / DAY_MS).toBeCloseTo(days, 3);
  });

  it("GET /v1/me/tokens lists newest first, without secrets", async () => {
    const user = await createUser();
    const ids = await createTokens(user, 3);
    const res = await get("/v1/me/tokens", { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    expect(res.body.items.map((t: { id: string }) => t.id)).toEqual([...ids].reverse());
    for (const item of res.body.items) {
      expect(Object.keys(item).sort()).toEqual(["created_at", "expires_at", "id", "last_used_at", "name", "scopes", "token_prefix"]);
      expect(item).not.toHaveProperty("token");
      expect(item.token_prefix).toMatch(/^pat_/);
    }
  });

  it("GET /v1/me/tokens paginates over 3 pages with no overlap", async () => {
    const user = await createUser();
    const ids = await createTokens(user, 5);
    const seen: string[] = [];
    const sizes: number[] = [];
    let pageToken = "";
    for (let i = 0; i < 10; i++) {
      const q = `page_size=2${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ""}`;
      const res = await get(`/v1/me/tokens?${q}`, { token: user.accessToken });
      expect(res.status, res.text).toBe(200);
      sizes.push(res.body.items.length);
      seen.push(...res.body.items.map((t: { id: string }) => t.id));
      pageToken = res.body.next_page_token;
      if (!pageToken) break;
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...ids].reverse());
  });

  it("a user with no tokens gets an empty list", async () => {
    const user = await createUser();
    const res = await get("/v1/me/tokens", { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ items: [], next_page_token: "" });
  });

  it("DELETE /v1/me/tokens/{id} → 204; the token fails on its very next request", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    const keep = await createPat(user, ["organization:read"]);
    expect((await get("/v1/me", { token: pat.token })).status).toBe(200);

    const res = await del(`/v1/me/tokens/${pat.id}`, { token: user.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");

    expectProblem(await get("/v1/me", { token: pat.token }), 401, "unauthenticated");
    expect((await get("/v1/me", { token: keep.token })).status).toBe(200);
    const list = await get("/v1/me/tokens", { token: user.accessToken });
    expect(list.body.items.map((t: { id: string }) => t.id)).toEqual([keep.id]);
    // Deleting again: it is gone.
    expectProblem(await del(`/v1/me/tokens/${pat.id}`, { token: user.accessToken }), 404, "not_found");
  });

  it("a PAT with organization:read may list the user's organizations", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const pat = await createPat(user, ["organization:read"]);
    const res = await get("/v1/me/organizations", { token: pat.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.map((i: { organization: { id: string } }) => i.organization.id)).toEqual([org.id]);
    expect(res.body.items[0].role).toBe("admin");
  });

  it("organization:write includes organization:read", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:write"]);
    expect((await get("/v1/me/organizations", { token: pat.token })).status).toBe(200);
  });

  it("last_used_at becomes non-null after the token is used", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    const before = await get("/v1/me/tokens", { token: user.accessToken });
    expect(before.body.items[0]).toMatchObject({ id: pat.id, last_used_at: null });

    expect((await get("/v1/me", { token: pat.token })).status).toBe(200);

    const after = await get("/v1/me/tokens", { token: user.accessToken });
    const item = after.body.items.find((t: { id: string }) => t.id === pat.id);
    expect(item.last_used_at).toMatch(ISO);
    expect(Date.parse(item.last_used_at)).toBeGreaterThanOrEqual(Date.parse(item.created_at));
  });
});

describe("errors", () => {
  const valid = { name: "ok", scopes: ["organization:read"] };

  it.each([
    ["an empty name", { name: "" }, /^name$/],
    ["a blank name", { name: "   " }, /^name$/],
    ["a 101-character name", { name: "n".repeat(101) }, /^name$/],
    ["an unknown scope", { scopes: ["organization:read", "admin:everything"] }, /^scopes(\.1)?$/],
    ["empty scopes", { scopes: [] }, /^scopes$/],
    ["a duplicate scope", { scopes: ["organization:read", "organization:read"] }, /^scopes$/],
    ["scopes not an array", { scopes: "organization:read" }, /^scopes$/],
    ["expires_in_days 0", { expires_in_days: 0 }, /^expires_in_days$/],
    ["expires_in_days 366", { expires_in_days: 366 }, /^expires_in_days$/],
    ['expires_in_days "x"', { expires_in_days: "x" }, /^expires_in_days$/],
    ["expires_in_days 1.5", { expires_in_days: 1.5 }, /^expires_in_days$/],
  ])("%s → 400 naming that field", async (_label, override, path) => {
    const user = await createUser();
    const res = await post("/v1/me/tokens", { ...valid, ...override }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    // Exactly that field (zod may report more than one message for it).
    const paths = [...new Set(errorPaths(res))];
    expect(paths, res.text).toHaveLength(1);
    expect(paths[0]).toMatch(path);
    // Nothing was created.
    expect((await get("/v1/me/tokens", { token: user.accessToken })).body.items).toEqual([]);
  });

  it("a missing name and scopes are both listed", async () => {
    const user = await createUser();
    const res = await post("/v1/me/tokens", {}, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["name", "scopes"]);
  });

  it("malformed JSON → 400 malformed_json", async () => {
    const user = await createUser();
    const res = await post("/v1/me/tokens", undefined, { token: user.accessToken, raw: '{"name":', headers: { "Content-Type": "application/json" } });
    expectProblem(res, 400, "malformed_json");
  });

  it("a tampered page_token → 400 invalid_page_token", async () => {
    const user = await createUser();
    await createTokens(user, 3);
    const first = await get("/v1/me/tokens?page_size=1", { token: user.accessToken });
    const token: string = first.body.next_page_token;
    expect(token).not.toBe("");
    const [body, sig] = token.split(".") as [string, string];
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
    for (const bad of [`${flip(body, 3)}.${sig}`, `${body}.${flip(sig, 3)}`, `${body}`, "garbage", `${token}.extra`]) {
      expectProblem(await get(`/v1/me/tokens?page_size=1&page_token=${encodeURIComponent(bad)}`, { token: user.accessToken }), 400, "invalid_page_token");
    }
  });

  it.each(["0", "-1", "abc"])("page_size=%s → 400", async (size) => {
    const user = await createUser();
    const res = await get(`/v1/me/tokens?page_size=${size}`, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["page_size"]);
  });

  it("page_size above 1000 is coerced, not refused", async () => {
    const user = await createUser();
    await createTokens(user, 1);
    const res = await get("/v1/me/tokens?page_size=5000", { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(1);
  });

  it.each([
    ["a malformed id", "not-a-token"],
    ["a wrong prefix", "usr_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"],
    ["an unknown well-formed id", "tok_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"],
    ["an injection string", encodeURIComponent("tok_' OR 1=1 --")],
  ])("DELETE %s → 404", async (_label, id) => {
    const user = await createUser();
    expectProblem(await del(`/v1/me/tokens/${id}`, { token: user.accessToken }), 404, "not_found");
  });

  it("an expired PAT → 401", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"], { expires_in_days: 1 });
    expect((await get("/v1/me", { token: pat.token })).status).toBe(200);
    await env.DB.prepare("update personal_access_tokens set expires_at = ? where id = ?")
      .bind(Date.now() - 1_000, pat.id)
      .run();
    expectProblem(await get("/v1/me", { token: pat.token }), 401, "unauthenticated");
    expectProblem(await get("/v1/me/organizations", { token: pat.token }), 401, "unauthenticated");
  });

  it("a user holding 100 tokens cannot create another (409 conflict)", async () => {
    const user = await createUser();
    const now = Date.now();
    const stmts = Array.from({ length: 100 }, (_, i) =>
      env.DB.prepare(
        "insert into personal_access_tokens (id, user_id, name, token_hash, token_prefix, scopes, expires_at, last_used_at, created_at) values (?, ?, ?, ?, 'pat_seed', '[\"organization:read\"]', null, null, ?)",
      ).bind(
        `tok_${(now - 100 + i).toString(32).toUpperCase().padStart(10, "0")}${user.id.slice(-16)}`,
        user.id,
        `seeded ${i}`,
        `${user.id}-${i}`,
        now - 100 + i,
      ),
    );
    await env.DB.batch(stmts);
    expectProblem(await post("/v1/me/tokens", { name: "one too many", scopes: ["organization:read"] }, { token: user.accessToken }), 409, "conflict");
  });

  it("anonymous → 401 on every tokens route", async () => {
    expectProblem(await post("/v1/me/tokens", { name: "x", scopes: ["organization:read"] }), 401, "unauthenticated");
    expectProblem(await get("/v1/me/tokens"), 401, "unauthenticated");
    expectProblem(await del("/v1/me/tokens/tok_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"), 401, "unauthenticated");
  });
});

describe("security", () => {
  it("a PAT cannot mint a PAT (403), whatever its scopes", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:write", "organization_member:write", "organization_integration:write"]);
    expectProblem(await post("/v1/me/tokens", { name: "child", scopes: ["organization:read"] }, { token: pat.token }), 403, "forbidden");
    expect((await get("/v1/me/tokens", { token: user.accessToken })).body.items).toHaveLength(1);
  });

  it("a PAT cannot list or delete tokens (403)", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:write"]);
    expectProblem(await get("/v1/me/tokens", { token: pat.token }), 403, "forbidden");
    expectProblem(await del(`/v1/me/tokens/${pat.id}`, { token: pat.token }), 403, "forbidden");
    expect((await get("/v1/me", { token: pat.token })).status).toBe(200);
  });

  it("a PAT without organization:read → 403 insufficient_scope on /v1/me/organizations", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization_member:read"]);
    const body = expectProblem(await get("/v1/me/organizations", { token: pat.token }), 403, "insufficient_scope");
    expect(body.detail).toContain("organization:read");
  });

  it("deleting another user's token → 404, and it keeps working", async () => {
    const owner = await createUser();
    const intruder = await createUser();
    const pat = await createPat(owner, ["organization:read"]);
    expectProblem(await del(`/v1/me/tokens/${pat.id}`, { token: intruder.accessToken }), 404, "not_found");
    expect((await get("/v1/me", { token: pat.token })).status).toBe(200);
  });

  it("another user's tokens never appear in the list", async () => {
    const a = await createUser();
    const b = await createUser();
    await createTokens(a, 2);
    const mine = await createPat(b, ["organization:read"]);
    const res = await get("/v1/me/tokens", { token: b.accessToken });
    expect(res.body.items.map((t: { id: string }) => t.id)).toEqual([mine.id]);
  });

  it("a page token issued to one user is refused for another", async () => {
    const a = await createUser();
    const b = await createUser();
    await createTokens(a, 2);
    await createTokens(b, 2);
    const page = await get("/v1/me/tokens?page_size=1", { token: a.accessToken });
    expect(page.body.next_page_token).not.toBe("");
    expectProblem(
      await get(`/v1/me/tokens?page_size=1&page_token=${encodeURIComponent(page.body.next_page_token)}`, { token: b.accessToken }),
      400,
      "invalid_page_token",
    );
  });

  it("an id sent as a bearer token → 401 saying it is an id, for every kind of id", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    const org = await createOrg(user);
    for (const id of [pat.id, user.id, org.id]) {
      const res = await get("/v1/me", { token: id });
      expectProblem(res, 401, "unauthenticated");
      expect(res.body.detail).toContain(`\`${id.slice(0, 4)}…\` is an id, not a credential`);
    }
  });

  it("the secret is stored only as a hash", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    const row = await env.DB.prepare("select * from personal_access_tokens where id = ?").bind(pat.id).first<Record<string, unknown>>();
    expect(row).not.toBeNull();
    expect(JSON.stringify(row)).not.toContain(pat.token);
  });

  it("a deleted user's PAT → 401", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    expect((await del("/v1/me", { token: user.accessToken })).status).toBe(204);
    expectProblem(await get("/v1/me", { token: pat.token }), 401, "unauthenticated");
  });

  it("a PAT name is free text and comes back verbatim", async () => {
    const user = await createUser();
    const name = `<script>alert(1)</script>'; drop table users; --`;
    const res = await post("/v1/me/tokens", { name, scopes: ["organization:read"] }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    expect((await get("/v1/me/tokens", { token: user.accessToken })).body.items[0].name).toBe(name);
  });
});
