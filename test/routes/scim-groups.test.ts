import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { api, get, post, type ApiResponse } from "../helpers/client";
import { createOrg, createPat, createVerifiedUser, unique, type TestUser } from "../helpers/factories";

/** SCIM /Groups: CRUD, the PATCH shapes Okta and Entra ID send, role mapping, ETags, concurrency, isolation. */

const EXT = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR = "urn:ietf:params:scim:api:messages:2.0:Error";

interface Dir {
  configId: string;
  token: string;
}
interface ScimUser {
  id: string;
  userId: string;
  userName: string;
}

let admin: TestUser;
let orgId = "";
let dirA: Dir;
let dirB: Dir; // a second config of the same organization
let dirOff: Dir; // a config with SCIM switched off
let usersA: ScimUser[] = [];
let usersB: ScimUser[] = [];

async function seedConfig(org: string, enabled = true): Promise<Dir> {
  const configId = newId("identityProvider");
  const token = `scim_${unique("tok")}${crypto.randomUUID().replaceAll("-", "")}`;
  const now = Date.now();
  await env.DB.prepare(
    "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, scim_enabled, is_default, allow_idp_initiated, allow_sha1, scim_token_hash, scim_token_prefix, scim_token_created_at, created_at, updated_at) values (?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?)",
  )
    .bind(configId, org, `IdP ${configId}`, `https://idp.test/${configId}`, enabled ? 1 : 0, await sha256Hex(token), token.slice(0, 12), now, now, now)
    .run();
  return { configId, token };
}

/** Users provisioned by a directory: account, SCIM record and a SCIM-managed `user` membership. */
async function seedScimUsers(org: string, dir: Dir, n: number, prefix = unique("su")): Promise<ScimUser[]> {
  const out: ScimUser[] = [];
  const stmts: D1PreparedStatement[] = [];
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const userId = newId("user");
    const id = newId("scimUser");
    const userName = `${prefix}-${i}@scim.test`;
    out.push({ id, userId, userName });
    stmts.push(
      env.DB.prepare("insert into users (id, email, display_name, created_at, updated_at) values (?, ?, ?, ?, ?)").bind(
        userId,
        userName,
        `Person ${prefix} ${i}`,
        now,
        now,
      ),
      env.DB.prepare(
        "insert into scim_users (id, config_id, organization_id, user_id, user_name, user_name_key, display_name, active, attributes, version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, 1, '{}', 1, ?, ?)",
      ).bind(id, dir.configId, org, userId, userName, userName, `Person ${prefix} ${i}`, now, now),
      env.DB.prepare(
        "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at, scim_config_id) values (?, ?, 'user', 'user', ?, ?, ?, ?, ?)",
      ).bind(org, userId, `Person ${prefix} ${i}`, `person ${prefix} ${i}`, userName, now, dir.configId),
    );
  }
  for (let i = 0; i < stmts.length; i += 90) await env.DB.batch(stmts.slice(i, i + 90));
  return out;
}

function scim(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string } = {}) {
  return api(method, `/scim/v2${path}`, {
    token: opts.token ?? dirA.token,
    body: opts.body,
    raw: opts.raw,
    headers: { ...(opts.body !== undefined || opts.raw !== undefined ? { "Content-Type": "application/scim+json" } : {}), ...opts.headers },
  });
}

const patchOps = (Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });

async function createGroup(body: Record<string, unknown> = {}, dir: Dir = dirA): Promise<any> {
  const res = await scim("POST", "/Groups", { token: dir.token, body: { schemas: [GROUP], displayName: `Group ${unique("")}`, ...body } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function dbGroup(id: string) {
  return env.DB.prepare("select member_count, version, (select count(*) from scim_group_members where group_id = ?) as real from scim_groups where id = ?")
    .bind(id, id)
    .first<{
      member_count: number;
      version: number;
      real: number;
    }>();
}

const memberIdsOf = (res: ApiResponse) => ((res.body.members ?? []) as { value: string }[]).map((m) => m.value).sort();
const roleOf = async (userId: string) =>
  (await env.DB.prepare("select role from members where organization_id = ? and member_id = ?").bind(orgId, userId).first<{ role: string }>())?.role;
const v1Role = async (userId: string) => {
  const res = await get(`/v1/organizations/${orgId}/members/${userId}`, { token: admin.accessToken });
  expect(res.status, res.text).toBe(200);
  return res.body.role as string;
};

function expectScimError(res: ApiResponse, status: number, scimType?: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/scim+json");
  expect(res.body.schemas).toEqual([ERROR]);
  expect(res.body.status).toBe(String(status));
  if (scimType) expect(res.body.scimType).toBe(scimType);
}

beforeAll(async () => {
  admin = await createVerifiedUser();
  orgId = (await createOrg(admin)).id;
  dirA = await seedConfig(orgId);
  dirB = await seedConfig(orgId);
  dirOff = await seedConfig(orgId, false);
  usersA = await seedScimUsers(orgId, dirA, 30);
  usersB = await seedScimUsers(orgId, dirB, 3);
});

describe("happy", () => {
  it("creates a group with members, 201 with Location and ETag, and reads it back", async () => {
    const members = usersA.slice(0, 3).map((u) => ({ value: u.id }));
    const res = await scim("POST", "/Groups", { body: { schemas: [GROUP], displayName: "Engineering", externalId: "ext-eng", members } });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get("content-type")).toContain("application/scim+json");
    const g = res.body;
    expect(g.id).toMatch(/^scg_/);
    expect(g.schemas).toEqual([GROUP]);
    expect(g.displayName).toBe("Engineering");
    expect(g.externalId).toBe("ext-eng");
    expect(g.meta).toMatchObject({ resourceType: "Group", version: 'W/"1"', location: `http://api.test/scim/v2/Groups/${g.id}` });
    expect(res.headers.get("location")).toBe(g.meta.location);
    expect(res.headers.get("etag")).toBe('W/"1"');
    expect(g.members).toHaveLength(3);
    expect(g.members[0]).toEqual({
      value: usersA[0]!.id,
      display: expect.stringContaining("Person"),
      $ref: `http://api.test/scim/v2/Users/${usersA[0]!.id}`,
      type: "User",
    });
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 3, real: 3 });

    const read = await scim("GET", `/Groups/${g.id}`);
    expect(read.status).toBe(200);
    expect(read.cost.queries).toBe(1);
    expect(memberIdsOf(read)).toEqual(members.map((m) => m.value).sort());
    expect(read.headers.get("etag")).toBe('W/"1"');

    const cond = await scim("GET", `/Groups/${g.id}`, { headers: { "If-None-Match": 'W/"1"' } });
    expect(cond.status).toBe(304);
  });

  it("attribute names are case-insensitive (RFC 7643 §2.1), in bodies and PATCH operations", async () => {
    const res = await scim("POST", "/Groups", { body: { Schemas: [GROUP], DISPLAYNAME: unique("Case"), members: [{ Value: usersA[0]!.id }] } });
    expect(res.status, res.text).toBe(201);
    expect(memberIdsOf(res)).toEqual([usersA[0]!.id]);
    const patch = await scim("PATCH", `/Groups/${res.body.id}`, {
      body: {
        schemas: [PATCH_OP],
        operations: [
          { OP: "ADD", Path: "Members", Value: [{ value: usersA[1]!.id }] },
          { op: "Replace", path: "urn:ietf:params:scim:schemas:core:2.0:Group:externalId", value: "ci" },
        ],
      },
    });
    expect(patch.status, patch.text).toBe(204);
    const read = await scim("GET", `/Groups/${res.body.id}`);
    expect(memberIdsOf(read)).toEqual([usersA[0]!.id, usersA[1]!.id].sort());
    expect(read.body.externalId).toBe("ci");
  });

  it("excludedAttributes=members reads no member rows; attributes projects", async () => {
    const g = await createGroup({ members: usersA.slice(0, 25).map((u) => ({ value: u.id })) });
    const full = await scim("GET", `/Groups/${g.id}`);
    expect(full.body.members).toHaveLength(25);
    const lean = await scim("GET", `/Groups/${g.id}?excludedAttributes=members`);
    expect(lean.status).toBe(200);
    expect(lean.body.members).toBeUndefined();
    expect(lean.body.displayName).toBe(g.displayName);
    // The token's config row and the group's row (via its index): no member rows.
    expect(lean.cost.rowsRead).toBeLessThanOrEqual(4);
    expect(full.cost.rowsRead).toBeGreaterThanOrEqual(50);
    const only = await scim("GET", `/Groups/${g.id}?attributes=displayName`);
    expect(Object.keys(only.body).sort()).toEqual(["displayName", "id", "schemas"]);
  });

  it("lists with filters, paging and projections", async () => {
    const tag = unique("lst");
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await createGroup({ displayName: `${tag} ${i}`, externalId: `${tag}-x${i}`, members: [{ value: usersA[i]!.id }] }));
    const byName = await scim("GET", `/Groups?filter=${encodeURIComponent(`displayName eq "${tag.toUpperCase()} 2"`)}`);
    expect(byName.status, byName.text).toBe(200);
    expect(byName.body).toMatchObject({ schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], totalResults: 1, startIndex: 1, itemsPerPage: 1 });
    expect(byName.body.Resources[0].id).toBe(made[2].id);
    expect(byName.cost.queries).toBe(1);
    // Lists leave members out unless asked.
    expect(byName.body.Resources[0].members).toBeUndefined();

    const byExt = await scim("GET", `/Groups?filter=${encodeURIComponent(`externalId eq "${tag}-x3"`)}&excludedAttributes=members`);
    expect(byExt.body.Resources.map((r: any) => r.id)).toEqual([made[3].id]);
    const byId = await scim("GET", `/Groups?filter=${encodeURIComponent(`id eq "${made[4].id}"`)}&attributes=members,displayName`);
    expect(byId.body.Resources[0].members.map((m: any) => m.value)).toEqual([usersA[4]!.id]);
    const byMember = await scim("GET", `/Groups?filter=${encodeURIComponent(`displayName sw "${tag}" and members[value eq "${usersA[1]!.id}"]`)}`);
    expect(byMember.body.Resources.map((r: any) => r.id)).toEqual([made[1].id]);

    // Paging to the end over the tag's five groups, two at a time.
    const seen: string[] = [];
    for (let start = 1; start <= 5; start += 2) {
      const page = await scim("GET", `/Groups?filter=${encodeURIComponent(`displayName sw "${tag}"`)}&startIndex=${start}&count=2`);
      expect(page.status).toBe(200);
      expect(page.body.totalResults).toBe(5);
      expect(page.body.startIndex).toBe(start);
      seen.push(...page.body.Resources.map((r: any) => r.id));
    }
    expect(seen).toEqual(made.map((g) => g.id));
  });

  it("PUT replaces displayName, externalId and members; omitted members are left as they are", async () => {
    const g = await createGroup({ members: [{ value: usersA[0]!.id }, { value: usersA[1]!.id }] });
    const res = await scim("PUT", `/Groups/${g.id}`, {
      body: {
        schemas: [GROUP],
        id: g.id,
        displayName: `${g.displayName} renamed`,
        externalId: "new-ext",
        members: [{ value: usersA[1]!.id }, { value: usersA[2]!.id }],
      },
      headers: { "If-Match": 'W/"1"' },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.displayName).toBe(`${g.displayName} renamed`);
    expect(res.body.externalId).toBe("new-ext");
    expect(memberIdsOf(res)).toEqual([usersA[1]!.id, usersA[2]!.id].sort());
    expect(res.headers.get("etag")).toBe('W/"2"');
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 2, real: 2, version: 2 });

    const rename = await scim("PUT", `/Groups/${g.id}`, { body: { displayName: `Only renamed ${g.id}` } });
    expect(rename.status).toBe(200);
    expect(memberIdsOf(rename)).toEqual([usersA[1]!.id, usersA[2]!.id].sort());
    expect(rename.body.externalId).toBe("new-ext");

    const cleared = await scim("PUT", `/Groups/${g.id}`, { body: { displayName: `Cleared ${g.id}`, externalId: null, members: [] } });
    expect(cleared.body.externalId).toBeUndefined();
    expect(cleared.body.members).toEqual([]);
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 0, real: 0 });
  });

  it("PATCH as Okta sends it: add members, remove members[value eq], path-less replace {id, displayName}", async () => {
    const g = await createGroup();
    const add = await scim("PATCH", `/Groups/${g.id}`, {
      body: patchOps([{ op: "add", path: "members", value: [{ value: usersA[0]!.id, display: "x" }, { value: usersA[1]!.id }] }]),
    });
    expect(add.status, add.text).toBe(204);
    expect(add.headers.get("etag")).toBe('W/"2"');
    const rm = await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "remove", path: `members[value eq "${usersA[0]!.id}"]` }]) });
    expect(rm.status, rm.text).toBe(204);
    const rename = await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "replace", value: { id: g.id, displayName: `${g.displayName} (okta)` } }]) });
    expect(rename.status, rename.text).toBe(204);
    const read = await scim("GET", `/Groups/${g.id}`);
    expect(read.body.displayName).toBe(`${g.displayName} (okta)`);
    expect(memberIdsOf(read)).toEqual([usersA[1]!.id]);
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 1, real: 1, version: 4 });
  });

  it("PATCH as Entra ID sends it: capitalised ops, Remove with a value list, Replace displayName, path-less Replace", async () => {
    const g = await createGroup({ externalId: "entra-1" });
    const res = await scim("PATCH", `/Groups/${g.id}`, {
      body: patchOps([
        { op: "Add", path: "members", value: [{ value: usersA[2]!.id }] },
        { op: "Add", path: "members", value: [{ value: usersA[3]!.id }, { value: usersA[4]!.id }] },
        { op: "Remove", path: "members", value: [{ value: usersA[3]!.id }] },
        { op: "Replace", path: "displayName", value: `${g.displayName} (entra)` },
        { op: "Replace", path: "externalId", value: "entra-2" },
      ]),
    });
    expect(res.status, res.text).toBe(204);
    const pathless = await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "Replace", value: { displayName: `${g.displayName} (entra 2)` } }]) });
    expect(pathless.status, pathless.text).toBe(204);
    const read = await scim("GET", `/Groups/${g.id}`);
    expect(read.body.displayName).toBe(`${g.displayName} (entra 2)`);
    expect(read.body.externalId).toBe("entra-2");
    expect(memberIdsOf(read)).toEqual([usersA[2]!.id, usersA[4]!.id].sort());
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 2, real: 2 });
  });

  it("PATCH replace members, remove all, idempotent removal, and 200 with attributes", async () => {
    const g = await createGroup({ members: usersA.slice(0, 4).map((u) => ({ value: u.id })) });
    await scim("PATCH", `/Groups/${g.id}`, {
      body: patchOps([{ op: "replace", path: "members", value: [{ value: usersA[3]!.id }, { value: usersA[5]!.id }] }]),
    });
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 2, real: 2 });
    // Removing someone who is not a member is not an error.
    const again = await scim("PATCH", `/Groups/${g.id}`, {
      body: patchOps([{ op: "remove", path: `members[value eq "${usersA[0]!.id}" or value eq "${usersA[5]!.id}"]` }]),
    });
    expect(again.status, again.text).toBe(204);
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 1, real: 1 });
    const all = await scim("PATCH", `/Groups/${g.id}?excludedAttributes=members`, { body: patchOps([{ op: "remove", path: "members" }]) });
    expect(all.status, all.text).toBe(200);
    expect(all.body.members).toBeUndefined();
    expect(all.body.id).toBe(g.id);
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 0, real: 0 });
    const withMembers = await scim("PATCH", `/Groups/${g.id}?attributes=members`, {
      body: patchOps([{ op: "add", path: "members", value: [{ value: usersA[7]!.id }] }]),
    });
    expect(withMembers.status).toBe(200);
    expect(memberIdsOf(withMembers)).toEqual([usersA[7]!.id]);
  });

  it("DELETE → 204, then 404", async () => {
    const g = await createGroup({ members: [{ value: usersA[0]!.id }] });
    const res = await scim("DELETE", `/Groups/${g.id}`);
    expect(res.status).toBe(204);
    expectScimError(await scim("GET", `/Groups/${g.id}`), 404);
    expectScimError(await scim("DELETE", `/Groups/${g.id}`), 404);
    expect((await env.DB.prepare("select count(*) as n from scim_group_members where group_id = ?").bind(g.id).first<{ n: number }>())!.n).toBe(0);
  });

  it("concurrent PATCHes on one group leave member_count equal to the real count", async () => {
    const g = await createGroup({ members: usersA.slice(0, 10).map((u) => ({ value: u.id })) });
    const ops = usersA.slice(5, 25).map((u, i) =>
      scim("PATCH", `/Groups/${g.id}`, {
        body: patchOps(
          i % 2 === 0
            ? [{ op: "add", path: "members", value: [{ value: u.id }, { value: usersA[i % 10]!.id }] }]
            : [{ op: "remove", path: `members[value eq "${usersA[i % 10]!.id}"]` }],
        ),
      }),
    );
    const results = await Promise.all(ops);
    expect(results.map((r) => r.status)).toEqual(results.map(() => 204));
    const state = await dbGroup(g.id);
    expect(state!.member_count).toBe(state!.real);
    expect(state!.version).toBe(1 + results.length);
  });
});

describe("role mapping", () => {
  it("membership in a group mapped to admin makes the member admin; leaving makes them user again", async () => {
    const [u] = await seedScimUsers(orgId, dirA, 1);
    const g = await createGroup({ [EXT]: { role: "admin" } });
    expect(g.schemas).toEqual([GROUP, EXT]);
    expect(g[EXT]).toEqual({ role: "admin" });
    expect(await v1Role(u!.userId)).toBe("user");
    await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "add", path: "members", value: [{ value: u!.id }] }]) });
    expect(await v1Role(u!.userId)).toBe("admin");
    await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "remove", path: `members[value eq "${u!.id}"]` }]) });
    expect(await v1Role(u!.userId)).toBe("user");
  });

  it("a custom role; the earliest-created mapped group wins; role changes, PUT, remove-all and DELETE recompute", async () => {
    const roleName = unique("auditor");
    const role = await post(
      `/v1/organizations/${orgId}/roles`,
      { name: roleName, permissions: ["organization:read", "members:read"] },
      { token: admin.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const [a, b] = await seedScimUsers(orgId, dirA, 2);
    const first = await createGroup({ [EXT]: { role: roleName }, members: [{ value: a!.id }] });
    expect(await roleOf(a!.userId)).toBe(roleName);
    const second = await createGroup({ [EXT]: { role: "admin" }, members: [{ value: a!.id }, { value: b!.id }] });
    // a: first group (earlier) wins; b: only in the admin group.
    expect(await roleOf(a!.userId)).toBe(roleName);
    expect(await roleOf(b!.userId)).toBe("admin");

    // Unmapping the first group hands a to the next mapped group.
    await scim("PATCH", `/Groups/${first.id}`, { body: patchOps([{ op: "replace", path: `${EXT}:role`, value: null }]) });
    expect(await roleOf(a!.userId)).toBe("admin");
    // Mapping it again, path-less with the extension object.
    await scim("PATCH", `/Groups/${first.id}`, { body: patchOps([{ op: "replace", value: { [EXT]: { role: roleName } } }]) });
    expect(await roleOf(a!.userId)).toBe(roleName);

    // PUT replacing the admin group's members: b leaves.
    await scim("PUT", `/Groups/${second.id}`, { body: { displayName: second.displayName, members: [{ value: a!.id }] } });
    expect(await roleOf(b!.userId)).toBe("user");
    // Remove-all on the first group: a falls back to the admin group.
    await scim("PATCH", `/Groups/${first.id}`, { body: patchOps([{ op: "remove", path: "members" }]) });
    expect(await roleOf(a!.userId)).toBe("admin");
    // Deleting the admin group: a is a plain user.
    expect((await scim("DELETE", `/Groups/${second.id}`)).status).toBe(204);
    expect(await roleOf(a!.userId)).toBe("user");
  });

  it("changing the mapped role of a group changes every member's role", async () => {
    const users = await seedScimUsers(orgId, dirA, 3);
    const g = await createGroup({ members: users.map((u) => ({ value: u.id })) });
    for (const u of users) expect(await roleOf(u.userId)).toBe("user");
    const put = await scim("PUT", `/Groups/${g.id}`, { body: { displayName: g.displayName, [EXT]: { role: "admin" } } });
    expect(put.status, put.text).toBe(200);
    expect(put.body[EXT]).toEqual({ role: "admin" });
    for (const u of users) expect(await roleOf(u.userId)).toBe("admin");
  });

  it("refuses unknown roles and service_account", async () => {
    expectScimError(await scim("POST", "/Groups", { body: { displayName: unique("g"), [EXT]: { role: "nope" } } }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Groups", { body: { displayName: unique("g"), [EXT]: { role: "service_account" } } }), 400, "invalidValue");
    const g = await createGroup();
    expectScimError(await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "replace", path: `${EXT}:role`, value: "ghost" }]) }), 400, "invalidValue");
  });
});

describe("errors", () => {
  it("validation: displayName missing or blank, bad JSON, too many operations", async () => {
    expectScimError(await scim("POST", "/Groups", { body: { schemas: [GROUP] } }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Groups", { body: { displayName: "  " } }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Groups", { raw: "{not json" }), 400, "invalidSyntax");
    const g = await createGroup();
    expectScimError(await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([]) }), 400, "invalidValue");
    expectScimError(await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "move", path: "members" }]) }), 400, "invalidValue");
  });

  it("members must be users of this directory: unknown, malformed and other-config ids → 400 invalidValue naming them", async () => {
    const ghost = newId("scimUser");
    const res = await scim("POST", "/Groups", {
      body: { displayName: unique("g"), members: [{ value: usersA[0]!.id }, { value: ghost }, { value: "not-an-id" }] },
    });
    expectScimError(res, 400, "invalidValue");
    expect(res.body.detail).toContain(ghost);
    expect(res.body.detail).toContain("not-an-id");
    const g = await createGroup();
    const other = await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "add", path: "members", value: [{ value: usersB[0]!.id }] }]) });
    expectScimError(other, 400, "invalidValue");
    expect(other.body.detail).toContain(usersB[0]!.id);
    const put = await scim("PUT", `/Groups/${g.id}`, { body: { displayName: g.displayName, members: [{ value: usersB[1]!.id }] } });
    expectScimError(put, 400, "invalidValue");
    expect(await dbGroup(g.id)).toMatchObject({ member_count: 0, real: 0, version: 1 });
  });

  it("duplicate displayName in one config → 409 uniqueness (case-insensitive); another config may reuse it", async () => {
    const name = unique("Dup");
    await createGroup({ displayName: name });
    expectScimError(await scim("POST", "/Groups", { body: { displayName: name.toLowerCase() } }), 409, "uniqueness");
    const other = await createGroup({ displayName: name }, dirB);
    expect(other.displayName).toBe(name);
    const g = await createGroup();
    expectScimError(
      await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "replace", path: "displayName", value: name.toUpperCase() }]) }),
      409,
      "uniqueness",
    );
    expectScimError(await scim("PUT", `/Groups/${g.id}`, { body: { displayName: name } }), 409, "uniqueness");
  });

  it("PATCH paths: no path on remove → noTarget; unknown attribute → invalidPath; bad member filter → invalidFilter; displayName removal → mutability; id change → mutability", async () => {
    const g = await createGroup();
    const p = (Operations: unknown[]) => scim("PATCH", `/Groups/${g.id}`, { body: patchOps(Operations) });
    expectScimError(await p([{ op: "remove" }]), 400, "noTarget");
    expectScimError(await p([{ op: "replace", path: "description", value: "x" }]), 400, "invalidPath");
    expectScimError(await p([{ op: "replace", value: { nickname: "x" } }]), 400, "invalidPath");
    expectScimError(await p([{ op: "remove", path: 'members[display eq "x"]' }]), 400, "invalidFilter");
    expectScimError(await p([{ op: "add", path: `members[value eq "${usersA[0]!.id}"]`, value: [] }]), 400, "invalidPath");
    expectScimError(await p([{ op: "remove", path: "displayName" }]), 400, "mutability");
    expectScimError(await p([{ op: "replace", value: { id: newId("scimGroup") } }]), 400, "mutability");
    expectScimError(await p([{ op: "replace", path: "displayName", value: 42 }]), 400, "invalidValue");
    expectScimError(await p([{ op: "add", path: "members", value: [{ display: "no value" }] }]), 400, "invalidValue");
    expectScimError(await p([{ op: "replace", value: "not an object" }]), 400, "invalidValue");
    // Nothing of the refused requests was applied.
    expect(await dbGroup(g.id)).toMatchObject({ version: 1 });
  });

  it("unknown and malformed ids → 404; a bad filter → 400 invalidFilter", async () => {
    for (const m of ["GET", "DELETE"]) expectScimError(await scim(m, `/Groups/${newId("scimGroup")}`), 404);
    expectScimError(await scim("GET", "/Groups/not-a-group"), 404);
    expectScimError(await scim("PUT", `/Groups/${newId("scimGroup")}`, { body: { displayName: "x" } }), 404);
    expectScimError(await scim("PATCH", `/Groups/${newId("scimGroup")}`, { body: patchOps([{ op: "replace", path: "displayName", value: "x" }]) }), 404);
    expectScimError(await scim("GET", `/Groups?filter=${encodeURIComponent("displayName eq")}`), 400, "invalidFilter");
    expectScimError(await scim("GET", `/Groups?filter=${encodeURIComponent('title eq "x"')}`), 400, "invalidFilter");
  });

  it("If-Match with a stale version → 412 on PUT, PATCH and DELETE, and nothing changes", async () => {
    const g = await createGroup({ members: [{ value: usersA[0]!.id }] });
    await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "replace", path: "externalId", value: "v2" }]) });
    const stale = { "If-Match": 'W/"1"' };
    expectScimError(await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "remove", path: "members" }]), headers: stale }), 412);
    expectScimError(await scim("PUT", `/Groups/${g.id}`, { body: { displayName: "x", members: [] }, headers: stale }), 412);
    expectScimError(await scim("DELETE", `/Groups/${g.id}`, { headers: stale }), 412);
    expect(await dbGroup(g.id)).toMatchObject({ version: 2, member_count: 1, real: 1 });
    const ok = await scim("PATCH", `/Groups/${g.id}`, { body: patchOps([{ op: "remove", path: "members" }]), headers: { "If-Match": 'W/"2"' } });
    expect(ok.status, ok.text).toBe(204);
    expect(ok.headers.get("etag")).toBe('W/"3"');
    expect((await scim("DELETE", `/Groups/${g.id}`, { headers: { "If-Match": "*" } })).status).toBe(204);
  });
});

describe("security", () => {
  it("no token, /v1 credentials and non-SCIM tokens → 401", async () => {
    const g = await createGroup();
    expectScimError(await api("GET", `/scim/v2/Groups/${g.id}`), 401);
    expectScimError(await api("GET", "/scim/v2/Groups", { token: admin.accessToken }), 401);
    const pat = await createPat(admin, ["organization:write", "organization_member:write"]);
    expectScimError(await api("GET", "/scim/v2/Groups", { token: pat.token }), 401);
    expectScimError(await api("GET", "/scim/v2/Groups", { token: "scim_not-a-real-token" }), 401);
    // A bad token learns nothing about its request: 401 before a filter or body is judged.
    expectScimError(await api("GET", `/scim/v2/Groups?filter=${encodeURIComponent("((")}`, { token: "scim_bad" }), 401);
    expectScimError(await api("PATCH", `/scim/v2/Groups/${g.id}`, { token: "scim_bad", body: patchOps([{ op: "remove" }]) }), 401);
  });

  it("another config's token sees none of this config's groups", async () => {
    const g = await createGroup({ displayName: unique("Private"), members: [{ value: usersA[0]!.id }] });
    const t = { token: dirB.token };
    expectScimError(await scim("GET", `/Groups/${g.id}`, t), 404);
    expectScimError(await scim("PUT", `/Groups/${g.id}`, { ...t, body: { displayName: "stolen" } }), 404);
    expectScimError(await scim("PATCH", `/Groups/${g.id}`, { ...t, body: patchOps([{ op: "add", path: "members", value: [{ value: usersB[0]!.id }] }]) }), 404);
    expectScimError(await scim("DELETE", `/Groups/${g.id}`, t), 404);
    const list = await scim("GET", `/Groups?filter=${encodeURIComponent(`displayName eq "${g.displayName}"`)}`, t);
    expect(list.body.totalResults).toBe(0);
    const all = await scim("GET", "/Groups?count=200", t);
    expect(all.body.Resources.map((r: any) => r.id)).not.toContain(g.id);
    expect(await dbGroup(g.id)).toMatchObject({ version: 1, member_count: 1 });
  });

  it("a config with SCIM switched off → 403; a replaced token → 401", async () => {
    expectScimError(await scim("GET", "/Groups", { token: dirOff.token }), 403);
    const dir = await seedConfig(orgId);
    expect((await scim("GET", "/Groups", { token: dir.token })).status).toBe(200);
    await env.DB.prepare("update identity_provider_configs set scim_token_hash = ? where id = ?")
      .bind(await sha256Hex(`scim_${unique("new")}`), dir.configId)
      .run();
    expectScimError(await scim("GET", "/Groups", { token: dir.token }), 401);
  });
});
