import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import type { Bindings } from "../../src/env";
import { api, type ApiResponse } from "../helpers/client";
import { createVerifiedUser, unique } from "../helpers/factories";
import { scimSetup, type ScimSetup } from "../helpers/scim";
import { entraDisable, entraEnable } from "../fixtures/scim/entra";
import { oktaCreateUser, oktaPutUser } from "../fixtures/scim/okta";

/**
 * Issue 12: every SCIM write records its audit entry (actor: the directory, credential `scim`)
 * and its events in the change's batch, no extra round trip; a write that changes nothing
 * records nothing; a write that fails records nothing.
 */

const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const EXT = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
const PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

let recorders = 0;
/** A webhook queue that only records: deliveries stay in the outbox for the test to read. */
function recordingQueue(): Partial<Bindings> {
  const queue = { name: `scim-audit-${++recorders}`, send: async () => undefined, sendBatch: async () => undefined } as unknown as Queue;
  return { WEBHOOK_QUEUE: queue };
}
const quiet = recordingQueue();

const call = (s: ScimSetup, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> =>
  api(method, `/scim/v2${path}`, {
    token: s.token,
    body,
    env: quiet,
    headers: { ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}), "User-Agent": "Okta SCIM Client 1.0.0", ...headers },
  });

/** An endpoint of the organization subscribed to every SCIM and member event, seeded directly. */
async function subscribe(orgId: string) {
  const id = newId("webhook");
  const now = Date.now();
  const events = [
    "scim.user.created",
    "scim.user.updated",
    "scim.user.deprovisioned",
    "scim.user.deleted",
    "scim.group.created",
    "scim.group.updated",
    "scim.group.deleted",
    "member.added",
    "member.removed",
  ];
  await env.DB.prepare(
    "insert into webhooks (id, organization_id, url, description, events, secret_ciphertext, created_at, updated_at) values (?, ?, 'https://hooks.example.com/x', null, ?, 'x', ?, ?)",
  )
    .bind(id, orgId, JSON.stringify(events), now, now)
    .run();
  return id;
}

type Entry = {
  action: string;
  actor_type: string;
  actor_id: string;
  credential: string;
  target_type: string;
  target_id: string;
  changes: string | null;
  user_agent: string | null;
  request_id: string | null;
};
const entries = async (orgId: string) =>
  (await env.DB.prepare("select * from audit_logs where organization_id = ? order by created_at, id").bind(orgId).all<Entry>()).results.filter(
    (e) => e.action !== "organization.created",
  );
const events = async (webhookId: string) =>
  (
    await env.DB.prepare("select event_type, payload from webhook_deliveries where webhook_id = ? order by created_at, event_id")
      .bind(webhookId)
      .all<{ event_type: string; payload: string }>()
  ).results.map((d) => ({ type: d.event_type, data: JSON.parse(d.payload).data }));

async function setup() {
  const s = await scimSetup();
  const hook = await subscribe(s.org.id);
  return { s, hook };
}

describe("SCIM Users", () => {
  it("POST records scim.user.created and member.added by the directory, with their events, in the write's one round trip", async () => {
    const { s, hook } = await setup();
    const email = `${unique("ann").toLowerCase()}@${s.domain}`;
    const res = await call(s, "POST", "/Users", oktaCreateUser(email));
    expect(res.status, res.text).toBe(201);
    // The token and the load, then one write batch that holds the entries and the outbox rows.
    expect(res.cost.queries).toBe(2);
    const account = await env.DB.prepare("select id from users where email = ?").bind(email).first<{ id: string }>();
    const log = await entries(s.org.id);
    expect(log.map((e) => [e.action, e.target_type, e.target_id])).toEqual([
      ["scim.user.created", "scim_user", res.body.id],
      ["member.added", "user", account!.id],
    ]);
    for (const e of log) {
      expect(e).toMatchObject({ actor_type: "scim_directory", actor_id: s.configId, credential: "scim", user_agent: "Okta SCIM Client 1.0.0" });
      expect(e.request_id).toMatch(/^req_/);
    }
    expect(await events(hook)).toEqual([
      {
        type: "scim.user.created",
        data: {
          id: res.body.id,
          user_id: account!.id,
          email,
          user_name: email,
          external_id: res.body.externalId ?? null,
          display_name: res.body.displayName ?? null,
          active: true,
          organization_id: s.org.id,
          identity_provider_config_id: s.configId,
        },
      },
      { type: "member.added", data: expect.objectContaining({ user: expect.objectContaining({ id: account!.id, email }), role: "user", type: "user" }) },
    ]);
  });

  it("linking an account that is already a member records no member.added; an inactive user none either", async () => {
    const { s } = await setup();
    const person = await createVerifiedUser({ email: `${unique("inv").toLowerCase()}@${s.domain}` });
    await env.DB.prepare(
      "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', 'admin', 'P', 'p', ?, ?)",
    )
      .bind(s.org.id, person.id, person.email, Date.now())
      .run();
    expect((await call(s, "POST", "/Users", oktaCreateUser(person.email))).status).toBe(201);
    const off = await call(s, "POST", "/Users", { ...oktaCreateUser(`${unique("off").toLowerCase()}@${s.domain}`), active: false });
    expect(off.status, off.text).toBe(201);
    expect((await entries(s.org.id)).map((e) => e.action)).toEqual(["scim.user.created", "scim.user.created"]);
  });

  it("PATCH and PUT record scim.user.updated with the changed field names only; the same values record nothing", async () => {
    const { s, hook } = await setup();
    const email = `${unique("bo").toLowerCase()}@${s.domain}`;
    const created = await call(s, "POST", "/Users", oktaCreateUser(email));
    const id = created.body.id as string;
    const patched = await call(s, "PATCH", `/Users/${id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: "replace", path: "name.familyName", value: "Secretvalue" }],
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.cost.queries).toBe(2);
    const same = await call(s, "PATCH", `/Users/${id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: "replace", path: "name.familyName", value: "Secretvalue" }],
    });
    expect(same.status, same.text).toBe(200);
    const put = await call(s, "PUT", `/Users/${id}`, { ...oktaPutUser(id, email), displayName: "Bo Renamed" });
    expect(put.status, put.text).toBe(200);
    const log = (await entries(s.org.id)).filter((e) => e.action === "scim.user.updated");
    expect(log.map((e) => JSON.parse(e.changes!))).toEqual([["name"], expect.arrayContaining(["displayName"])]);
    // Field names, never values.
    expect(JSON.stringify(await entries(s.org.id))).not.toContain("Secretvalue");
    const updated = (await events(hook)).filter((e) => e.type === "scim.user.updated");
    expect(updated).toHaveLength(2);
    expect(updated[1]!.data).toMatchObject({ id, display_name: "Bo Renamed", active: true });
  });

  it("deactivation records scim.user.deprovisioned (user id, email, SCIM id, organization) and member.removed; reactivation scim.user.updated and member.added", async () => {
    const { s, hook } = await setup();
    const email = `${unique("cy").toLowerCase()}@${s.domain}`;
    const created = await call(s, "POST", "/Users", oktaCreateUser(email));
    const id = created.body.id as string;
    const userId = (await env.DB.prepare("select user_id from scim_users where id = ?").bind(id).first<{ user_id: string }>())!.user_id;
    const off = await call(s, "PATCH", `/Users/${id}`, entraDisable);
    expect(off.status, off.text).toBe(200);
    expect(off.cost.queries).toBe(2);
    // Deactivating again changes nothing and records nothing.
    expect((await call(s, "PATCH", `/Users/${id}`, entraDisable)).status).toBe(200);
    const on = await call(s, "PATCH", `/Users/${id}`, entraEnable);
    expect(on.status, on.text).toBe(200);
    const log = await entries(s.org.id);
    expect(log.map((e) => [e.action, e.target_id, e.changes && JSON.parse(e.changes)])).toEqual([
      ["scim.user.created", id, null],
      ["member.added", userId, ["role"]],
      ["scim.user.deprovisioned", id, ["active"]],
      ["member.removed", userId, null],
      ["scim.user.updated", id, ["active"]],
      ["member.added", userId, ["role"]],
    ]);
    const sent = await events(hook);
    expect(sent.map((e) => e.type)).toEqual([
      "scim.user.created",
      "member.added",
      "scim.user.deprovisioned",
      "member.removed",
      "scim.user.updated",
      "member.added",
    ]);
    expect(sent[2]!.data).toMatchObject({ id, user_id: userId, email, organization_id: s.org.id, active: false });
    expect(sent[3]!.data).toMatchObject({ user: { id: userId, email }, role: "user", left: false });
  });

  it("deactivating a linked member another config manages records the deprovisioning but no member.removed", async () => {
    const { s } = await setup();
    const person = await createVerifiedUser({ email: `${unique("own").toLowerCase()}@${s.domain}` });
    const other = newId("identityProvider");
    const now = Date.now();
    await env.DB.batch([
      env.DB.prepare(
        "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, scim_enabled, created_at, updated_at) values (?, ?, 'Other', ?, 1, ?, ?)",
      ).bind(other, s.org.id, `https://idp.example/${other}`, now, now),
      env.DB.prepare(
        "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at, scim_config_id) values (?, ?, 'user', 'user', 'P', 'p', ?, ?, ?)",
      ).bind(s.org.id, person.id, person.email, now, other),
    ]);
    const created = await call(s, "POST", "/Users", oktaCreateUser(person.email));
    expect(created.status, created.text).toBe(201);
    expect((await call(s, "PATCH", `/Users/${created.body.id}`, entraDisable)).status).toBe(200);
    expect((await entries(s.org.id)).map((e) => e.action)).toEqual(["scim.user.created", "scim.user.deprovisioned"]);
    expect(await env.DB.prepare("select 1 from members where organization_id = ? and member_id = ?").bind(s.org.id, person.id).first()).not.toBeNull();
  });

  it("DELETE records scim.user.deleted and member.removed; of an inactive user only scim.user.deleted", async () => {
    const { s, hook } = await setup();
    const a = await call(s, "POST", "/Users", oktaCreateUser(`${unique("da").toLowerCase()}@${s.domain}`));
    const b = await call(s, "POST", "/Users", { ...oktaCreateUser(`${unique("db").toLowerCase()}@${s.domain}`), active: false });
    const del = await call(s, "DELETE", `/Users/${a.body.id}`);
    expect(del.status, del.text).toBe(204);
    expect(del.cost.queries).toBe(2);
    expect((await call(s, "DELETE", `/Users/${b.body.id}`)).status).toBe(204);
    const log = (await entries(s.org.id)).filter((e) => e.action.endsWith("deleted") || e.action === "member.removed");
    expect(log.map((e) => [e.action, e.target_type])).toEqual([
      ["scim.user.deleted", "scim_user"],
      ["member.removed", "user"],
      ["scim.user.deleted", "scim_user"],
    ]);
    expect((await events(hook)).filter((e) => e.type === "scim.user.deleted").map((e) => e.data.id)).toEqual([a.body.id, b.body.id]);
  });

  it("a write that fails records nothing: 412 on If-Match, 409 on a taken userName, 409 on full seats", async () => {
    const { s } = await setup();
    const email = `${unique("ff").toLowerCase()}@${s.domain}`;
    const created = await call(s, "POST", "/Users", oktaCreateUser(email));
    const id = created.body.id as string;
    const before = (await entries(s.org.id)).length;
    expect((await call(s, "PATCH", `/Users/${id}`, entraDisable, { "If-Match": 'W/"99"' })).status).toBe(412);
    expect((await call(s, "DELETE", `/Users/${id}`, undefined, { "If-Match": 'W/"99"' })).status).toBe(412);
    expect((await call(s, "POST", "/Users", oktaCreateUser(email))).status).toBe(409);
    await env.DB.prepare("update organizations set pending_invitation_count = 1000 where id = ?").bind(s.org.id).run();
    expect((await call(s, "POST", "/Users", oktaCreateUser(`${unique("full").toLowerCase()}@${s.domain}`))).status).toBe(409);
    expect(await entries(s.org.id)).toHaveLength(before);
  });
});

describe("SCIM Groups", () => {
  /** `n` provisioned users' SCIM ids (typed as four: the tests take at most that many). */
  async function users(s: ScimSetup, n: number) {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push((await call(s, "POST", "/Users", oktaCreateUser(`${unique(`g${i}`).toLowerCase()}@${s.domain}`))).body.id);
    return out as [string, string, string, string];
  }

  it("POST, PATCH, PUT and DELETE record scim.group.created / updated / deleted with their events; a failed gate records nothing", async () => {
    const { s, hook } = await setup();
    const [u1, u2] = await users(s, 2);
    const created = await call(s, "POST", "/Groups", { schemas: [GROUP], displayName: "Eng", members: [{ value: u1 }], [EXT]: { role: "admin" } });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const gid = created.body.id as string;
    const patched = await call(s, "PATCH", `/Groups/${gid}`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "add", path: "members", value: [{ value: u2 }] },
        { op: "replace", path: "displayName", value: "Engineering" },
      ],
    });
    expect(patched.status, patched.text).toBe(204);
    expect(patched.cost.queries).toBe(2);
    expect(
      (
        await call(
          s,
          "PATCH",
          `/Groups/${gid}`,
          { schemas: [PATCH_OP], Operations: [{ op: "replace", path: "displayName", value: "X" }] },
          { "If-Match": 'W/"1"' },
        )
      ).status,
    ).toBe(412);
    const put = await call(s, "PUT", `/Groups/${gid}`, { schemas: [GROUP], displayName: "Engineering", externalId: "ext-1" });
    expect(put.status, put.text).toBe(200);
    const del = await call(s, "DELETE", `/Groups/${gid}`);
    expect(del.status, del.text).toBe(204);
    expect(del.cost.queries).toBe(2);
    expect((await call(s, "DELETE", `/Groups/${gid}`)).status).toBe(404);
    const log = (await entries(s.org.id)).filter((e) => e.action.startsWith("scim.group."));
    expect(log.map((e) => [e.action, e.target_type, e.target_id, e.changes && JSON.parse(e.changes)])).toEqual([
      ["scim.group.created", "scim_group", gid, ["members"]],
      ["scim.group.updated", "scim_group", gid, ["displayName", "members"]],
      ["scim.group.updated", "scim_group", gid, ["externalId"]],
      ["scim.group.deleted", "scim_group", gid, null],
    ]);
    for (const e of log) expect(e).toMatchObject({ actor_type: "scim_directory", actor_id: s.configId, credential: "scim" });
    const sent = (await events(hook)).filter((e) => e.type.startsWith("scim.group."));
    expect(sent.map((e) => e.type)).toEqual(["scim.group.created", "scim.group.updated", "scim.group.updated", "scim.group.deleted"]);
    expect(sent[1]!.data).toEqual({
      id: gid,
      display_name: "Engineering",
      external_id: null,
      role: "admin",
      organization_id: s.org.id,
      identity_provider_config_id: s.configId,
    });
  });

  it("a PATCH's member operations apply in order as their net effect, roles following", async () => {
    const { s } = await setup();
    const [a, b, c, d] = await users(s, 4);
    const g = await call(s, "POST", "/Groups", { schemas: [GROUP], displayName: "Ops", members: [{ value: a }, { value: b }], [EXT]: { role: "admin" } });
    const gid = g.body.id as string;
    const res = await call(s, "PATCH", `/Groups/${gid}?attributes=members`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "add", path: "members", value: [{ value: c }] },
        { op: "remove", path: `members[value eq "${c}"]` },
        { op: "remove", path: `members[value eq "${a}"]` },
        { op: "add", path: "members", value: [{ value: d }, { value: a }] },
        { op: "remove", path: "members", value: [{ value: d }] },
        { op: "add", path: "members", value: [{ value: c }] },
      ],
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body.members.map((m: { value: string }) => m.value).sort()).toEqual([a, b, c].sort());
    const row = await env.DB.prepare("select member_count from scim_groups where id = ?").bind(gid).first<{ member_count: number }>();
    expect(row!.member_count).toBe(3);
    const roleOf = async (scimId: string) =>
      (await env.DB.prepare("select m.role from members m join scim_users su on su.user_id = m.member_id where su.id = ? and m.organization_id = ?")
        .bind(scimId, s.org.id)
        .first<{ role: string }>())!.role;
    expect([await roleOf(a), await roleOf(b), await roleOf(c), await roleOf(d)]).toEqual(["admin", "admin", "admin", "user"]);

    // A replace drops what came before it; later steps still apply.
    const replaced = await call(s, "PATCH", `/Groups/${gid}?attributes=members`, {
      schemas: [PATCH_OP],
      Operations: [
        { op: "add", path: "members", value: [{ value: d }] },
        { op: "replace", path: "members", value: [{ value: a }, { value: d }] },
        { op: "remove", path: `members[value eq "${a}"]` },
      ],
    });
    expect(replaced.body.members.map((m: { value: string }) => m.value)).toEqual([d]);
    expect([await roleOf(a), await roleOf(b), await roleOf(c), await roleOf(d)]).toEqual(["user", "user", "user", "admin"]);
  });

  it("PUT changing the role and the members at once recomputes the leavers from the old role", async () => {
    const { s } = await setup();
    const [a, b] = await users(s, 2);
    const g = await call(s, "POST", "/Groups", { schemas: [GROUP], displayName: "Leads", members: [{ value: a }], [EXT]: { role: "admin" } });
    const put = await call(s, "PUT", `/Groups/${g.body.id}`, { schemas: [GROUP], displayName: "Leads", members: [{ value: b }], [EXT]: { role: "user" } });
    expect(put.status, put.text).toBe(200);
    const roleOf = async (scimId: string) =>
      (await env.DB.prepare("select m.role from members m join scim_users su on su.user_id = m.member_id where su.id = ? and m.organization_id = ?")
        .bind(scimId, s.org.id)
        .first<{ role: string }>())!.role;
    expect([await roleOf(a), await roleOf(b)]).toEqual(["user", "user"]);
  });
});
