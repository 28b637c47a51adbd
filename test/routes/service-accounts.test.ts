import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createUser, createVerifiedUser, unique, type TestUser } from "../helpers/factories";
import { expectProblem, errorPaths } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const SA_ID = /^sa_[0-9A-HJKMNP-TV-Z]{26}$/;
const KEY = /^sak_[A-Za-z0-9_-]{20,}$/;
const ALL_SCOPES = [
  "organization:read",
  "organization:write",
  "organization_member:read",
  "organization_member:write",
  "organization_integration:read",
  "organization_integration:write",
];
/** What the built-in `user` and `service_account` roles hold (§5). */
const USER_ROLE_PERMISSIONS = ["organization:read", "members:read", "roles:read", "projects:read", "projects:write"];

const saPath = (orgId: string) => `/v1/organizations/${orgId}/service-accounts`;

async function sha256Hex(value: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

type ServiceAccount = {
  id: string;
  organization_id: string;
  name: string;
  role: string;
  scopes: string[];
  key_prefix: string;
  created_by: string;
  last_used_at: string | null;
  created_at: string;
  updated_at: string;
};

async function createSa(caller: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(saPath(orgId), { name: `bot ${unique()}`, ...body }, { token: caller.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { service_account: ServiceAccount; key: string };
}

async function createRole(admin: { accessToken: string }, orgId: string, permissions: string[]) {
  const res = await post(`/v1/organizations/${orgId}/roles`, { name: unique("role"), permissions }, { token: admin.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string };
}

async function memberWithPermissions(admin: TestUser, orgId: string, permissions: string[]) {
  const role = await createRole(admin, orgId, permissions);
  const user = await createUser();
  await addMemberDirect(orgId, user, role.name);
  return user;
}

const memberCount = async (orgId: string, token: string) => {
  const res = await get(`/v1/organizations/${orgId}`, { token });
  expect(res.status, res.text).toBe(200);
  return res.body.member_count as number;
};

const keyRows = (saId: string) =>
  env.DB.prepare("select * from service_account_keys where service_account_id = ? order by created_at")
    .bind(saId)
    .all<Record<string, unknown>>()
    .then((r) => r.results);

describe("happy", () => {
  it("POST creates a service account with the default role and every scope, and its key once", async () => {
    const { admin, org } = await adminAndOrg();
    const name = `Deploy bot ${unique()}`;
    const res = await post(saPath(org.id), { name }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      service_account: {
        id: expect.stringMatching(SA_ID),
        organization_id: org.id,
        name,
        role: "service_account",
        scopes: ALL_SCOPES,
        key_prefix: expect.any(String),
        created_by: admin.id,
        last_used_at: null,
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      },
      key: expect.stringMatching(KEY),
    });
    const { service_account: sa, key } = res.body;
    expect(sa.created_at).toBe(sa.updated_at);
    expect(sa.key_prefix.length).toBeGreaterThanOrEqual(4);
    expect(sa.key_prefix.length).toBeLessThan(key.length / 2);
    expect(key.startsWith(sa.key_prefix)).toBe(true);
  });

  it("POST takes an explicit role and narrower scopes", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      saPath(org.id),
      { name: "Admin bot", role: "admin", scopes: ["organization:read", "organization_member:write"] },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body.service_account).toMatchObject({ name: "Admin bot", role: "admin", scopes: ["organization:read", "organization_member:write"] });
  });

  it("POST accepts a custom role", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, ["organization:read", "organization:write"]);
    const { service_account: sa, key } = await createSa(admin, org.id, { role: role.name });
    expect(sa.role).toBe(role.name);
    const write = await patch(`/v1/organizations/${org.id}`, { description: `by ${sa.id}` }, { token: key });
    expect(write.status, write.text).toBe(200);
  });

  it("the key is stored only as its hash and never returned again", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    const rows = await keyRows(sa.id);
    expect(rows.length).toBe(1);
    // The key's row id and the key itself no longer share a prefix.
    expect(rows[0]!.id).toMatch(/^key_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(key).toMatch(KEY);
    expect(rows[0]!.key_hash).not.toBe(key);
    expect(rows[0]!.key_hash).toBe(await sha256Hex(key));
    for (const value of Object.values(rows[0]!)) expect(String(value)).not.toContain(key.slice(sa.key_prefix.length));
    const account = await env.DB.prepare("select * from service_accounts where id = ?").bind(sa.id).first<Record<string, unknown>>();
    for (const value of Object.values(account!)) expect(String(value)).not.toContain(key.slice(sa.key_prefix.length));

    const one = await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(sa);
    expect(one.text).not.toContain(key);
    const list = await get(saPath(org.id), { token: admin.accessToken });
    expect(list.status, list.text).toBe(200);
    expect(list.text).not.toContain(key);
    const members = await get(`/v1/organizations/${org.id}/members`, { token: admin.accessToken });
    expect(members.text).not.toContain(key);
  });

  it("the account is a member with type service_account, and member_count counts it", async () => {
    const { admin, org } = await adminAndOrg();
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
    const { service_account: sa } = await createSa(admin, org.id, { name: "Member bot" });
    expect(await memberCount(org.id, admin.accessToken)).toBe(2);
    const list = await get(`/v1/organizations/${org.id}/members`, { token: admin.accessToken });
    expect(list.status, list.text).toBe(200);
    const row = list.body.items.find((m: any) => m.user.id === sa.id);
    expect(row).toEqual({
      user: { id: sa.id, display_name: "Member bot", email: null },
      role: "service_account",
      type: "service_account",
      joined_at: expect.stringMatching(ISO),
    });
    const filtered = await get(`/v1/organizations/${org.id}/members?filter=${encodeURIComponent('type = "service_account"')}`, { token: admin.accessToken });
    expect(filtered.body.items.map((m: any) => m.user.id)).toEqual([sa.id]);
    const one = await get(`/v1/organizations/${org.id}/members/${sa.id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(row);
  });

  it("the key reads its organization and /v1/me, and last_used_at is then set", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    const res = await get(`/v1/organizations/${org.id}`, { token: key });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: org.id, member_count: 2 });
    const me = await get("/v1/me", { token: key });
    expect(me.status, me.text).toBe(200);
    expect(me.body.id).toBe(sa.id);
    expect(me.body).toMatchObject({ organization_id: org.id, name: sa.name, role: "service_account" });
    expect(me.text).not.toContain(key);
    const after = await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken });
    expect(after.body.last_used_at).toMatch(ISO);
  });

  it("an admin service account with organization:write may PATCH the organization", async () => {
    const { admin, org } = await adminAndOrg();
    const { key } = await createSa(admin, org.id, { role: "admin", scopes: ["organization:write"] });
    const res = await patch(`/v1/organizations/${org.id}`, { description: "set by a key" }, { token: key });
    expect(res.status, res.text).toBe(200);
    expect(res.body.description).toBe("set by a key");
  });

  it("service accounts take no seat: an organization whose seats are all taken still gets one", async () => {
    const { admin, org } = await adminAndOrg();
    const full = { FREE_PLAN_SEATS: "1" };
    const res = await post(saPath(org.id), { name: "seatless" }, { token: admin.accessToken, env: full });
    expect(res.status, res.text).toBe(201);
    const counts = await env.DB.prepare("select member_count, user_member_count from organizations where id = ?")
      .bind(org.id)
      .first<{ member_count: number; user_member_count: number }>();
    expect(counts).toEqual({ member_count: 2, user_member_count: 1 });
    const human = await createVerifiedUser();
    expectProblem(
      await post(`/v1/organizations/${org.id}/members`, { email: human.email, role: "user" }, { token: admin.accessToken, env: full }),
      409,
      "seat_limit_reached",
    );
  });

  it("last_used_at is written on first use and not again on every request", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
    const first = (await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken })).body.last_used_at;
    expect(first).toMatch(ISO);
    const again = await get(`/v1/organizations/${org.id}`, { token: key });
    expect(again.status).toBe(200);
    expect((await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken })).body.last_used_at).toBe(first);
  });

  it("GET lists service accounts in creation order, paginated with page_size=2 over three pages", async () => {
    const { admin, org } = await adminAndOrg();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createSa(admin, org.id, { name: `bot ${i}` })).service_account.id);
    const seen: string[] = [];
    const sizes: number[] = [];
    let pageToken = "";
    for (let i = 0; i < 10; i++) {
      const res = await get(`${saPath(org.id)}?page_size=2${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ""}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      sizes.push(res.body.items.length);
      for (const item of res.body.items) {
        expect(seen, `page ${i + 1} repeats ${item.id}`).not.toContain(item.id);
        expect(item).toMatchObject({ organization_id: org.id, role: "service_account", key_prefix: expect.any(String) });
        expect(item).not.toHaveProperty("key");
        seen.push(item.id);
      }
      pageToken = res.body.next_page_token;
      if (pageToken === "") break;
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect(seen).toEqual(ids);
    const all = await get(saPath(org.id), { token: admin.accessToken });
    expect(all.body.items.map((s: any) => s.name)).toEqual(["bot 0", "bot 1", "bot 2", "bot 3", "bot 4"]);
    expect(all.body.next_page_token).toBe("");
  });

  it("an organization without service accounts lists none", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await get(saPath(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ items: [], next_page_token: "" });
  });

  it("rotate-key without grace: a new key; the old one fails on the very next request", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key: oldKey } = await createSa(admin, org.id);
    expect((await get(`/v1/organizations/${org.id}`, { token: oldKey })).status).toBe(200);
    const res = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      service_account: expect.objectContaining({ id: sa.id, name: sa.name, role: sa.role, scopes: sa.scopes }),
      key: expect.stringMatching(KEY),
    });
    const newKey = res.body.key as string;
    expect(newKey).not.toBe(oldKey);
    expect(res.body.service_account.key_prefix).toBe(newKey.slice(0, res.body.service_account.key_prefix.length));
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: oldKey }), 401, "unauthenticated");
    expect((await get(`/v1/organizations/${org.id}`, { token: newKey })).status).toBe(200);
    const rows = await keyRows(sa.id);
    expect(rows.map((r) => r.key_hash)).toEqual([await sha256Hex(newKey)]);
    const got = await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken });
    expect(got.body.key_prefix).toBe(res.body.service_account.key_prefix);
    expect(got.text).not.toContain(newKey);
  });

  it("rotate-key with no body at all, or grace_seconds 0, also ends the old key at once", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key: first } = await createSa(admin, org.id);
    const bare = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, undefined, { token: admin.accessToken });
    expect(bare.status, bare.text).toBe(200);
    expect(bare.body.key).toMatch(KEY);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: first }), 401, "unauthenticated");
    const zero = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, { grace_seconds: 0 }, { token: admin.accessToken });
    expect(zero.status, zero.text).toBe(200);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: bare.body.key }), 401, "unauthenticated");
    expect((await get(`/v1/organizations/${org.id}`, { token: zero.body.key })).status).toBe(200);
  });

  it("rotate-key with grace_seconds: both keys work until the grace ends, then only the new one", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key: oldKey } = await createSa(admin, org.id);
    const res = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, { grace_seconds: 3600 }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    const newKey = res.body.key as string;
    expect((await get(`/v1/organizations/${org.id}`, { token: oldKey })).status).toBe(200);
    expect((await get(`/v1/organizations/${org.id}`, { token: newKey })).status).toBe(200);
    // The list shows the current key's prefix, not the outgoing one's.
    const got = await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken });
    expect(newKey.startsWith(got.body.key_prefix)).toBe(true);

    const oldHash = await sha256Hex(oldKey);
    const row = await env.DB.prepare("select expires_at from service_account_keys where key_hash = ?").bind(oldHash).first<{ expires_at: number }>();
    expect(row!.expires_at).toBeGreaterThan(Date.now() + 3500_000);
    expect(row!.expires_at).toBeLessThanOrEqual(Date.now() + 3600_000);
    await env.DB.prepare("update service_account_keys set expires_at = ? where key_hash = ?")
      .bind(Date.now() - 1000, oldHash)
      .run();
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: oldKey }), 401, "unauthenticated");
    expect((await get(`/v1/organizations/${org.id}`, { token: newKey })).status).toBe(200);
  });

  it("a second rotation without grace ends a key still in its grace period too", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key: first } = await createSa(admin, org.id);
    const second = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, { grace_seconds: 3600 }, { token: admin.accessToken });
    const third = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: admin.accessToken });
    expect(third.status, third.text).toBe(200);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: first }), 401, "unauthenticated");
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: second.body.key }), 401, "unauthenticated");
    expect((await get(`/v1/organizations/${org.id}`, { token: third.body.key })).status).toBe(200);
  });

  it("DELETE removes the account, its key and its membership: 204, then 404", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    expect(await memberCount(org.id, admin.accessToken)).toBe(2);
    const res = await del(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: key }), 401, "unauthenticated");
    expectProblem(await get(`/v1/organizations/${org.id}/members/${sa.id}`, { token: admin.accessToken }), 404, "not_found");
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
    const left = await env.DB.prepare(
      "select (select count(*) from members where member_id = ?1) + (select count(*) from service_account_keys where service_account_id = ?1) as n",
    )
      .bind(sa.id)
      .first<{ n: number }>();
    expect(left!.n).toBe(0);
    expectProblem(await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await del(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: admin.accessToken }), 404, "not_found");
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
  });
});

describe("errors", () => {
  it("POST with an empty or blank name → 400 at name", async () => {
    const { admin, org } = await adminAndOrg();
    for (const name of ["", "   ", undefined, 42, "x".repeat(101)]) {
      const res = await post(saPath(org.id), { name }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toContain("name");
    }
  });

  it("POST with an unknown, repeated or empty scope list → 400 at scopes", async () => {
    const { admin, org } = await adminAndOrg();
    for (const scopes of [["organization:admin"], ["roles:write"], ["organization:read", "organization:read"], [], "organization:read"]) {
      const res = await post(saPath(org.id), { name: "bot", scopes }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(
        errorPaths(res).some((p) => p.startsWith("scopes")),
        res.text,
      ).toBe(true);
    }
  });

  it("POST with a role the organization does not have → 400 at role; nothing is created", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await adminAndOrg();
    const foreignRole = await createRole(other.admin, other.org.id, ["organization:read"]);
    for (const role of ["owner", "Admin", "", foreignRole.name]) {
      const res = await post(saPath(org.id), { name: "bot", role }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toContain("role");
    }
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
    expect((await get(saPath(org.id), { token: admin.accessToken })).body.items).toEqual([]);
  });

  it("POST lists every bad field at once", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(saPath(org.id), { name: "", scopes: ["nope"], role: 7 }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    const paths = errorPaths(res);
    expect(paths).toContain("name");
    expect(paths).toContain("role");
    expect(paths.some((p) => p.startsWith("scopes"))).toBe(true);
  });

  it("GET, DELETE and rotate-key of an unknown or malformed id → 404", async () => {
    const { admin, org } = await adminAndOrg();
    for (const id of [newId("serviceAccount"), "sa_nope", "nope", newId("user"), newId("serviceAccountKey")]) {
      expectProblem(await get(`${saPath(org.id)}/${id}`, { token: admin.accessToken }), 404, "not_found");
      expectProblem(await del(`${saPath(org.id)}/${id}`, { token: admin.accessToken }), 404, "not_found");
      expectProblem(await post(`${saPath(org.id)}/${id}/rotate-key`, {}, { token: admin.accessToken }), 404, "not_found");
    }
  });

  it("another organization's service account is 404 to GET, DELETE and rotate-key, and its key keeps working", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await adminAndOrg();
    const { service_account: theirs, key } = await createSa(other.admin, other.org.id);
    const path = `${saPath(org.id)}/${theirs.id}`;
    expectProblem(await get(path, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await post(`${path}/rotate-key`, {}, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await del(path, { token: admin.accessToken }), 404, "not_found");
    expect((await get(`/v1/organizations/${other.org.id}`, { token: key })).status).toBe(200);
    expect((await get(saPath(org.id), { token: admin.accessToken })).body.items).toEqual([]);
  });

  it("rotate-key with grace_seconds above 86400, negative, fractional or not a number → 400; the key stays", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    for (const grace_seconds of [86401, -1, 1.5, "60", null]) {
      const res = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, { grace_seconds }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toContain("grace_seconds");
    }
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
    const max = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, { grace_seconds: 86400 }, { token: admin.accessToken });
    expect(max.status, max.text).toBe(200);
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
  });

  it("an inactive organization is read-only: no create, rotate or delete (409), but list and read work", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await post(saPath(org.id), { name: "late" }, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(await del(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken }), 409, "organization_inactive");
    expect((await get(saPath(org.id), { token: admin.accessToken })).body.items.map((s: any) => s.id)).toEqual([sa.id]);
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
  });

  it("rotate-key with malformed JSON → 400, not 500", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa } = await createSa(admin, org.id);
    const res = await api("POST", `${saPath(org.id)}/${sa.id}/rotate-key`, {
      token: admin.accessToken,
      raw: "{nope",
      headers: { "Content-Type": "application/json" },
    });
    expect(res.status, res.text).toBe(400);
  });

  it("the built-in user role can neither create nor list nor read service accounts (403)", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa } = await createSa(admin, org.id);
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const created = await post(saPath(org.id), { name: "mine" }, { token: member.accessToken });
    expectProblem(created, 403, "forbidden");
    expect(created.body.required_permission).toBe("service_accounts:write");
    const list = await get(saPath(org.id), { token: member.accessToken });
    expectProblem(list, 403, "forbidden");
    expect(list.body.required_permission).toBe("service_accounts:read");
    expectProblem(await get(`${saPath(org.id)}/${sa.id}`, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await del(`${saPath(org.id)}/${sa.id}`, { token: member.accessToken }), 403, "forbidden");
    expect(await memberCount(org.id, admin.accessToken)).toBe(3);
  });

  it("list: page_size 0 → 400; a forged or foreign page token → 400", async () => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await get(`${saPath(org.id)}?page_size=0`, { token: admin.accessToken }), 400, "validation_failed");
    expectProblem(await get(`${saPath(org.id)}?page_token=abc.def`, { token: admin.accessToken }), 400, "invalid_page_token");
    const other = await createOrg(admin);
    await createSa(admin, other.id);
    await createSa(admin, other.id);
    const first = await get(`${saPath(other.id)}?page_size=1`, { token: admin.accessToken });
    expect(first.body.next_page_token).not.toBe("");
    expectProblem(
      await get(`${saPath(org.id)}?page_token=${encodeURIComponent(first.body.next_page_token)}`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
  });
});

describe("security", () => {
  it("anonymous → 401 and a non-member → 404 on every service-account route", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa } = await createSa(admin, org.id);
    const outsider = await createUser();
    const calls: [string, string][] = [
      ["POST", saPath(org.id)],
      ["GET", saPath(org.id)],
      ["GET", `${saPath(org.id)}/${sa.id}`],
      ["POST", `${saPath(org.id)}/${sa.id}/rotate-key`],
      ["DELETE", `${saPath(org.id)}/${sa.id}`],
    ];
    for (const [method, path] of calls) {
      const send = (token?: string) =>
        method === "GET" ? get(path, { token }) : method === "DELETE" ? del(path, { token }) : post(path, { name: "x" }, { token });
      expectProblem(await send(), 401, "unauthenticated");
      expectProblem(await send(outsider.accessToken), 404, "not_found");
    }
    expect((await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken })).status).toBe(200);
  });

  it("a key acts only in its own organization: another organization → 404", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    const { key } = await createSa(admin, org.id, { role: "admin" });
    expectProblem(await get(`/v1/organizations/${other.id}`, { token: key }), 404, "not_found");
    expectProblem(await get(`/v1/organizations/${other.id}/members`, { token: key }), 404, "not_found");
    expectProblem(await patch(`/v1/organizations/${other.id}`, { description: "x" }, { token: key }), 404, "not_found");
    expectProblem(await get(`/v1/organizations/${other.id}/service-accounts`, { token: key }), 404, "not_found");
  });

  it("a key cannot use the user-level routes: my organizations, creating organizations, tokens (403)", async () => {
    const { admin, org } = await adminAndOrg();
    const { key } = await createSa(admin, org.id, { role: "admin" });
    expectProblem(await get("/v1/me/organizations", { token: key }), 403, "forbidden");
    expectProblem(await post("/v1/organizations", { name: `By a key ${unique()}` }, { token: key }), 403, "forbidden");
    expectProblem(await get("/v1/me/tokens", { token: key }), 403, "forbidden");
    expectProblem(await post("/v1/me/tokens", { name: "t", scopes: ["organization:read"] }, { token: key }), 403, "forbidden");
    expectProblem(await patch("/v1/me", { display_name: "x" }, { token: key }), 403, "forbidden");
    expectProblem(await del("/v1/me", { token: key }), 403, "forbidden");
    expectProblem(await get(`/v1/users/${admin.id}`, { token: key }), 403, "forbidden");
  });

  it("scopes narrow a key: organization:read alone reads the organization but not its members (403 insufficient_scope)", async () => {
    const { admin, org } = await adminAndOrg();
    const { key } = await createSa(admin, org.id, { role: "admin", scopes: ["organization:read"] });
    expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
    expectProblem(await get(`/v1/organizations/${org.id}/members`, { token: key }), 403, "insufficient_scope");
    expectProblem(await patch(`/v1/organizations/${org.id}`, { description: "x" }, { token: key }), 403, "insufficient_scope");
    expectProblem(await post(saPath(org.id), { name: "child" }, { token: key }), 403, "insufficient_scope");
  });

  it("the role narrows a key: the default service_account role gets 403 forbidden on PATCH, even with every scope", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    expect(sa.scopes).toEqual(ALL_SCOPES);
    const res = await patch(`/v1/organizations/${org.id}`, { description: "x" }, { token: key });
    expectProblem(res, 403, "forbidden");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: key }), 403, "forbidden");
    expectProblem(await post(saPath(org.id), { name: "child" }, { token: key }), 403, "forbidden");
    expect((await get(`/v1/organizations/${org.id}/members`, { token: key })).status).toBe(200);
  });

  it("a key cannot mint a service account above its scopes: an admin key scoped to organization_member:write cannot create an admin account", async () => {
    const { admin, org } = await adminAndOrg();
    const { key } = await createSa(admin, org.id, { role: "admin", scopes: ["organization_member:write"] });
    expectProblem(await post(saPath(org.id), { name: "child", role: "admin" }, { token: key }), 403, "forbidden");
  });

  it("a key may rotate its own key even when its scopes narrow it, but not another admin account's (403)", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: self, key } = await createSa(admin, org.id, { role: "admin", scopes: ["organization_member:write"] });
    const { service_account: peer, key: peerKey } = await createSa(admin, org.id, { role: "admin" });
    expectProblem(await post(`${saPath(org.id)}/${peer.id}/rotate-key`, {}, { token: key }), 403, "forbidden");
    expect((await get(`/v1/organizations/${org.id}`, { token: peerKey })).status).toBe(200);
    const rotated = await post(`${saPath(org.id)}/${self.id}/rotate-key`, {}, { token: key });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.service_account).toMatchObject({ id: self.id, role: "admin", scopes: ["organization_member:write"] });
    expectProblem(await get(`/v1/organizations/${org.id}/members`, { token: key }), 401, "unauthenticated");
    expect((await get(`/v1/organizations/${org.id}/members`, { token: rotated.body.key })).status).toBe(200);
  });

  it("a key may remove its own account by leaving the organization; it then fails at once", async () => {
    const { admin, org } = await adminAndOrg();
    const { service_account: sa, key } = await createSa(admin, org.id);
    const res = await del(`/v1/organizations/${org.id}/members/${sa.id}`, { token: key });
    expect(res.status, res.text).toBe(204);
    expectProblem(await get("/v1/me", { token: key }), 401, "unauthenticated");
    expectProblem(await get(`${saPath(org.id)}/${sa.id}`, { token: admin.accessToken }), 404, "not_found");
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
  });

  describe("escalation: a member with service_accounts:write but not the admin's powers", () => {
    const own = [...USER_ROLE_PERMISSIONS, "service_accounts:read", "service_accounts:write"];

    it("cannot create an admin service account (403), but can create one with the default role", async () => {
      const { admin, org } = await adminAndOrg();
      const user = await memberWithPermissions(admin, org.id, own);
      const res = await post(saPath(org.id), { name: "root bot", role: "admin" }, { token: user.accessToken });
      expectProblem(res, 403, "forbidden");
      expect((await get(saPath(org.id), { token: admin.accessToken })).body.items).toEqual([]);
      expect(await memberCount(org.id, admin.accessToken)).toBe(2);
      const ok = await post(saPath(org.id), { name: "small bot" }, { token: user.accessToken });
      expect(ok.status, ok.text).toBe(201);
      expect(ok.body.service_account).toMatchObject({ role: "service_account", created_by: user.id });
    });

    it("cannot create a service account with a custom role holding a permission it lacks (403)", async () => {
      const { admin, org } = await adminAndOrg();
      const user = await memberWithPermissions(admin, org.id, own);
      const strong = await createRole(admin, org.id, ["organization:delete"]);
      expectProblem(await post(saPath(org.id), { name: "bot", role: strong.name }, { token: user.accessToken }), 403, "forbidden");
    });

    it("cannot rotate an admin service account's key, which would hand it the admin's powers (403); the key keeps working", async () => {
      const { admin, org } = await adminAndOrg();
      const user = await memberWithPermissions(admin, org.id, own);
      const { service_account: sa, key } = await createSa(admin, org.id, { role: "admin" });
      const res = await post(`${saPath(org.id)}/${sa.id}/rotate-key`, {}, { token: user.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.text).not.toMatch(/sak_/);
      expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);
      expect((await keyRows(sa.id)).length).toBe(1);
    });

    it("cannot delete an admin service account (403), through either route; it may rotate and delete one within its powers", async () => {
      const { admin, org } = await adminAndOrg();
      const user = await memberWithPermissions(admin, org.id, [...own, "members:write"]);
      const { service_account: strong, key } = await createSa(admin, org.id, { role: "admin" });
      expectProblem(await del(`${saPath(org.id)}/${strong.id}`, { token: user.accessToken }), 403, "forbidden");
      expectProblem(await del(`/v1/organizations/${org.id}/members/${strong.id}`, { token: user.accessToken }), 403, "forbidden");
      expect((await get(`/v1/organizations/${org.id}`, { token: key })).status).toBe(200);

      const { service_account: weak } = await createSa(admin, org.id);
      const rotated = await post(`${saPath(org.id)}/${weak.id}/rotate-key`, {}, { token: user.accessToken });
      expect(rotated.status, rotated.text).toBe(200);
      const gone = await del(`${saPath(org.id)}/${weak.id}`, { token: user.accessToken });
      expect(gone.status, gone.text).toBe(204);
    });
  });
});
