import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { MAX_MEMBERS_PER_REQUEST, MAX_PATCH_OPERATIONS } from "../../src/scim/groups.schemas";
import type { Bindings } from "../../src/env";
import { api, post, type ApiResponse } from "../helpers/client";
import { unique } from "../helpers/factories";
import { scimSetup, seedScimMembers, type ScimSetup } from "../helpers/scim";

/**
 * Issue 12's statement budget on /scim/v2: D1 counts every statement of a batch (50 per
 * invocation on the Free plan), so no SCIM request may issue more than 50, at the largest sizes
 * the API accepts: 10,000 member values in one POST/PUT/PATCH, 100 PATCH operations, a user in
 * hundreds of groups. Writes are set-based (one statement per kind of change, ids as one JSON
 * parameter), with their audit entry and events in the same batch.
 */
const USERS = MAX_MEMBERS_PER_REQUEST;
const GROUPS_OF_ONE_USER = 300;
const BUDGET = 50;
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const EXT = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

let s: ScimSetup;
let roleName = "";
/** Seeded SCIM user ids. */
let scu: string[] = [];
const measured: Record<string, { statements: number; queries: number; rowsRead: number }> = {};

const quiet: Partial<Bindings> = { WEBHOOK_QUEUE: { name: "scim-budget", send: async () => undefined, sendBatch: async () => undefined } as unknown as Queue };
const scim = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  api(method, `/scim/v2${path}`, {
    token: s.token,
    body,
    env: quiet,
    headers: { ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}), ...headers },
  });

function within(label: string, res: ApiResponse) {
  measured[label] = { statements: res.cost.statements, queries: res.cost.queries, rowsRead: res.cost.rowsRead };
  expect(res.cost.statements, label).toBeGreaterThan(0);
  expect(res.cost.statements, label).toBeLessThanOrEqual(BUDGET);
}

const groupState = (id: string) =>
  env.DB.prepare("select member_count, (select count(*) from scim_group_members where group_id = ?) as real from scim_groups where id = ?")
    .bind(id, id)
    .first<{ member_count: number; real: number }>();
const withRole = async () =>
  (await env.DB.prepare("select count(*) as n from members where organization_id = ? and role = ?").bind(s.org.id, roleName).first<{ n: number }>())!.n;
const audits = async (action: string) =>
  (await env.DB.prepare("select count(*) as n from audit_logs where organization_id = ? and action = ?").bind(s.org.id, action).first<{ n: number }>())!.n;
const values = (ids: readonly string[]) => ids.map((value) => ({ value }));

beforeAll(async () => {
  s = await scimSetup();
  roleName = unique("eng")
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "");
  const role = await post(`/v1/organizations/${s.org.id}/roles`, { name: roleName, permissions: ["organization:read"] }, { token: s.admin.accessToken });
  expect(role.status, role.text).toBe(201);
  ({ scu } = await seedScimMembers(s, USERS, "b"));
}, 300_000);

describe(`SCIM writes stay within ${BUDGET} statements at the largest sizes accepted`, () => {
  let groupId = "";

  it(`POST a group mapped to a role with ${USERS} members`, async () => {
    const res = await scim("POST", "/Groups?excludedAttributes=members", {
      schemas: [GROUP],
      displayName: "Everyone",
      members: values(scu),
      [EXT]: { role: roleName },
    });
    expect(res.status, res.text).toBe(201);
    within("POST group, 10,000 members, mapped", res);
    expect(res.cost.queries).toBe(2);
    groupId = res.body.id;
    expect(await groupState(groupId)).toEqual({ member_count: USERS, real: USERS });
    expect(await withRole()).toBe(USERS);
  }, 120_000);

  it(`PATCH with ${MAX_PATCH_OPERATIONS} operations naming ${USERS} member values`, async () => {
    // 49 removals of 100 values and one by a value filter (20 ids joined by `or`: a path holds at
    // most 1,000 characters), then 50 additions bringing most of them back.
    const slice = (k: number) => scu.slice(k * 100, k * 100 + 100);
    const ops: { op: string; path: string; value?: { value: string }[] }[] = [];
    for (let k = 0; k < 49; k++) ops.push({ op: "remove", path: "members", value: values(slice(k)) });
    ops.push({
      op: "remove",
      path: `members[${slice(49)
        .slice(0, 20)
        .map((v) => `value eq "${v}"`)
        .join(" or ")}]`,
    });
    for (let k = 0; k < 48; k++) ops.push({ op: "add", path: "members", value: values(slice(k)) });
    ops.push({ op: "add", path: "members", value: values(slice(48).slice(0, 50)) });
    // Members already in the group among them: an add of a member is not an error.
    ops.push({ op: "add", path: "members", value: values([...slice(49).slice(0, 10), ...scu.slice(5000, 5220)]) });
    expect(ops).toHaveLength(MAX_PATCH_OPERATIONS);
    expect(ops.reduce((n, o) => n + (o.value?.length ?? 20), 0)).toBe(USERS);
    const res = await scim("PATCH", `/Groups/${groupId}`, { schemas: [PATCH_OP], Operations: ops });
    expect(res.status, res.text).toBe(204);
    within("PATCH group, 100 operations, 10,000 values", res);
    expect(res.cost.queries).toBe(2);
    // Out: the second half of slice 48 and ten of slice 49.
    expect(await groupState(groupId)).toEqual({ member_count: USERS - 60, real: USERS - 60 });
    expect(await withRole()).toBe(USERS - 60);
  }, 120_000);

  it(`PUT the group with ${USERS} members, half of them new`, async () => {
    // The second half stays and the rest leave; then everyone is back, the role mapping sent again.
    const res = await scim("PUT", `/Groups/${groupId}?excludedAttributes=members`, {
      schemas: [GROUP],
      displayName: "Everyone",
      members: values(scu.slice(USERS / 2)),
    });
    expect(res.status, res.text).toBe(200);
    within("PUT group, 5,000 members (5,000 leave)", res);
    expect(await groupState(groupId)).toEqual({ member_count: USERS / 2, real: USERS / 2 });
    expect(await withRole()).toBe(USERS / 2);
    const full = await scim("PUT", `/Groups/${groupId}?excludedAttributes=members`, {
      schemas: [GROUP],
      displayName: "Everyone",
      members: values(scu),
      [EXT]: { role: roleName },
    });
    expect(full.status, full.text).toBe(200);
    within("PUT group, 10,000 members (5,000 join)", full);
    expect(full.cost.queries).toBe(2);
    expect(await groupState(groupId)).toEqual({ member_count: USERS, real: USERS });
    expect(await withRole()).toBe(USERS);
    expect(await audits("scim.group.updated")).toBe(3);
  }, 120_000);

  it(`DELETE a user who is in ${GROUPS_OF_ONE_USER} groups`, async () => {
    const now = Date.now();
    const seq = `with recursive seq(i) as (select 0 union all select i + 1 from seq where i < ${GROUPS_OF_ONE_USER - 1})`;
    const tag = newId("scimGroup").slice(4, 20);
    const gid = `'scg_${tag}' || printf('%010d', i)`;
    await env.DB.batch([
      env.DB.prepare(
        `${seq} insert into scim_groups (id, config_id, organization_id, display_name, display_name_key, role, member_count, version, created_at, updated_at)
         select ${gid}, ?, ?, 'Many ' || i, 'many ' || i, null, 1, 1, ?, ? from seq`,
      ).bind(s.configId, s.org.id, now, now),
      env.DB.prepare(`${seq} insert into scim_group_members (group_id, scim_user_id, added_at) select ${gid}, ?, ? from seq`).bind(scu[0], now),
    ]);
    const res = await scim("DELETE", `/Users/${scu[0]}`);
    expect(res.status, res.text).toBe(204);
    within(`DELETE user in ${GROUPS_OF_ONE_USER + 1} groups`, res);
    expect(res.cost.queries).toBe(2);
    const left = await env.DB.prepare(
      "select count(*) as n from scim_groups where config_id = ? and display_name_key like 'many %' and member_count = 0 and version = 2",
    )
      .bind(s.configId)
      .first<{ n: number }>();
    expect(left!.n).toBe(GROUPS_OF_ONE_USER);
    expect(await audits("scim.user.deleted")).toBe(1);
    expect(await audits("member.removed")).toBe(1);
  }, 120_000);

  it(`DELETE the mapped group of ${USERS - 1} members`, async () => {
    const res = await scim("DELETE", `/Groups/${groupId}`);
    expect(res.status, res.text).toBe(204);
    within("DELETE mapped group, 9,999 members", res);
    expect(res.cost.queries).toBe(2);
    expect(await withRole()).toBe(0);
    expect(await audits("scim.group.deleted")).toBe(1);
    console.log(JSON.stringify({ scimStatementBudget: measured }));
  }, 120_000);
});
