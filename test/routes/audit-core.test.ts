import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { encryptString } from "../../src/lib/crypto";
import { webhookSecretAad } from "../../src/queue/webhook-signing";
import { newId } from "../../src/lib/ids";
import { api, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, verifyUserDirect, type TestUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

/**
 * Audit entries (and webhook events) of the core resources: organizations, settings, roles,
 * service accounts, projects, tags, proxies, integrations, and account deletion. Each success
 * writes its entry in the change's own batch (no extra round trip); a refused or failed change
 * writes none.
 */

const FROM = { "CF-Connecting-IP": "203.0.113.9", "User-Agent": "audit-core-test/1.0" };
const org = (id: string) => `/v1/organizations/${id}`;

interface Entry {
  organization_id: string;
  action: string;
  actor_type: string;
  actor_id: string | null;
  credential: string;
  target_type: string;
  target_id: string | null;
  changes: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
}

const call = (method: string, path: string, token: string, body?: unknown, extra: { env?: Record<string, string> } = {}) =>
  api(method, path, { token, body, headers: FROM, env: extra.env });

/** The entries a response's request wrote, by its X-Request-Id. */
async function entriesOf(res: ApiResponse): Promise<Entry[]> {
  const requestId = res.headers.get("x-request-id");
  expect(requestId).toBeTruthy();
  return (await env.DB.prepare("select * from audit_logs where request_id = ? order by target_id").bind(requestId).all<Entry>()).results;
}

async function expectEntry(
  res: ApiResponse,
  e: { orgId: string; action: string; actor: TestUser | { id: string }; credential?: string; target: { type: string; id: string }; changes?: string[] | null },
) {
  const rows = await entriesOf(res);
  expect(rows, res.text).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    organization_id: e.orgId,
    action: e.action,
    actor_type: "user",
    actor_id: e.actor.id,
    credential: e.credential ?? "session",
    target_type: e.target.type,
    target_id: e.target.id,
    ip: FROM["CF-Connecting-IP"],
    user_agent: FROM["User-Agent"],
    request_id: res.headers.get("x-request-id"),
  });
  if (e.changes !== undefined) expect(rows[0]!.changes === null ? null : JSON.parse(rows[0]!.changes)).toEqual(e.changes);
  return rows[0]!;
}

async function expectNoEntry(res: ApiResponse) {
  expect(await entriesOf(res)).toEqual([]);
}

/** A webhook endpoint of `orgId` subscribed to `events`, written directly (the webhook routes are another part). */
async function subscribe(orgId: string, events: string[]) {
  const id = newId("webhook");
  const now = Date.now();
  const sealed = await encryptString(
    (env as unknown as { ENCRYPTION_KEY: string }).ENCRYPTION_KEY,
    `whsec_${btoa("0123456789abcdef01234567")}`,
    webhookSecretAad(orgId, id),
  );
  await env.DB.prepare(
    "insert into webhooks (id, organization_id, url, description, events, secret_ciphertext, created_at, updated_at) values (?, ?, 'https://hooks.example.com/in', null, ?, ?, ?, ?)",
  )
    .bind(id, orgId, JSON.stringify(events), sealed, now, now)
    .run();
  return id;
}

async function deliveriesOf(webhookId: string) {
  const rows = (
    await env.DB.prepare("select event_id, event_type, payload from webhook_deliveries where webhook_id = ? order by created_at, event_id")
      .bind(webhookId)
      .all<{ event_id: string; event_type: string; payload: string }>()
  ).results;
  return rows.map((r) => ({ ...r, body: JSON.parse(r.payload) as { type: string; timestamp: string; data: any } }));
}

async function adminWithOrg() {
  const admin = await createUser();
  const o = await createOrg(admin);
  return { admin, orgId: o.id as string };
}

// The queue consumer delivers what these tests subscribe to, possibly after a test has ended.
beforeAll(() => {
  vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response("ok"));
});
afterAll(() => vi.restoreAllMocks());

describe("organizations", () => {
  it("PATCH records organization.updated with the changed field names and emits the event", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["organization.updated"]);
    const res = await call("PATCH", org(orgId), admin.accessToken, { name: "Renamed", description: null });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(2);
    // description was already null: only name changed.
    await expectEntry(res, { orgId, action: "organization.updated", actor: admin, target: { type: "organization", id: orgId }, changes: ["name"] });
    const [delivery] = await deliveriesOf(hook);
    expect(delivery!.event_type).toBe("organization.updated");
    expect(delivery!.body).toMatchObject({ type: "organization.updated", data: { id: orgId, name: "Renamed" } });
    // The organization as returned, minus its logo (a data URI up to 1 MiB, copied per endpoint otherwise).
    const { logo_data_uri: _logo, ...withoutLogo } = res.body;
    expect(delivery!.body.data).toEqual(withoutLogo);
  });

  it("PATCH with the values in place writes nothing and records nothing; a taken slug records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const current = (await call("GET", org(orgId), admin.accessToken)).body;
    const same = await call("PATCH", org(orgId), admin.accessToken, { name: current.name, slug: current.slug });
    expect(same.status, same.text).toBe(200);
    expect(same.body.updated_at).toBe(current.updated_at);
    expect(same.cost.queries).toBe(1);
    await expectNoEntry(same);

    const other = await createOrg(admin);
    const taken = await call("PATCH", org(orgId), admin.accessToken, { slug: other.slug });
    expectProblem(taken, 409, "slug_taken");
    await expectNoEntry(taken);
  });

  it("DELETE writes its entry before the organization goes, so it is cascaded with everything else", async () => {
    const { admin, orgId } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(orgId, member, "user");
    const refused = await call("DELETE", org(orgId), member.accessToken);
    expectProblem(refused, 403, "forbidden");
    await expectNoEntry(refused);

    const res = await call("DELETE", org(orgId), admin.accessToken);
    expect(res.status, res.text).toBe(204);
    expect(res.cost.queries).toBe(2);
    const left = await env.DB.prepare("select count(*) as n from audit_logs where organization_id = ?").bind(orgId).first<{ n: number }>();
    expect(left!.n).toBe(0);
  });

  it("PATCH preferences records organization.preferences_updated with the changed names; values in place record nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const res = await call("PATCH", `${org(orgId)}/preferences`, admin.accessToken, { sso_admin_bypass: false, support_team_access: false });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(2);
    // support_team_access defaults to false: only the bypass changed.
    await expectEntry(res, {
      orgId,
      action: "organization.preferences_updated",
      actor: admin,
      target: { type: "organization", id: orgId },
      changes: ["sso_admin_bypass"],
    });
    const again = await call("PATCH", `${org(orgId)}/preferences`, admin.accessToken, { sso_admin_bypass: false });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(res.body);
    await expectNoEntry(again);
  });

  it("a PAT's change records credential pat", async () => {
    const { admin, orgId } = await adminWithOrg();
    const pat = await createPat(admin, ["organization:write"]);
    const res = await call("PATCH", org(orgId), pat.token, { description: "by token" });
    expect(res.status, res.text).toBe(200);
    await expectEntry(res, {
      orgId,
      action: "organization.updated",
      actor: admin,
      credential: "pat",
      target: { type: "organization", id: orgId },
      changes: ["description"],
    });
  });
});

describe("settings", () => {
  it("PUT records the names of the settings and secrets it changes, never a value; the event carries no secret", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["organization.settings_updated"]);
    await call("PUT", `${org(orgId)}/settings`, admin.accessToken, { settings: { theme: "dark", keep: 1 }, secrets: { old: "old-value" } });
    const secret = "sk_live_never_logged_value";
    const res = await call("PUT", `${org(orgId)}/settings`, admin.accessToken, {
      settings: { theme: "light", keep: 1, added: true },
      secrets: { api_key: secret, old: null, absent: null },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(2);
    const entry = await expectEntry(res, {
      orgId,
      action: "organization.settings_updated",
      actor: admin,
      target: { type: "organization", id: orgId },
      changes: ["settings.added", "settings.theme", "secrets.api_key", "secrets.old"],
    });
    expect(JSON.stringify(entry)).not.toContain("light");
    const deliveries = await deliveriesOf(hook);
    expect(deliveries).toHaveLength(2);
    expect(deliveries[1]!.payload).not.toContain(secret);
    expect(deliveries[1]!.body.data).toEqual(res.body);
  });

  it("a PUT that changes nothing records nothing; one refused over the secrets limit records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    await call("PUT", `${org(orgId)}/settings`, admin.accessToken, { settings: { a: 1 } });
    const same = await call("PUT", `${org(orgId)}/settings`, admin.accessToken, { settings: { a: 1 }, secrets: { never_set: null } });
    expect(same.status, same.text).toBe(200);
    expect(same.cost.queries).toBe(1);
    await expectNoEntry(same);

    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`s${i}`, `value-${i}`]));
    const full = await call("PUT", `${org(orgId)}/settings`, admin.accessToken, { secrets: fifty });
    expect(full.status, full.text).toBe(200);
    // 50 secrets are one statement: the request stays far within D1's budget.
    // Authorization (3), then upsert, limit guard, entry, deliveries and read-back (2).
    expect(full.cost.statements).toBe(9);
    const over = await call("PUT", `${org(orgId)}/settings`, admin.accessToken, { secrets: { one_more: "x" } });
    expectProblem(over, 400, "validation_failed");
    await expectNoEntry(over);
  });
});

describe("roles", () => {
  it("create, update and delete record role.* with the role as the event's data", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["role.created", "role.updated", "role.deleted"]);
    const created = await call("POST", `${org(orgId)}/roles`, admin.accessToken, { name: "auditor", permissions: ["audit_log:read"] });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    await expectEntry(created, { orgId, action: "role.created", actor: admin, target: { type: "role", id: created.body.id } });

    const updated = await call("PATCH", `${org(orgId)}/roles/${created.body.id}`, admin.accessToken, { name: "auditors", permissions: ["audit_log:read"] });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.cost.queries).toBe(2);
    await expectEntry(updated, { orgId, action: "role.updated", actor: admin, target: { type: "role", id: created.body.id }, changes: ["name"] });

    const deleted = await call("DELETE", `${org(orgId)}/roles/${created.body.id}`, admin.accessToken);
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.cost.queries).toBe(2);
    await expectEntry(deleted, { orgId, action: "role.deleted", actor: admin, target: { type: "role", id: created.body.id } });

    const events = await deliveriesOf(hook);
    expect(events.map((d) => d.event_type)).toEqual(["role.created", "role.updated", "role.deleted"]);
    expect(events[0]!.body.data).toEqual(created.body);
    expect(events[1]!.body.data).toEqual(updated.body);
    expect(new Set(events.map((d) => d.event_id)).size).toBe(3);
  });

  it("a role in use is not deleted and records nothing; a taken name records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const role = await call("POST", `${org(orgId)}/roles`, admin.accessToken, { name: "ops", permissions: ["members:read"] });
    const member = await createUser();
    await addMemberDirect(orgId, member, "ops");
    const inUse = await call("DELETE", `${org(orgId)}/roles/${role.body.id}`, admin.accessToken);
    expectProblem(inUse, 409, "role_in_use");
    await expectNoEntry(inUse);
    const taken = await call("POST", `${org(orgId)}/roles`, admin.accessToken, { name: "ops", permissions: [] });
    expectProblem(taken, 409, "conflict");
    await expectNoEntry(taken);
  });
});

describe("service accounts", () => {
  it("create, rotate-key and delete record service_account.*; no event carries the key", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["service_account.created", "service_account.key_rotated", "service_account.deleted"]);
    const created = await call("POST", `${org(orgId)}/service-accounts`, admin.accessToken, { name: "ci" });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const id = created.body.service_account.id;
    await expectEntry(created, { orgId, action: "service_account.created", actor: admin, target: { type: "service_account", id } });

    const rotated = await call("POST", `${org(orgId)}/service-accounts/${id}/rotate-key`, admin.accessToken, {});
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.cost.queries).toBe(2);
    await expectEntry(rotated, { orgId, action: "service_account.key_rotated", actor: admin, target: { type: "service_account", id }, changes: ["key"] });

    const deleted = await call("DELETE", `${org(orgId)}/service-accounts/${id}`, admin.accessToken);
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.cost.queries).toBe(2);
    await expectEntry(deleted, { orgId, action: "service_account.deleted", actor: admin, target: { type: "service_account", id } });

    const events = await deliveriesOf(hook);
    expect(events.map((d) => d.event_type)).toEqual(["service_account.created", "service_account.key_rotated", "service_account.deleted"]);
    expect(events[0]!.body.data).toEqual(created.body.service_account);
    expect(events[2]!.body.data).toEqual(rotated.body.service_account);
    for (const d of events) {
      expect(d.payload).not.toContain(created.body.key);
      expect(d.payload).not.toContain(rotated.body.key);
    }
  });

  it("removing a service account through the members route records one service_account.deleted", async () => {
    const { admin, orgId } = await adminWithOrg();
    const created = await call("POST", `${org(orgId)}/service-accounts`, admin.accessToken, { name: "bot" });
    const id = created.body.service_account.id;
    const res = await call("DELETE", `${org(orgId)}/members/${id}`, admin.accessToken);
    expect(res.status, res.text).toBe(204);
    await expectEntry(res, { orgId, action: "service_account.deleted", actor: admin, target: { type: "service_account", id } });
  });

  it("an unknown account records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const res = await call("DELETE", `${org(orgId)}/service-accounts/${newId("serviceAccount")}`, admin.accessToken);
    expectProblem(res, 404, "not_found");
    await expectNoEntry(res);
  });
});

describe("projects", () => {
  it("create, update, grant, revoke and delete record project.*", async () => {
    const { admin, orgId } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(orgId, member, "user");
    const hook = await subscribe(orgId, ["project.created", "project.updated", "project.member_added", "project.member_removed", "project.deleted"]);
    const created = await call("POST", `${org(orgId)}/projects`, admin.accessToken, { name: "Suite", tags: ["smoke"] });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const id = created.body.id;
    const target = { type: "project", id };
    await expectEntry(created, { orgId, action: "project.created", actor: admin, target });

    const updated = await call("PATCH", `${org(orgId)}/projects/${id}`, admin.accessToken, { name: "Suite", private: true, tags: ["smoke", "nightly"] });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.cost.queries).toBe(2);
    await expectEntry(updated, { orgId, action: "project.updated", actor: admin, target, changes: ["private", "tags"] });
    const unchanged = await call("PATCH", `${org(orgId)}/projects/${id}`, admin.accessToken, { tags: ["nightly", "smoke"] });
    expect(unchanged.status, unchanged.text).toBe(200);
    await expectNoEntry(unchanged);

    const granted = await call("PUT", `${org(orgId)}/projects/${id}/members/${member.id}`, admin.accessToken);
    expect(granted.status, granted.text).toBe(200);
    expect(granted.cost.queries).toBe(2);
    await expectEntry(granted, { orgId, action: "project.member_added", actor: admin, target, changes: ["members"] });
    // Granting again changes nothing.
    const regrant = await call("PUT", `${org(orgId)}/projects/${id}/members/${member.id}`, admin.accessToken);
    expect(regrant.status, regrant.text).toBe(200);
    await expectNoEntry(regrant);

    const revoked = await call("DELETE", `${org(orgId)}/projects/${id}/members/${member.id}`, admin.accessToken);
    expect(revoked.status, revoked.text).toBe(204);
    expect(revoked.cost.queries).toBe(2);
    await expectEntry(revoked, { orgId, action: "project.member_removed", actor: admin, target, changes: ["members"] });
    const again = await call("DELETE", `${org(orgId)}/projects/${id}/members/${member.id}`, admin.accessToken);
    expectProblem(again, 404, "not_found");
    await expectNoEntry(again);

    const deleted = await call("DELETE", `${org(orgId)}/projects/${id}`, admin.accessToken);
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.cost.queries).toBe(2);
    await expectEntry(deleted, { orgId, action: "project.deleted", actor: admin, target });

    const events = await deliveriesOf(hook);
    expect(events.map((d) => d.event_type)).toEqual([
      "project.created",
      "project.updated",
      "project.member_added",
      "project.member_removed",
      "project.deleted",
    ]);
    expect(events[0]!.body.data).toEqual(created.body);
    expect(events[1]!.body.data).toEqual(updated.body);
    expect(events[2]!.body.data).toEqual(granted.body);
    expect(events[3]!.body.data).toEqual(granted.body);
  });

  it("a project the caller cannot see records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(orgId, member, "user");
    const hidden = await call("POST", `${org(orgId)}/projects`, admin.accessToken, { name: "Hidden", private: true });
    const res = await call("PATCH", `${org(orgId)}/projects/${hidden.body.id}`, member.accessToken, { name: "Seen" });
    expectProblem(res, 404, "not_found");
    await expectNoEntry(res);
  });
});

describe("tags", () => {
  async function tagged(token: string, orgId: string, names: string[]) {
    const res = await call("POST", `${org(orgId)}/projects`, token, { name: "Tagged", tags: names });
    expect(res.status, res.text).toBe(201);
    const list = await call("GET", `${org(orgId)}/tags?page_size=100`, token);
    return new Map<string, string>(list.body.items.map((t: { id: string; name: string }) => [t.name, t.id]));
  }

  it("deleting by id or by name records tag.deleted with the tag as the event's data; an unknown tag records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["tag.deleted"]);
    const ids = await tagged(admin.accessToken, orgId, ["one", "two"]);
    const byId = await call("DELETE", `${org(orgId)}/tags/${ids.get("one")}`, admin.accessToken);
    expect(byId.status, byId.text).toBe(204);
    expect(byId.cost.queries).toBe(2);
    await expectEntry(byId, { orgId, action: "tag.deleted", actor: admin, target: { type: "tag", id: ids.get("one")! } });
    const byName = await call("DELETE", `${org(orgId)}/tags/by-name/two`, admin.accessToken);
    expect(byName.status, byName.text).toBe(204);
    expect(byName.cost.queries).toBe(2);
    await expectEntry(byName, { orgId, action: "tag.deleted", actor: admin, target: { type: "tag", id: ids.get("two")! } });
    expect((await deliveriesOf(hook)).map((d) => d.body.data.name)).toEqual(["one", "two"]);

    const unknown = await call("DELETE", `${org(orgId)}/tags/by-name/two`, admin.accessToken);
    expectProblem(unknown, 404, "not_found");
    await expectNoEntry(unknown);
  });

  it("batch-delete of 100 tags records one entry and one event per tag, within the statement budget", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["tag.deleted"]);
    const names = Array.from({ length: 60 }, (_, i) => `t${i}`);
    // A project carries at most 20 tags: three projects make 60.
    for (let i = 0; i < 60; i += 20) await tagged(admin.accessToken, orgId, names.slice(i, i + 20));
    const ids = await tagged(admin.accessToken, orgId, []);
    // 40 existing tags by id, 40 by name (20 of them existing), 20 unknown ids.
    const body = {
      ids: [...names.slice(0, 40).map((n) => ids.get(n)!), ...Array.from({ length: 20 }, () => newId("tag"))],
      names: [...names.slice(40), ...Array.from({ length: 20 }, (_, i) => `absent${i}`)],
    };
    expect(body.ids.length + body.names.length).toBe(100);
    const res = await call("POST", `${org(orgId)}/tags/batch-delete`, admin.accessToken, body);
    expect(res.status, res.text).toBe(200);
    expect(res.body.results.filter((r: { status: string }) => r.status === "deleted")).toHaveLength(60);
    expect(res.cost.queries).toBe(2);
    // The authorization batch (membership, tags by id, tags by name), then entries + deliveries + delete.
    expect(res.cost.statements).toBe(6);
    const rows = await entriesOf(res);
    expect(rows).toHaveLength(60);
    expect(new Set(rows.map((r) => r.target_id))).toEqual(new Set(names.map((n) => ids.get(n))));
    expect(rows.every((r) => r.action === "tag.deleted" && r.actor_id === admin.id && r.request_id === res.headers.get("x-request-id"))).toBe(true);
    expect(await deliveriesOf(hook)).toHaveLength(60);

    const none = await call("POST", `${org(orgId)}/tags/batch-delete`, admin.accessToken, { names: ["t0"] });
    expect(none.status, none.text).toBe(200);
    expect(none.body.results).toEqual([{ name: "t0", status: "not_found" }]);
    await expectNoEntry(none);
  });
});

describe("proxies", () => {
  it("create, update, default set and clear, delete record proxy.*; the password never appears", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["proxy.created", "proxy.updated", "proxy.deleted"]);
    const password = "proxy-password-never-logged";
    const created = await call("POST", `${org(orgId)}/proxies`, admin.accessToken, {
      name: "egress",
      url: "http://proxy.example.com:3128",
      username: "u",
      password,
    });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const id = created.body.id;
    const target = { type: "proxy", id };
    await expectEntry(created, { orgId, action: "proxy.created", actor: admin, target, changes: ["name", "url", "username", "password"] });

    const updated = await call("PATCH", `${org(orgId)}/proxies/${id}`, admin.accessToken, { name: "egress", password: "another-secret" });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.cost.queries).toBe(2);
    await expectEntry(updated, { orgId, action: "proxy.updated", actor: admin, target, changes: ["password"] });

    const set = await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: id });
    expect(set.status, set.text).toBe(200);
    expect(set.cost.queries).toBe(2);
    await expectEntry(set, { orgId, action: "proxy.updated", actor: admin, target, changes: ["default"] });
    const reset = await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: id });
    expect(reset.status, reset.text).toBe(200);
    await expectNoEntry(reset);

    const cleared = await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: null });
    expect(cleared.status, cleared.text).toBe(200);
    await expectEntry(cleared, { orgId, action: "proxy.updated", actor: admin, target, changes: ["default"] });

    const deleted = await call("DELETE", `${org(orgId)}/proxies/${id}`, admin.accessToken);
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.cost.queries).toBe(2);
    await expectEntry(deleted, { orgId, action: "proxy.deleted", actor: admin, target });

    const events = await deliveriesOf(hook);
    expect(events.map((d) => d.event_type)).toEqual(["proxy.created", "proxy.updated", "proxy.updated", "proxy.updated", "proxy.deleted"]);
    expect(events[0]!.body.data).toEqual(created.body);
    expect(events[1]!.body.data).toEqual(updated.body);
    expect(events[2]!.body.data).toEqual(set.body.proxy);
    for (const d of events) expect(d.payload).not.toContain("secret");
    expect(events.some((d) => d.payload.includes(password))).toBe(false);
  });

  it("switching the default records both proxies; an unknown id records nothing", async () => {
    const { admin, orgId } = await adminWithOrg();
    const a = await call("POST", `${org(orgId)}/proxies`, admin.accessToken, { name: "a", url: "http://a.example.com:3128" });
    const b = await call("POST", `${org(orgId)}/proxies`, admin.accessToken, { name: "b", url: "http://b.example.com:3128" });
    await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: a.body.id });
    const res = await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: b.body.id });
    expect(res.status, res.text).toBe(200);
    const rows = await entriesOf(res);
    expect(rows.map((r) => [r.action, r.target_id]).sort()).toEqual(
      [
        ["proxy.updated", a.body.id],
        ["proxy.updated", b.body.id],
      ].sort(),
    );
    const unknown = await call("PUT", `${org(orgId)}/proxies/default`, admin.accessToken, { proxy_id: newId("proxy") });
    expectProblem(unknown, 404, "not_found");
    await expectNoEntry(unknown);
  });
});

describe("integrations", () => {
  it("create, environment mapping and delete record integration.*; secrets appear by name only", async () => {
    const { admin, orgId } = await adminWithOrg();
    const hook = await subscribe(orgId, ["integration.created", "integration.updated", "integration.deleted"]);
    const project = await call("POST", `${org(orgId)}/projects`, admin.accessToken, { name: "Mapped" });
    const secret = "integration-secret-never-logged";
    const created = await call("POST", `${org(orgId)}/integrations`, admin.accessToken, {
      kind: "github",
      display_name: "GH",
      config: { repo: "a/b" },
      secrets: { token: secret },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.cost.queries).toBe(2);
    const id = created.body.id;
    const target = { type: "integration", id };
    await expectEntry(created, { orgId, action: "integration.created", actor: admin, target, changes: ["kind", "display_name", "config", "secrets.token"] });

    const mapped = await call("PATCH", `${org(orgId)}/integrations/${id}/environment-mapping`, admin.accessToken, {
      mapping: { prod: project.body.id, gone: null },
    });
    expect(mapped.status, mapped.text).toBe(200);
    expect(mapped.cost.queries).toBe(2);
    await expectEntry(mapped, { orgId, action: "integration.updated", actor: admin, target, changes: ["environment_mapping.prod"] });
    const same = await call("PATCH", `${org(orgId)}/integrations/${id}/environment-mapping`, admin.accessToken, { mapping: { prod: project.body.id } });
    expect(same.status, same.text).toBe(200);
    await expectNoEntry(same);
    const bad = await call("PATCH", `${org(orgId)}/integrations/${id}/environment-mapping`, admin.accessToken, { mapping: { dev: newId("project") } });
    expectProblem(bad, 422, "unprocessable");
    await expectNoEntry(bad);

    const deleted = await call("DELETE", `${org(orgId)}/integrations/${id}`, admin.accessToken);
    expect(deleted.status, deleted.text).toBe(204);
    expect(deleted.cost.queries).toBe(2);
    await expectEntry(deleted, { orgId, action: "integration.deleted", actor: admin, target });

    const events = await deliveriesOf(hook);
    expect(events.map((d) => d.event_type)).toEqual(["integration.created", "integration.updated", "integration.deleted"]);
    expect(events[0]!.body.data).toEqual(created.body);
    expect(events[1]!.body.data).toEqual(mapped.body);
    for (const d of events) expect(d.payload).not.toContain(secret);
  });
});

describe("account deletion", () => {
  it("DELETE /v1/me records member.removed (with its event) in each organization the account leaves, none in one deleted with it", async () => {
    const owner = await createUser();
    const shared = (await createOrg(owner)).id as string;
    const leaver = await createUser();
    await addMemberDirect(shared, leaver, "user");
    const alone = (await createOrg(leaver)).id as string;
    const hook = await subscribe(shared, ["member.removed"]);

    const res = await call("DELETE", "/v1/me", leaver.accessToken);
    expect(res.status, res.text).toBe(204);
    expect(res.cost.queries).toBe(1);
    await expectEntry(res, { orgId: shared, action: "member.removed", actor: leaver, target: { type: "user", id: leaver.id }, changes: null });
    const [event] = await deliveriesOf(hook);
    expect(event!.event_id).toMatch(/^evt_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(event!.body).toEqual({
      type: "member.removed",
      timestamp: expect.any(String),
      data: {
        user: { id: leaver.id, display_name: leaver.displayName, email: leaver.email },
        role: "user",
        type: "user",
        joined_at: expect.any(String),
        left: true,
        account_deleted: true,
      },
    });
    const members = await call("GET", `${org(shared)}/members?page_size=10`, owner.accessToken);
    expect(event!.body.data.joined_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(members.body.items.map((m: any) => m.user.id)).toEqual([owner.id]);
    const gone = await env.DB.prepare("select count(*) as n from organizations where id = ?").bind(alone).first<{ n: number }>();
    expect(gone!.n).toBe(0);
  });

  it("an account in no organization records nothing; the last admin's refused deletion records nothing", async () => {
    const loner = await createUser();
    const res = await call("DELETE", "/v1/me", loner.accessToken);
    expect(res.status, res.text).toBe(204);
    await expectNoEntry(res);

    const admin = await createUser();
    const orgId = (await createOrg(admin)).id as string;
    await addMemberDirect(orgId, await createUser(), "user");
    const refused = await call("DELETE", "/v1/me", admin.accessToken);
    expectProblem(refused, 409, "last_admin");
    await expectNoEntry(refused);
  });

  it("a platform administrator's DELETE /v1/users/{id} records the administrator as the actor", async () => {
    const platform = await createUser();
    await verifyUserDirect(platform.id);
    const owner = await createUser();
    const orgId = (await createOrg(owner)).id as string;
    const target = await createUser();
    await addMemberDirect(orgId, target, "user");
    const res = await call("DELETE", `/v1/users/${target.id}`, platform.accessToken, undefined, { env: { PLATFORM_ADMIN_EMAILS: platform.email } });
    expect(res.status, res.text).toBe(204);
    expect(res.cost.queries).toBe(2);
    await expectEntry(res, { orgId, action: "member.removed", actor: platform, target: { type: "user", id: target.id } });
  });
});
