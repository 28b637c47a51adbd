import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodeJwt } from "jose";
import { del, get, patch, post, type ApiResponse } from "../helpers/client";
import { spyKV } from "../helpers/binding-spies";
import { addMemberDirect, createOrg, createPat, createUser, PASSWORD, uniqueEmail, verifyUserDirect } from "../helpers/factories";
import { kvKeys } from "../../src/lib/kv-keys";
import { expectProblem, sortedErrorPaths as errorPaths } from "../helpers/problems";

// ---------------------------------------------------------------------------------------------
// Local helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the dev mailbox (filled by the queue consumer) until an email to `to` arrives. */
async function waitForEmail(to: string): Promise<{ to: string; text: string }> {
  for (let i = 0; i < 40; i++) {
    const res = await get(`/v1/dev/emails?to=${encodeURIComponent(to)}`);
    expect(res.status, res.text).toBe(200);
    if (res.body.items.length > 0) return res.body.items[0];
    await sleep(200);
  }
  throw new Error(`no email to ${to} arrived within ~8 s`);
}

function verifyTokenFrom(email: { text: string }): string {
  const m = /http:\/\/app\.test\/verify-email\?token=(vfy_[A-Za-z0-9_-]+)/.exec(email.text);
  expect(m, email.text).not.toBeNull();
  return decodeURIComponent(m![1]!);
}

const login = (email: string, password: string) => post("/v1/auth/login", { email, password });

async function countRows(sql: string, ...binds: unknown[]): Promise<number> {
  const row = await env.DB.prepare(sql)
    .bind(...binds)
    .first<{ n: number }>();
  return row!.n;
}

const NEW_PASSWORD = "a brand new passphrase 42";

// ---------------------------------------------------------------------------------------------

describe("happy", () => {
  it("GET /v1/me with an access token returns the User", async () => {
    const user = await createUser();
    const res = await get("/v1/me", { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      id: user.id,
      email: user.email,
      display_name: user.displayName,
      email_verified: false,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
  });

  it("GET /v1/me with a PAT (any scope) returns the same User", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization_integration:read"]);
    const viaPat = await get("/v1/me", { token: pat.token });
    const viaSession = await get("/v1/me", { token: user.accessToken });
    expect(viaPat.status, viaPat.text).toBe(200);
    expect(viaPat.body).toEqual(viaSession.body);
  });

  it("PATCH display_name updates it", async () => {
    const user = await createUser();
    const before = (await get("/v1/me", { token: user.accessToken })).body;
    const res = await patch("/v1/me", { display_name: "  Grace Hopper  " }, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, email: user.email, display_name: "Grace Hopper", email_verified: false, created_at: before.created_at });
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(before.updated_at));
    expect((await get("/v1/me", { token: user.accessToken })).body).toEqual(res.body);
  });

  it("PATCH display_name is copied to the user's memberships", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    expect((await patch("/v1/me", { display_name: "Renamed Member" }, { token: user.accessToken })).status).toBe(200);
    const row = await env.DB.prepare("select display_name from members where organization_id = ? and member_id = ?")
      .bind(org.id, user.id)
      .first<{ display_name: string }>();
    expect(row?.display_name).toBe("Renamed Member");
  });

  it("PATCH with an empty body → 200 and nothing changes", async () => {
    const user = await createUser();
    const before = await get("/v1/me", { token: user.accessToken });
    const res = await patch("/v1/me", {}, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(before.body);
    expect((await get("/v1/me", { token: user.accessToken })).body).toEqual(before.body);
  });

  it("PATCH email with old_password → unverified, and a verification email goes to the new address", async () => {
    const user = await createUser();
    // Verify the first address so the reset to unverified is visible.
    const first = verifyTokenFrom(await waitForEmail(user.email));
    expect((await post("/v1/auth/verify-email", { token: first })).status).toBe(204);
    expect((await get("/v1/me", { token: user.accessToken })).body.email_verified).toBe(true);

    const newEmail = uniqueEmail("moved");
    const res = await patch("/v1/me", { email: newEmail.toUpperCase(), old_password: user.password }, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: user.id, email: newEmail, email_verified: false });

    const token = verifyTokenFrom(await waitForEmail(newEmail));
    expect((await post("/v1/auth/verify-email", { token })).status).toBe(204);
    const me = await get("/v1/me", { token: user.accessToken });
    expect(me.body).toMatchObject({ email: newEmail, email_verified: true });

    // The new address signs in; the old one no longer does.
    expect((await login(newEmail, user.password)).status).toBe(200);
    expect((await login(user.email, user.password)).status).toBe(401);
  });

  it("PATCH new_password ends every other session, keeps the current one, and swaps the password", async () => {
    const user = await createUser();
    const other = await login(user.email, user.password);
    expect(other.status).toBe(200);

    const res = await patch("/v1/me", { old_password: user.password, new_password: NEW_PASSWORD }, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(JSON.stringify(res.body)).not.toContain(NEW_PASSWORD);

    // The other session: access and refresh alike, on the very next request.
    expectProblem(await get("/v1/me", { token: other.body.access_token }), 401, "unauthenticated");
    expect((await post("/v1/auth/refresh", { refresh_token: other.body.refresh_token })).status).toBe(401);

    // The current session keeps working, refresh included.
    expect((await get("/v1/me", { token: user.accessToken })).status).toBe(200);
    const refreshed = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(refreshed.status, refreshed.text).toBe(200);
    expect((await get("/v1/me", { token: refreshed.body.access_token })).status).toBe(200);

    expect((await login(user.email, NEW_PASSWORD)).status).toBe(200);
    expectProblem(await login(user.email, user.password), 401, "invalid_credentials");
  });

  it("DELETE /v1/me → 204; the token, the login and the sole-member organization are gone", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const pat = await createPat(user, ["organization:read"]);
    const res = await del("/v1/me", { token: user.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");

    expectProblem(await get("/v1/me", { token: user.accessToken }), 401, "unauthenticated");
    expectProblem(await get("/v1/me", { token: pat.token }), 401, "unauthenticated");
    expect((await post("/v1/auth/refresh", { refresh_token: user.refreshToken })).status).toBe(401);
    expectProblem(await login(user.email, user.password), 401, "invalid_credentials");

    expect(await countRows("select count(*) as n from users where id = ?", user.id)).toBe(0);
    expect(await countRows("select count(*) as n from organizations where id = ?", org.id)).toBe(0);
    expect(await countRows("select count(*) as n from members where organization_id = ? or member_id = ?", org.id, user.id)).toBe(0);
  });

  it("DELETE /v1/me leaves other organizations, minus the membership", async () => {
    const owner = await createUser();
    const leaver = await createUser();
    const org = await createOrg(owner);
    await addMemberDirect(org.id, leaver);
    expect((await del("/v1/me", { token: leaver.accessToken })).status).toBe(204);
    expect(await countRows("select count(*) as n from organizations where id = ?", org.id)).toBe(1);
    expect(await countRows("select member_count as n from organizations where id = ?", org.id)).toBe(1);
    expect(await countRows("select count(*) as n from members where organization_id = ? and member_id = ?", org.id, leaver.id)).toBe(0);
  });

  it("the email is free again after the account is deleted", async () => {
    const user = await createUser();
    expect((await del("/v1/me", { token: user.accessToken })).status).toBe(204);
    const again = await post("/v1/auth/signup", { email: user.email, password: PASSWORD, display_name: "Reborn" });
    expect(again.status, again.text).toBe(201);
    expect(again.body.user.id).not.toBe(user.id);
  });
});

describe("errors", () => {
  it("GET /v1/me anonymous → 401", async () => {
    const res = await get("/v1/me");
    expectProblem(res, 401, "unauthenticated");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("PATCH email without old_password → 400 naming old_password", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", { email: uniqueEmail("nope") }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["old_password"]);
    expect((await get("/v1/me", { token: user.accessToken })).body.email).toBe(user.email);
  });

  it("PATCH email with a wrong old_password → 400 naming old_password", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", { email: uniqueEmail("nope"), old_password: "definitely not it" }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["old_password"]);
  });

  it("PATCH email to another account's email (any case) → 409 email_taken", async () => {
    const user = await createUser();
    const other = await createUser();
    const res = await patch("/v1/me", { email: other.email.toUpperCase(), old_password: user.password }, { token: user.accessToken });
    expectProblem(res, 409, "email_taken");
    expect((await get("/v1/me", { token: user.accessToken })).body.email).toBe(user.email);
  });

  it("PATCH an invalid email → 400 naming email", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", { email: "not an email", old_password: user.password }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["email"]);
  });

  it("PATCH new_password without old_password → 400 naming old_password", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", { new_password: NEW_PASSWORD }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["old_password"]);
    expect((await login(user.email, user.password)).status).toBe(200);
  });

  it("PATCH new_password with a wrong old_password → 400, and nothing changes", async () => {
    const user = await createUser();
    const other = await login(user.email, user.password);
    const res = await patch("/v1/me", { old_password: "definitely not it", new_password: NEW_PASSWORD }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["old_password"]);
    expect((await login(user.email, user.password)).status).toBe(200);
    expect((await login(user.email, NEW_PASSWORD)).status).toBe(401);
    // A refused change revokes nothing.
    expect((await get("/v1/me", { token: other.body.access_token })).status).toBe(200);
  });

  it.each([
    ["too short", "short1!"],
    ["a common password", "password123"],
  ])("PATCH a weak new_password (%s) → 400 naming new_password", async (_label, weak) => {
    const user = await createUser();
    const res = await patch("/v1/me", { old_password: user.password, new_password: weak }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["new_password"]);
    expect((await login(user.email, user.password)).status).toBe(200);
  });

  it("PATCH with bad display_name values → 400 naming display_name", async () => {
    const user = await createUser();
    for (const display_name of ["", "x".repeat(101), 7]) {
      const res = await patch("/v1/me", { display_name }, { token: user.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["display_name"]);
    }
  });

  it("PATCH with malformed JSON → 400 malformed_json", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", undefined, { token: user.accessToken, raw: "{", headers: { "Content-Type": "application/json" } });
    expectProblem(res, 400, "malformed_json");
  });

  it("DELETE /v1/me as the last admin of an organization with other members → 409 last_admin", async () => {
    const admin = await createUser();
    const member = await createUser();
    const shared = await createOrg(admin);
    const solo = await createOrg(admin);
    await addMemberDirect(shared.id, member);

    const res = await del("/v1/me", { token: admin.accessToken });
    const body = expectProblem(res, 409, "last_admin");
    expect(body.organization_ids).toEqual([shared.id]);

    // Nothing was deleted: not the account, not its sole-member organization, not the session.
    expect((await get("/v1/me", { token: admin.accessToken })).status).toBe(200);
    expect(await countRows("select count(*) as n from organizations where id in (?, ?)", shared.id, solo.id)).toBe(2);
    expect((await login(admin.email, admin.password)).status).toBe(200);
  });

  it("DELETE /v1/me with a second admin in the organization → 204", async () => {
    const admin = await createUser();
    const coAdmin = await createUser();
    const org = await createOrg(admin);
    await addMemberDirect(org.id, coAdmin, "admin");
    expect((await del("/v1/me", { token: admin.accessToken })).status).toBe(204);
    expect(await countRows("select count(*) as n from organizations where id = ?", org.id)).toBe(1);
    expect(await countRows("select count(*) as n from members where organization_id = ?", org.id)).toBe(1);
  });
});

describe("security", () => {
  it("PATCH /v1/me with a PAT → 403 (even with write scopes)", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:write", "organization_member:write"]);
    expectProblem(await patch("/v1/me", { display_name: "Hijacked" }, { token: pat.token }), 403, "forbidden");
    expect((await get("/v1/me", { token: user.accessToken })).body.display_name).toBe(user.displayName);
  });

  it("DELETE /v1/me with a PAT → 403 and the account stays", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:write"]);
    expectProblem(await del("/v1/me", { token: pat.token }), 403, "forbidden");
    expect((await get("/v1/me", { token: user.accessToken })).status).toBe(200);
  });

  it("PATCH and DELETE anonymous → 401", async () => {
    expectProblem(await patch("/v1/me", { display_name: "x" }), 401, "unauthenticated");
    expectProblem(await del("/v1/me"), 401, "unauthenticated");
  });

  it("a verification token minted for the old address does not verify the new one", async () => {
    const user = await createUser();
    const oldToken = verifyTokenFrom(await waitForEmail(user.email));
    const newEmail = uniqueEmail("changed");
    expect((await patch("/v1/me", { email: newEmail, old_password: user.password }, { token: user.accessToken })).status).toBe(200);
    expectProblem(await post("/v1/auth/verify-email", { token: oldToken }), 400, "invalid_token");
    expect((await get("/v1/me", { token: user.accessToken })).body).toMatchObject({ email: newEmail, email_verified: false });
  });

  it("a password change does not end the sessions of other users", async () => {
    const user = await createUser();
    const bystander = await createUser();
    expect((await patch("/v1/me", { old_password: user.password, new_password: NEW_PASSWORD }, { token: user.accessToken })).status).toBe(200);
    expect((await get("/v1/me", { token: bystander.accessToken })).status).toBe(200);
  });

  it("two admins deleting themselves at once cannot leave an organization without an admin", async () => {
    const a = await createUser();
    const b = await createUser();
    const member = await createUser();
    const org = await createOrg(a);
    await addMemberDirect(org.id, b, "admin");
    await addMemberDirect(org.id, member, "user");

    const results = await Promise.all([del("/v1/me", { token: a.accessToken }), del("/v1/me", { token: b.accessToken })]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([204, 409]);
    expect(results.find((r) => r.status === 409)!.body.code).toBe("last_admin");
    // Whatever the interleaving, the remaining member still has an admin to turn to.
    expect(await countRows("select count(*) as n from members where organization_id = ? and role = 'admin'", org.id)).toBe(1);
  });

  it("unknown fields in PATCH cannot change protected columns", async () => {
    const user = await createUser();
    const res = await patch("/v1/me", { email_verified: true, id: "usr_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }, { token: user.accessToken });
    expect([200, 400]).toContain(res.status);
    const me = await get("/v1/me", { token: user.accessToken });
    expect(me.body).toMatchObject({ id: user.id, email_verified: false });
  });
});

/** GET /v1/me with an access token: the token's claims and the one KV call, never D1. */
function expectNoDatabase(res: ApiResponse) {
  expect(res.status, res.text).toBe(200);
  expect(res.cost.queries, "D1 round trips").toBe(0);
  expect(res.cost.kvReads, "KV reads").toBe(1);
  expect(res.cost.kvWrites, "KV writes").toBe(0);
  return res.body;
}

const profileKey = (userId: string) => kvKeys.userProfile(userId, 900).key;

describe("GET /v1/me with an access token costs no D1 round trip", () => {
  it("its one KV call reads the revocation entry and the published profile; other routes read no profile", async () => {
    const user = await createUser();
    const revocation = kvKeys.revokedSession(decodeJwt(user.accessToken).sid as string, 900).key;
    const kv = spyKV();
    expect((await get("/v1/me", { token: user.accessToken, env: { KV: kv.binding } })).status).toBe(200);
    const [me] = kv.calls.splice(0);
    expect(me).toEqual(expect.arrayContaining([revocation, profileKey(user.id)]));
    // The session's first request in this isolate reads its rate-limit counter too.
    expect(me!.some((k) => k.startsWith("rl:credential:"))).toBe(true);
    expect((await get("/v1/me/organizations", { token: user.accessToken, env: { KV: kv.binding } })).status).toBe(200);
    const others = kv.calls;
    expect(others).toHaveLength(1);
    expect(others[0]).toContain(revocation);
    expect(others[0]).not.toContain(profileKey(user.id));
  });

  it("answers from the claims with one KV read, exactly what the database says (a PAT still reads D1)", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    const viaToken = await get("/v1/me", { token: user.accessToken });
    const viaPat = await get("/v1/me", { token: pat.token });
    expect(expectNoDatabase(viaToken)).toEqual(viaPat.body);
    expect(viaPat.cost.queries).toBeGreaterThanOrEqual(1);
    // The claims carry the account; a refreshed token carries it too.
    const claims = decodeJwt(user.accessToken);
    expect(claims).toMatchObject({ sub: user.id, email: user.email, name: user.displayName, email_verified: false });
    expect(Math.round((claims.updated_at as number) * 1000)).toBe(Date.parse(viaPat.body.updated_at));
    expect(Math.round((claims.created_at as number) * 1000)).toBe(Date.parse(viaPat.body.created_at));
  });

  it("a PATCH shows at once to every session's token, tokens minted before it included", async () => {
    const user = await createUser();
    const other = await login(user.email, user.password);
    expect(other.status).toBe(200);
    const renamed = await patch("/v1/me", { display_name: "Grace Hopper" }, { token: user.accessToken });
    expect(renamed.status, renamed.text).toBe(200);
    expect(expectNoDatabase(await get("/v1/me", { token: user.accessToken }))).toEqual(renamed.body);
    expect(expectNoDatabase(await get("/v1/me", { token: other.body.access_token }))).toEqual(renamed.body);
    // A token minted after the change carries it in its claims.
    const refreshed = await post("/v1/auth/refresh", { refresh_token: other.body.refresh_token });
    expect(decodeJwt(refreshed.body.access_token)).toMatchObject({ name: "Grace Hopper" });
    expect(expectNoDatabase(await get("/v1/me", { token: refreshed.body.access_token }))).toEqual(renamed.body);
  });

  it("an email change, then its verification, each show on the next GET", async () => {
    const user = await createUser();
    const newEmail = uniqueEmail("moved");
    const moved = await patch("/v1/me", { email: newEmail, old_password: user.password }, { token: user.accessToken });
    expect(moved.status, moved.text).toBe(200);
    expect(expectNoDatabase(await get("/v1/me", { token: user.accessToken }))).toEqual(moved.body);
    const token = verifyTokenFrom(await waitForEmail(newEmail));
    expect((await post("/v1/auth/verify-email", { token })).status).toBe(204);
    const me = expectNoDatabase(await get("/v1/me", { token: user.accessToken }));
    expect(me).toMatchObject({ email: newEmail, email_verified: true });
    expect(Date.parse(me.updated_at)).toBeGreaterThan(Date.parse(moved.body.updated_at));
  });

  it("a password change moves updated_at, and the session that made it sees that", async () => {
    const user = await createUser();
    const changed = await patch("/v1/me", { old_password: user.password, new_password: NEW_PASSWORD }, { token: user.accessToken });
    expect(changed.status, changed.text).toBe(200);
    expect(expectNoDatabase(await get("/v1/me", { token: user.accessToken }))).toEqual(changed.body);
  });

  it("a platform administrator's change to the account shows on the user's next GET", async () => {
    const root = await createUser({ email: uniqueEmail("root") });
    await verifyUserDirect(root.id);
    const target = await createUser();
    const newEmail = uniqueEmail("by-admin");
    const res = await patch(
      `/v1/users/${target.id}`,
      { display_name: "Renamed By Admin", email: newEmail },
      { token: root.accessToken, env: { PLATFORM_ADMIN_EMAILS: root.email } },
    );
    expect(res.status, res.text).toBe(200);
    expect(expectNoDatabase(await get("/v1/me", { token: target.accessToken }))).toEqual(res.body);
  });

  it("the newer of the claims and the published copy wins, by updated_at", async () => {
    const user = await createUser();
    const own = expectNoDatabase(await get("/v1/me", { token: user.accessToken }));
    const at = (ms: number) => new Date(ms).toISOString();
    // An older copy (a change the token's refresh already saw) loses to the claims.
    await env.KV.put(profileKey(user.id), JSON.stringify({ ...own, display_name: "Stale", updated_at: at(Date.parse(own.updated_at) - 1) }));
    expect(expectNoDatabase(await get("/v1/me", { token: user.accessToken }))).toEqual(own);
    // A newer one (a change after the token was minted) wins.
    const newer = { ...own, display_name: "Newer", updated_at: at(Date.parse(own.updated_at) + 1) };
    await env.KV.put(profileKey(user.id), JSON.stringify(newer));
    expect(expectNoDatabase(await get("/v1/me", { token: user.accessToken }))).toEqual(newer);
  });

  it("the published copy lives as long as the access tokens minted before it can", async () => {
    const user = await createUser();
    expect((await patch("/v1/me", { display_name: "Kept" }, { token: user.accessToken })).status).toBe(200);
    expect(JSON.parse((await env.KV.get(profileKey(user.id)))!)).toMatchObject({ id: user.id, display_name: "Kept" });
    const { keys } = await env.KV.list({ prefix: profileKey(user.id) });
    // Access TTL (900 s here) and KV's 60 s margin.
    expect(keys[0]!.expiration! - Date.now() / 1000).toBeGreaterThan(900);
    expect(keys[0]!.expiration! - Date.now() / 1000).toBeLessThanOrEqual(960);
  });

  it("a deleted account's token is refused without reading D1", async () => {
    const user = await createUser();
    expect((await del("/v1/me", { token: user.accessToken })).status).toBe(204);
    const res = await get("/v1/me", { token: user.accessToken });
    expectProblem(res, 401, "unauthenticated");
    expect(res.cost.queries).toBe(0);
  });
});
