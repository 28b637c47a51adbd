import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { del, get, post, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, uniqueEmail, verifyUserDirect } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

/**
 * Issue 3, item 4: access that ends, ends at once. Each credential is refused on the very next
 * request after the change, and that refusal stays on the hot path's budget (§9: at most one KV
 * read and two D1 round trips for an authenticated read).
 */

/** The request's own Server-Timing report, within the authenticated-read budget. */
function expectHotPathCost(res: ApiResponse) {
  expect(res.headers.get("server-timing"), "Server-Timing header").toMatch(/queries=\d+ rows_read=\d+/);
  expect(res.headers.get("server-timing")).toMatch(/reads=\d+ writes=\d+/);
  const { queries, kvReads, kvWrites, rowsRead } = res.cost;
  for (const n of [queries, kvReads, kvWrites, rowsRead]) expect(Number.isInteger(n)).toBe(true);
  expect(kvReads, "KV reads").toBeLessThanOrEqual(1);
  expect(queries, "D1 round trips").toBeLessThanOrEqual(2);
  expect(kvWrites, "KV writes").toBe(0);
  return res.cost;
}

async function orgWithMember() {
  const admin = await createUser();
  const member = await createUser();
  const org = await createOrg(admin);
  await addMemberDirect(org.id, member, "user");
  return { admin, member, org };
}

async function createSa(admin: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(`/v1/organizations/${orgId}/service-accounts`, { name: "bot", ...body }, { token: admin.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { service_account: { id: string }; key: string };
}

describe("happy", () => {
  it("an authenticated GET of an organization costs at most one KV read and two D1 round trips, for every credential kind", async () => {
    const { admin, org } = await orgWithMember();
    const pat = await createPat(admin, ["organization:read"]);
    const { key } = await createSa(admin, org.id);
    const costs: Record<string, ApiResponse["cost"][]> = { session: [], pat: [], service_account_key: [] };
    // First and second use: the first use of a token also schedules its last_used_at write.
    for (let i = 0; i < 2; i++) {
      for (const [kind, token] of [
        ["session", admin.accessToken],
        ["pat", pat.token],
        ["service_account_key", key],
      ] as const) {
        const res = await get(`/v1/organizations/${org.id}`, { token });
        expect(res.status, `${kind}: ${res.text}`).toBe(200);
        expect(res.body.id).toBe(org.id);
        costs[kind]!.push(expectHotPathCost(res));
      }
    }
    // Every credential makes one KV call: its rate-limit counter, read together with the
    // session's revocation entry for an access token; a PAT or key row is read in the D1 batch.
    for (const c of [...costs.session!, ...costs.pat!, ...costs.service_account_key!]) expect(c.kvReads).toBe(1);
  });
});

describe("security", () => {
  it("a removed member's access token and PAT get 404 on the organization at once", async () => {
    const { admin, member, org } = await orgWithMember();
    const pat = await createPat(member, ["organization:read"]);
    expect((await get(`/v1/organizations/${org.id}`, { token: member.accessToken })).status).toBe(200);
    expect((await get(`/v1/organizations/${org.id}`, { token: pat.token })).status).toBe(200);
    const removed = await del(`/v1/organizations/${org.id}/members/${member.id}`, { token: admin.accessToken });
    expect(removed.status, removed.text).toBe(204);

    const session = await get(`/v1/organizations/${org.id}`, { token: member.accessToken });
    expectProblem(session, 404, "not_found");
    expectHotPathCost(session);
    const byPat = await get(`/v1/organizations/${org.id}`, { token: pat.token });
    expectProblem(byPat, 404, "not_found");
    expectHotPathCost(byPat);
    // The credentials themselves still work elsewhere: only this organization's access ended.
    expect((await get("/v1/me", { token: member.accessToken })).status).toBe(200);
  });

  it("a member who leaves loses access at once", async () => {
    const { member, org } = await orgWithMember();
    const left = await del(`/v1/organizations/${org.id}/members/${member.id}`, { token: member.accessToken });
    expect(left.status, left.text).toBe(204);
    const res = await get(`/v1/organizations/${org.id}`, { token: member.accessToken });
    expectProblem(res, 404, "not_found");
    expectHotPathCost(res);
  });

  it("a deleted service account's key gets 401 at once, whichever route deleted it", async () => {
    const { admin, org } = await orgWithMember();
    const viaAccounts = await createSa(admin, org.id);
    const viaMembers = await createSa(admin, org.id);
    for (const sa of [viaAccounts, viaMembers]) expect((await get(`/v1/organizations/${org.id}`, { token: sa.key })).status).toBe(200);

    expect((await del(`/v1/organizations/${org.id}/service-accounts/${viaAccounts.service_account.id}`, { token: admin.accessToken })).status).toBe(204);
    const first = await get(`/v1/organizations/${org.id}`, { token: viaAccounts.key });
    expectProblem(first, 401, "unauthenticated");
    expectHotPathCost(first);

    expect((await del(`/v1/organizations/${org.id}/members/${viaMembers.service_account.id}`, { token: admin.accessToken })).status).toBe(204);
    const second = await get(`/v1/organizations/${org.id}`, { token: viaMembers.key });
    expectProblem(second, 401, "unauthenticated");
    expectHotPathCost(second);
  });

  it("a rotated key without grace gets 401 at once; the new key works within the same budget", async () => {
    const { admin, org } = await orgWithMember();
    const { service_account: sa, key } = await createSa(admin, org.id);
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
    const rotated = await post(`/v1/organizations/${org.id}/service-accounts/${sa.id}/rotate-key`, {}, { token: admin.accessToken });
    expect(rotated.status, rotated.text).toBe(200);
    const old = await get(`/v1/organizations/${org.id}`, { token: key });
    expectProblem(old, 401, "unauthenticated");
    expectHotPathCost(old);
    const fresh = await get(`/v1/organizations/${org.id}`, { token: rotated.body.key });
    expect(fresh.status, fresh.text).toBe(200);
    expectHotPathCost(fresh);
  });

  it("a rotated key whose grace period has ended gets 401 at once", async () => {
    const { admin, org } = await orgWithMember();
    const { service_account: sa, key } = await createSa(admin, org.id);
    const rotated = await post(`/v1/organizations/${org.id}/service-accounts/${sa.id}/rotate-key`, { grace_seconds: 600 }, { token: admin.accessToken });
    expect(rotated.status, rotated.text).toBe(200);
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
    await env.DB.prepare("update service_account_keys set expires_at = ? where service_account_id = ? and expires_at is not null")
      .bind(Date.now() - 1, sa.id)
      .run();
    const res = await get(`/v1/organizations/${org.id}`, { token: key });
    expectProblem(res, 401, "unauthenticated");
    expectHotPathCost(res);
  });

  it("deleting the organization ends its service accounts' keys at once (401)", async () => {
    const { admin, org } = await orgWithMember();
    const { service_account: sa, key } = await createSa(admin, org.id, { role: "admin" });
    expect((await del(`/v1/organizations/${org.id}`, { token: admin.accessToken })).status).toBe(204);
    const res = await get("/v1/me", { token: key });
    expectProblem(res, 401, "unauthenticated");
    expectHotPathCost(res);
    const left = await env.DB.prepare(
      "select (select count(*) from service_account_keys where service_account_id = ?1) + (select count(*) from service_accounts where id = ?1) as n",
    )
      .bind(sa.id)
      .first<{ n: number }>();
    expect(left!.n).toBe(0);
  });

  it("a user deleted by a platform admin: their access token and their PAT get 401 at once", async () => {
    const root = await createUser({ email: uniqueEmail("root") });
    await verifyUserDirect(root.id);
    const asRoot = { token: root.accessToken, env: { PLATFORM_ADMIN_EMAILS: root.email } };
    const { member: target, org } = await orgWithMember();
    await createOrg(target); // an organization of their own, which goes with them
    const pat = await createPat(target, ["organization:read"]);
    expect((await get(`/v1/organizations/${org.id}`, { token: target.accessToken })).status).toBe(200);
    expect((await get(`/v1/organizations/${org.id}`, { token: pat.token })).status).toBe(200);

    const deleted = await del(`/v1/users/${target.id}`, asRoot);
    expect(deleted.status, deleted.text).toBe(204);

    const session = await get(`/v1/organizations/${org.id}`, { token: target.accessToken });
    expectProblem(session, 401, "unauthenticated");
    expectHotPathCost(session);
    const byPat = await get(`/v1/organizations/${org.id}`, { token: pat.token });
    expectProblem(byPat, 401, "unauthenticated");
    expectHotPathCost(byPat);
    expectProblem(await get("/v1/me", { token: target.accessToken }), 401, "unauthenticated");
    expectProblem(await get("/v1/me", { token: pat.token }), 401, "unauthenticated");
  });
});
