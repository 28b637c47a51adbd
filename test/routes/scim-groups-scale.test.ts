import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { api, post, type ApiResponse } from "../helpers/client";
import { createOrg, createVerifiedUser, unique } from "../helpers/factories";

/**
 * Issue 11: a group of 10,000 members is patched without reading its members. One directory with
 * 10,000 SCIM users, all in one group mapped to a custom role; a PATCH adding two members and
 * removing one must read a bounded number of rows (it reads none of the other 9,999).
 */
const MEMBERS = 10_000;
const PATCH_ROWS = 200;
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

let orgId = "";
let configId = "";
let token = "";
let groupId = "";
let roleName = "";
const measured: Record<string, { queries: number; rowsRead: number }> = {};

const scim = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  api(method, `/scim/v2${path}`, { token, body, headers: body === undefined ? headers : { "Content-Type": "application/scim+json", ...headers } });
const seededId = (kind: "usr" | "scu", i: number) => `${kind}_${String(i).padStart(26, "0")}`;
const roleOf = async (userId: string) =>
  (await env.DB.prepare("select role from members where organization_id = ? and member_id = ?").bind(orgId, userId).first<{ role: string }>())?.role;
const counts = () =>
  env.DB.prepare("select member_count, (select count(*) from scim_group_members where group_id = ?) as real from scim_groups where id = ?")
    .bind(groupId, groupId)
    .first<{ member_count: number; real: number }>();

function record(label: string, res: ApiResponse) {
  measured[label] = { queries: res.cost.queries, rowsRead: res.cost.rowsRead };
}

async function freshScimUser() {
  const userId = newId("user");
  const id = newId("scimUser");
  const email = `${unique("fresh")}@scale.test`;
  const now = Date.now();
  await env.DB.batch([
    env.DB.prepare("insert into users (id, email, display_name, created_at, updated_at) values (?, ?, ?, ?, ?)").bind(userId, email, email, now, now),
    env.DB.prepare(
      "insert into scim_users (id, config_id, organization_id, user_id, user_name, user_name_key, display_name, active, attributes, version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, 1, '{}', 1, ?, ?)",
    ).bind(id, configId, orgId, userId, email, email, email, now, now),
    env.DB.prepare(
      "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at, scim_config_id) values (?, ?, 'user', 'user', ?, ?, ?, ?, ?)",
    ).bind(orgId, userId, email, email, email, now, configId),
  ]);
  return { id, userId };
}

beforeAll(async () => {
  const admin = await createVerifiedUser();
  orgId = (await createOrg(admin)).id;
  roleName = unique("engineer");
  const role = await post(
    `/v1/organizations/${orgId}/roles`,
    { name: roleName, permissions: ["organization:read", "projects:read"] },
    { token: admin.accessToken },
  );
  expect(role.status, role.text).toBe(201);
  configId = newId("identityProvider");
  token = `scim_${unique("scale")}${crypto.randomUUID().replaceAll("-", "")}`;
  groupId = newId("scimGroup");
  const now = Date.now();
  const seq = `with recursive seq(i) as (select 0 union all select i + 1 from seq where i < ${MEMBERS - 1})`;
  const pad = (prefix: string) => `'${prefix}_' || printf('%026d', i)`;
  await env.DB.batch([
    env.DB.prepare(
      "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, scim_enabled, is_default, allow_idp_initiated, allow_sha1, scim_token_hash, scim_token_prefix, scim_token_created_at, created_at, updated_at) values (?, ?, 'Scale IdP', ?, 1, 0, 0, 0, ?, 'scim_', ?, ?, ?)",
    ).bind(configId, orgId, `https://idp.test/${configId}`, await sha256Hex(token), now, now, now),
    // Seeded ids are per-organization unique: the org id is folded into the user's email only.
    env.DB.prepare(
      `${seq} insert into users (id, email, display_name, created_at, updated_at) select ${pad("usr")} || ?, 'p' || i || ? , 'Person ' || i, ?, ? from seq`,
    ).bind(orgId.slice(-4), `@${orgId.toLowerCase()}.scale.test`, now, now),
    env.DB.prepare(
      `${seq} insert into scim_users (id, config_id, organization_id, user_id, user_name, user_name_key, display_name, active, attributes, version, created_at, updated_at)
       select ${pad("scu")} || ?, ?, ?, ${pad("usr")} || ?, 'p' || i || ?, 'p' || i || ?, 'Person ' || i, 1, '{}', 1, ?, ? from seq`,
    ).bind(orgId.slice(-4), configId, orgId, orgId.slice(-4), `@${orgId.toLowerCase()}.scale.test`, `@${orgId.toLowerCase()}.scale.test`, now, now),
    env.DB.prepare(
      `${seq} insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at, scim_config_id)
       select ?, ${pad("usr")} || ?, 'user', ?, 'Person ' || i, 'person ' || i, 'p' || i || ?, ?, ? from seq`,
    ).bind(orgId, orgId.slice(-4), roleName, `@${orgId.toLowerCase()}.scale.test`, now, configId),
    env.DB.prepare(
      "insert into scim_groups (id, config_id, organization_id, display_name, display_name_key, role, member_count, version, created_at, updated_at) values (?, ?, ?, 'Everyone', 'everyone', ?, ?, 1, ?, ?)",
    ).bind(groupId, configId, orgId, roleName, MEMBERS, now, now),
    env.DB.prepare(`${seq} insert into scim_group_members (group_id, scim_user_id, added_at) select ?, ${pad("scu")} || ?, ? from seq`).bind(
      groupId,
      orgId.slice(-4),
      now,
    ),
    env.DB.prepare("update organizations set member_count = member_count + ?, user_member_count = user_member_count + ? where id = ?").bind(
      MEMBERS,
      MEMBERS,
      orgId,
    ),
  ]);
  expect(await counts()).toEqual({ member_count: MEMBERS, real: MEMBERS });
}, 300_000);

describe("a group of 10,000 members", () => {
  const seeded = (i: number) => ({ scu: `${seededId("scu", i)}${orgId.slice(-4)}`, usr: `${seededId("usr", i)}${orgId.slice(-4)}` });

  it("PATCH add 2 + remove 1 reads a bounded number of rows, one write batch, roles follow", async () => {
    const a = await freshScimUser();
    const b = await freshScimUser();
    const gone = seeded(4242);
    expect(await roleOf(gone.usr)).toBe(roleName);
    const res = await scim("PATCH", `/Groups/${groupId}`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "add", path: "members", value: [{ value: a.id }, { value: b.id }] },
        { op: "remove", path: `members[value eq "${gone.scu}"]` },
      ],
    });
    expect(res.status, res.text).toBe(204);
    record("PATCH add 2 + remove 1", res);
    // The token + group + the two added users' rows (one round trip), then one write batch.
    expect(res.cost.queries).toBe(2);
    expect(res.cost.rowsRead).toBeLessThan(PATCH_ROWS);
    expect(await counts()).toEqual({ member_count: MEMBERS + 1, real: MEMBERS + 1 });
    expect(await roleOf(a.userId)).toBe(roleName);
    expect(await roleOf(b.userId)).toBe(roleName);
    expect(await roleOf(gone.usr)).toBe("user");
  });

  it("GET with excludedAttributes=members and a filtered list read no members", async () => {
    const lean = await scim("GET", `/Groups/${groupId}?excludedAttributes=members`);
    expect(lean.status).toBe(200);
    expect(lean.body.members).toBeUndefined();
    record("GET one, excludedAttributes=members", lean);
    expect(lean.cost.queries).toBe(1);
    expect(lean.cost.rowsRead).toBeLessThan(10);
    const list = await scim("GET", `/Groups?filter=${encodeURIComponent('displayName eq "everyone"')}`);
    expect(list.body.totalResults).toBe(1);
    record("GET list by displayName", list);
    expect(list.cost.rowsRead).toBeLessThan(10);
    const byMember = await scim("GET", `/Groups?filter=${encodeURIComponent(`members[value eq "${seeded(7).scu}"]`)}&excludedAttributes=members`);
    expect(byMember.body.Resources.map((r: any) => r.id)).toEqual([groupId]);
    record("GET list by member", byMember);
    expect(byMember.cost.rowsRead).toBeLessThan(20);
  });

  it("GET with members returns all of them (the documented cost)", async () => {
    const full = await scim("GET", `/Groups/${groupId}`);
    expect(full.status).toBe(200);
    expect(full.body.members).toHaveLength(MEMBERS + 1);
    record("GET one with members", full);
  });

  it("DELETE of the mapped group recomputes every member's role in its one write", async () => {
    const res = await scim("DELETE", `/Groups/${groupId}`);
    expect(res.status).toBe(204);
    record("DELETE mapped group", res);
    expect(res.cost.queries).toBe(2);
    const left = await env.DB.prepare("select count(*) as n from members where organization_id = ? and role = ?").bind(orgId, roleName).first<{ n: number }>();
    expect(left!.n).toBe(0);
    console.log(JSON.stringify({ scimGroupsScale: measured }));
  }, 120_000);
});
