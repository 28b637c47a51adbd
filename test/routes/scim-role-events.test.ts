import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { isId, newId } from "../../src/lib/ids";
import { MAX_MEMBERS_PER_REQUEST } from "../../src/scim/groups.schemas";
import { serializeMember } from "../../src/routes/members/members.schemas";
import type { Bindings } from "../../src/env";
import { api, type ApiResponse } from "../helpers/client";
import { unique } from "../helpers/factories";
import { scimSetup, seedScimMembers, type ScimSetup } from "../helpers/scim";
import { oktaCreateUser, oktaDeactivate } from "../fixtures/scim/okta";

/**
 * Issue 12 follow-up: a role a SCIM group mapping gives or takes is a member.role_changed entry
 * and event per member whose role actually changes, written in the group change's batch (no extra
 * round trip), its data the member as PATCH …/members/{id} sends it, within the 50-statement
 * budget at the largest group a request accepts.
 */

const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const EXT = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BUDGET = 50;

/** A webhook queue that only records: deliveries stay in the outbox for the test to read. */
const quiet: Partial<Bindings> = {
  WEBHOOK_QUEUE: { name: "scim-role-events", send: async () => undefined, sendBatch: async () => undefined } as unknown as Queue,
};

const call = (s: ScimSetup, method: string, path: string, body?: unknown): Promise<ApiResponse> =>
  api(method, `/scim/v2${path}`, { token: s.token, body, env: quiet, headers: body !== undefined ? { "Content-Type": "application/scim+json" } : {} });

/** An endpoint seeded directly: subscribed to `events`, disabled or not. */
async function endpoint(orgId: string, events: string[], disabled = false) {
  const id = newId("webhook");
  const now = Date.now();
  await env.DB.prepare(
    "insert into webhooks (id, organization_id, url, description, events, secret_ciphertext, disabled_at, created_at, updated_at) values (?, ?, 'https://hooks.example.com/x', null, ?, 'x', ?, ?, ?)",
  )
    .bind(id, orgId, JSON.stringify(events), disabled ? now : null, now, now)
    .run();
  return id;
}

type Entry = {
  id: string;
  action: string;
  actor_type: string;
  actor_id: string;
  credential: string;
  target_type: string;
  target_id: string;
  changes: string | null;
  request_id: string | null;
  created_at: number;
};
const roleEntries = async (orgId: string) =>
  (
    await env.DB.prepare("select * from audit_logs where organization_id = ? and action = 'member.role_changed' order by created_at, id")
      .bind(orgId)
      .all<Entry>()
  ).results;
type Delivery = { webhook_id: string; event_id: string; event_type: string; payload: string };
const deliveries = async (webhookId: string) =>
  (await env.DB.prepare("select * from webhook_deliveries where webhook_id = ? order by created_at, event_id").bind(webhookId).all<Delivery>()).results;
const memberOf = (orgId: string, userId: string) =>
  env.DB.prepare("select * from members where organization_id = ? and member_id = ?")
    .bind(orgId, userId)
    .first<{ member_id: string; type: "user"; role: string; display_name: string; email: string; joined_at: number }>();

/** `n` users provisioned through /scim/v2 (active, so members with the role `user`): SCIM ids and account ids. */
async function provision(s: ScimSetup, n: number) {
  const out: { scu: string; usr: string }[] = [];
  for (let i = 0; i < n; i++) {
    const res = await call(s, "POST", "/Users", oktaCreateUser(`${unique(`r${i}`).toLowerCase()}@${s.domain}`));
    expect(res.status, res.text).toBe(201);
    const row = await env.DB.prepare("select user_id from scim_users where id = ?").bind(res.body.id).first<{ user_id: string }>();
    out.push({ scu: res.body.id, usr: row!.user_id });
  }
  return out;
}

/** Role changes recorded since `seen` entries, as [account id, previous role, role] from the events, sorted. */
async function changesSince(hook: string, seen: number) {
  const list = (await deliveries(hook)).filter((d) => d.event_type === "member.role_changed").slice(seen);
  return list
    .map((d) => JSON.parse(d.payload).data)
    .map((d) => [d.user.id, d.previous_role, d.role])
    .sort();
}

describe("member.role_changed from SCIM group role mappings", () => {
  it("POST, PATCH, PUT and DELETE of a mapped group record one entry and event per member whose role changes, and none for the others", async () => {
    const s = await scimSetup();
    const hook = await endpoint(s.org.id, ["member.role_changed", "scim.group.updated"]);
    const other = await endpoint(s.org.id, ["member.added"]);
    const off = await endpoint(s.org.id, ["member.role_changed"], true);
    const roleName = unique("ops")
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "");
    const role = await api("POST", `/v1/organizations/${s.org.id}/roles`, {
      token: s.admin.accessToken,
      body: { name: roleName, permissions: ["organization:read"] },
    });
    expect(role.status, role.text).toBe(201);
    const [a, b, c] = await provision(s, 3);

    const created = await call(s, "POST", "/Groups", {
      schemas: [GROUP],
      displayName: "Admins",
      members: [{ value: a!.scu }, { value: b!.scu }],
      [EXT]: { role: "admin" },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const gid = created.body.id as string;
    expect(await changesSince(hook, 0)).toEqual(
      [
        [a!.usr, "user", "admin"],
        [b!.usr, "user", "admin"],
      ].sort(),
    );

    // The entries: by the directory, one per member, ids in the format of every id, in the group change's request.
    const entries = await roleEntries(s.org.id);
    expect(entries.map((e) => e.target_id).sort()).toEqual([a!.usr, b!.usr].sort());
    const groupEntry = await env.DB.prepare("select * from audit_logs where organization_id = ? and action = 'scim.group.created'")
      .bind(s.org.id)
      .first<Entry>();
    for (const e of entries) {
      expect(e).toMatchObject({
        actor_type: "scim_directory",
        actor_id: s.configId,
        credential: "scim",
        target_type: "user",
        changes: '["role"]',
        request_id: groupEntry!.request_id,
      });
      expect(isId("audit", e.id), e.id).toBe(true);
    }
    // The event: the member as the API returns it, with previous_role; its id is its entry's.
    const sent = (await deliveries(hook)).filter((d) => d.event_type === "member.role_changed");
    for (const d of sent) {
      const payload = JSON.parse(d.payload);
      const m = (await memberOf(s.org.id, payload.data.user.id))!;
      const member = serializeMember({ memberId: m.member_id, type: m.type, role: m.role, displayName: m.display_name, email: m.email, joinedAt: m.joined_at });
      expect(payload).toEqual({
        type: "member.role_changed",
        timestamp: new Date(groupEntry!.created_at).toISOString(),
        data: { ...member, previous_role: "user" },
      });
      expect(d.event_id).toBe(`evt_${entries.find((e) => e.target_id === m.member_id)!.id.slice(4)}`);
      expect(isId("event", d.event_id)).toBe(true);
    }
    expect((await deliveries(other)).filter((d) => d.event_type === "member.role_changed")).toEqual([]);
    expect(await deliveries(off)).toEqual([]);

    // PATCH: c joins (user → admin), a leaves (admin → user), b stays (no entry).
    let seen = sent.length;
    const patched = await call(s, "PATCH", `/Groups/${gid}`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "add", path: "members", value: [{ value: c!.scu }, { value: b!.scu }] },
        { op: "remove", path: `members[value eq "${a!.scu}"]` },
      ],
    });
    expect(patched.status, patched.text).toBe(204);
    expect(patched.cost.queries).toBe(2);
    expect(await changesSince(hook, seen)).toEqual(
      [
        [a!.usr, "admin", "user"],
        [c!.usr, "user", "admin"],
      ].sort(),
    );
    seen += 2;

    // A rename, and the same role sent again (every member recomputed): nothing changes.
    const same = await call(s, "PATCH", `/Groups/${gid}`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "replace", path: "displayName", value: "Admins!" },
        { op: "replace", path: `${EXT}:role`, value: "admin" },
      ],
    });
    expect(same.status, same.text).toBe(204);
    expect(await changesSince(hook, seen)).toEqual([]);

    // An unmapped group changes no role.
    const plain = await call(s, "POST", "/Groups", { schemas: [GROUP], displayName: "Plain", members: [{ value: a!.scu }, { value: c!.scu }] });
    expect(plain.status, plain.text).toBe(201);
    expect(await changesSince(hook, seen)).toEqual([]);

    // PUT with another role and members: a rejoins; b and c move admin → the custom role.
    const put = await call(s, "PUT", `/Groups/${gid}?excludedAttributes=members`, {
      schemas: [GROUP],
      displayName: "Ops",
      members: [{ value: a!.scu }, { value: b!.scu }, { value: c!.scu }],
      [EXT]: { role: roleName },
    });
    expect(put.status, put.text).toBe(200);
    expect(put.cost.queries).toBe(2);
    expect(await changesSince(hook, seen)).toEqual(
      [
        [a!.usr, "user", roleName],
        [b!.usr, "admin", roleName],
        [c!.usr, "admin", roleName],
      ].sort(),
    );
    seen += 3;

    // DELETE: everyone goes back to `user`.
    const del = await call(s, "DELETE", `/Groups/${gid}`);
    expect(del.status, del.text).toBe(204);
    expect(del.cost.queries).toBe(2);
    expect(await changesSince(hook, seen)).toEqual(
      [
        [a!.usr, roleName, "user"],
        [b!.usr, roleName, "user"],
        [c!.usr, roleName, "user"],
      ].sort(),
    );
    seen += 3;

    // Entries and events match one to one; the group's own entries are still there.
    expect(await roleEntries(s.org.id)).toHaveLength(seen);
    expect((await deliveries(hook)).filter((d) => d.event_type === "scim.group.updated")).toHaveLength(3);
  });

  it("the organization's last human admin is not demoted by a mapping, and no entry says so", async () => {
    const s = await scimSetup();
    const hook = await endpoint(s.org.id, ["member.role_changed"]);
    const [a] = await provision(s, 1);
    const g = await call(s, "POST", "/Groups", { schemas: [GROUP], displayName: "Admins", members: [{ value: a!.scu }], [EXT]: { role: "admin" } });
    expect(g.status, g.text).toBe(201);
    expect(await changesSince(hook, 0)).toEqual([[a!.usr, "user", "admin"]]);
    // The founder steps down: a, SCIM-managed, is now the only admin.
    const down = await api("PATCH", `/v1/organizations/${s.org.id}/members/${s.admin.id}`, { token: s.admin.accessToken, body: { role: "user" }, env: quiet });
    expect(down.status, down.text).toBe(200);
    const left = await call(s, "PATCH", `/Groups/${g.body.id}`, { schemas: [PATCH_OP], Operations: [{ op: "remove", path: `members[value eq "${a!.scu}"]` }] });
    expect(left.status, left.text).toBe(204);
    expect((await memberOf(s.org.id, a!.usr))!.role).toBe("admin");
    // Since a's promotion and the founder's own change: nothing.
    expect(await changesSince(hook, 2)).toEqual([]);
    expect(await roleEntries(s.org.id)).toHaveLength(2);
  });

  it("a change that would demote every remaining admin at once demotes none of them, and records nothing", async () => {
    const s = await scimSetup();
    const hook = await endpoint(s.org.id, ["member.role_changed"]);
    const [a, b] = await provision(s, 2);
    const g = await call(s, "POST", "/Groups", {
      schemas: [GROUP],
      displayName: "Admins",
      members: [{ value: a!.scu }, { value: b!.scu }],
      [EXT]: { role: "admin" },
    });
    expect(g.status, g.text).toBe(201);
    const down = await api("PATCH", `/v1/organizations/${s.org.id}/members/${s.admin.id}`, { token: s.admin.accessToken, body: { role: "user" }, env: quiet });
    expect(down.status, down.text).toBe(200);
    const del = await call(s, "DELETE", `/Groups/${g.body.id}`);
    expect(del.status, del.text).toBe(204);
    expect([(await memberOf(s.org.id, a!.usr))!.role, (await memberOf(s.org.id, b!.usr))!.role]).toEqual(["admin", "admin"]);
    expect(await changesSince(hook, 3)).toEqual([]);
  });

  it("deactivating or deleting a user in a mapped group ends their membership (member.removed), no role_changed", async () => {
    const s = await scimSetup();
    const hook = await endpoint(s.org.id, ["member.role_changed", "member.removed"]);
    const [a, b] = await provision(s, 2);
    const g = await call(s, "POST", "/Groups", {
      schemas: [GROUP],
      displayName: "Admins",
      members: [{ value: a!.scu }, { value: b!.scu }],
      [EXT]: { role: "admin" },
    });
    expect(g.status, g.text).toBe(201);
    expect(await changesSince(hook, 0)).toHaveLength(2);
    const off = await call(s, "PATCH", `/Users/${a!.scu}`, oktaDeactivate);
    expect(off.status, off.text).toBe(200);
    const gone = await call(s, "DELETE", `/Users/${b!.scu}`);
    expect(gone.status, gone.text).toBe(204);
    expect(await changesSince(hook, 2)).toEqual([]);
    expect((await deliveries(hook)).filter((d) => d.event_type === "member.removed")).toHaveLength(2);
  });
});

describe(`at ${MAX_MEMBERS_PER_REQUEST} members, within ${BUDGET} statements and one write round trip`, () => {
  const USERS = MAX_MEMBERS_PER_REQUEST;
  let s: ScimSetup;
  let hook = "";
  let scu: string[] = [];
  let roleName = "";
  const measured: Record<string, { statements: number; queries: number; rowsRead: number }> = {};

  function within(label: string, res: ApiResponse) {
    measured[label] = { statements: res.cost.statements, queries: res.cost.queries, rowsRead: res.cost.rowsRead };
    expect(res.cost.statements, label).toBeLessThanOrEqual(BUDGET);
    expect(res.cost.queries, label).toBe(2);
  }
  const counts = async () => {
    const entries = await env.DB.prepare("select count(*) as n from audit_logs where organization_id = ? and action = 'member.role_changed'")
      .bind(s.org.id)
      .first<{ n: number }>();
    const sent = await env.DB.prepare("select count(*) as n from webhook_deliveries where webhook_id = ? and event_type = 'member.role_changed'")
      .bind(hook)
      .first<{ n: number }>();
    return { entries: entries!.n, deliveries: sent!.n };
  };
  const withRole = async (name: string) =>
    (await env.DB.prepare("select count(*) as n from members where organization_id = ? and role = ?").bind(s.org.id, name).first<{ n: number }>())!.n;

  beforeAll(async () => {
    s = await scimSetup();
    hook = await endpoint(s.org.id, ["member.role_changed"]);
    roleName = unique("eng")
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "");
    const role = await api("POST", `/v1/organizations/${s.org.id}/roles`, {
      token: s.admin.accessToken,
      body: { name: roleName, permissions: ["organization:read"] },
    });
    expect(role.status, role.text).toBe(201);
    ({ scu } = await seedScimMembers(s, USERS, "e"));
  }, 300_000);

  let gid = "";
  it(`POST a mapped group of ${USERS} members: ${USERS} entries and deliveries`, async () => {
    const res = await call(s, "POST", "/Groups?excludedAttributes=members", {
      schemas: [GROUP],
      displayName: "Everyone",
      members: scu.map((value) => ({ value })),
      [EXT]: { role: roleName },
    });
    expect(res.status, res.text).toBe(201);
    within("POST mapped group, 10,000 members", res);
    gid = res.body.id;
    expect(await withRole(roleName)).toBe(USERS);
    expect(await counts()).toEqual({ entries: USERS, deliveries: USERS });
  }, 120_000);

  it(`PUT the group to another role with half its members: ${USERS} changes`, async () => {
    const res = await call(s, "PUT", `/Groups/${gid}?excludedAttributes=members`, {
      schemas: [GROUP],
      displayName: "Everyone",
      members: scu.slice(USERS / 2).map((value) => ({ value })),
      [EXT]: { role: "admin" },
    });
    expect(res.status, res.text).toBe(200);
    within("PUT group, 5,000 leave, 5,000 change role", res);
    expect(await withRole("admin")).toBe(USERS / 2 + 1); // and the founder
    expect(await counts()).toEqual({ entries: 2 * USERS, deliveries: 2 * USERS });
  }, 120_000);

  it(`PUT the same members and role again: no change, no entry`, async () => {
    const res = await call(s, "PUT", `/Groups/${gid}?excludedAttributes=members`, {
      schemas: [GROUP],
      displayName: "Everyone",
      members: scu.slice(USERS / 2).map((value) => ({ value })),
      [EXT]: { role: "admin" },
    });
    expect(res.status, res.text).toBe(200);
    within("PUT group, nothing changes", res);
    expect(await counts()).toEqual({ entries: 2 * USERS, deliveries: 2 * USERS });
  }, 120_000);

  it(`DELETE the group of ${USERS / 2} admins`, async () => {
    const res = await call(s, "DELETE", `/Groups/${gid}`);
    expect(res.status, res.text).toBe(204);
    within("DELETE mapped group, 5,000 members", res);
    expect(await withRole("admin")).toBe(1);
    expect(await counts()).toEqual({ entries: 2.5 * USERS, deliveries: 2.5 * USERS });
    console.log(JSON.stringify({ scimRoleEvents: measured }));
  }, 120_000);
});
