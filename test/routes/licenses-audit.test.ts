import { describe, expect, it } from "vitest";
import { del, post, put } from "../helpers/client";
import { auditEntries, outboxEvents, subscribe } from "../helpers/audit-trail";
import { createOrg, createUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { createLicense, platformAdmin, UNKNOWN_LICENSE } from "./licenses-helpers";

/**
 * License changes are recorded in the organization they concern: assignment and removal by its
 * billing admin, revocation (and creation for an organization) by the platform administrator.
 * Events carry the license's terms and status, never its key or the key's prefix.
 */

const licensePath = (orgId: string) => `/v1/organizations/${orgId}/license`;
const LICENSE_EVENTS = ["license.assigned", "license.unassigned", "license.revoked"];

async function ownerAndOrg() {
  const owner = await createUser();
  const org = await createOrg(owner);
  return { owner, org, t: { token: owner.accessToken } };
}

const ofLicenses = async (orgId: string) => (await auditEntries(orgId)).filter((e) => e.target_type === "license");

function expectNoKey(events: unknown[], license: { license_key: string; key_prefix: string }) {
  const text = JSON.stringify(events);
  expect(text).not.toContain(license.license_key);
  expect(text).not.toContain(license.key_prefix);
  expect(text).not.toContain("key_prefix");
}

describe("organization routes", () => {
  it("PUT records license.assigned, a replacement records the new one, DELETE records license.unassigned", async () => {
    const admin = await platformAdmin();
    const { owner, org, t } = await ownerAndOrg();
    await subscribe(org.id, LICENSE_EVENTS);
    const a = await createLicense(admin, { plan: "team", seats: 20 });
    const b = await createLicense(admin, { plan: "enterprise", seats: 50, features: ["scim"] });
    const first = await put(licensePath(org.id), { license_id: a.id }, t);
    expect(first.status, first.text).toBe(200);
    expect([first.cost.queries, first.cost.statements]).toEqual([2, 8]);
    // The same license again changes nothing.
    expect((await put(licensePath(org.id), { license_id: a.id }, t)).status).toBe(200);
    expect((await put(licensePath(org.id), { license_id: b.id }, t)).status).toBe(200);
    const removed = await del(licensePath(org.id), t);
    expect(removed.status).toBe(204);
    expect([removed.cost.queries, removed.cost.statements]).toEqual([2, 5]);
    // No license: idempotent, nothing written or recorded.
    const again = await del(licensePath(org.id), t);
    expect(again.status).toBe(204);
    expect(again.cost.queries).toBe(1);

    const entries = await ofLicenses(org.id);
    expect(entries.map((e) => [e.action, e.target_id, e.changes, e.actor_id, e.credential])).toEqual([
      ["license.assigned", a.id, ["license_id"], owner.id, "session"],
      ["license.assigned", b.id, ["license_id"], owner.id, "session"],
      ["license.unassigned", b.id, ["license_id"], owner.id, "session"],
    ]);
    const events = await outboxEvents(org.id);
    expect(events.map((e) => e.type)).toEqual(["license.assigned", "license.assigned", "license.unassigned"]);
    expect(events[0]!.data).toMatchObject({ id: a.id, plan: "team", seats: 20, organization_id: org.id, status: "active", revoked_at: null });
    expect(events[2]!.data).toMatchObject({ id: b.id, plan: "enterprise", features: ["scim"], organization_id: null, status: "active" });
    expectNoKey(events, a);
    expectNoKey(events, b);
  });

  it("refused assignments record nothing", async () => {
    const admin = await platformAdmin();
    const one = await ownerAndOrg();
    const two = await ownerAndOrg();
    const lic = await createLicense(admin, { organization_id: one.org.id });
    const before = await ofLicenses(two.org.id);
    expectProblem(await put(licensePath(two.org.id), { license_id: lic.id }, two.t), 409, "license_in_use");
    expectProblem(await put(licensePath(two.org.id), { license_id: UNKNOWN_LICENSE }, two.t), 404, "not_found");
    expect(await ofLicenses(two.org.id)).toEqual(before);
  });
});

describe("platform routes", () => {
  it("creating a license for an organization records license.assigned there, by the platform admin; without one, nothing anywhere", async () => {
    const admin = await platformAdmin();
    const { org } = await ownerAndOrg();
    await subscribe(org.id, LICENSE_EVENTS);
    const lic = await createLicense(admin, { organization_id: org.id });
    expect(await ofLicenses(org.id)).toEqual([
      expect.objectContaining({ action: "license.assigned", target_id: lic.id, actor_id: admin.id, credential: "session" }),
    ]);
    expectNoKey(await outboxEvents(org.id), lic);
    // An unknown organization: 404 and no entry (there is no organization to hold one).
    expectProblem(
      await post("/v1/licenses", { plan: "team", seats: 5, features: [], expires_at: null, organization_id: "org_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }, admin.as),
      404,
      "not_found",
    );
  });

  it("revoking records license.revoked in the organization the license serves, once; an unassigned license records nothing", async () => {
    const admin = await platformAdmin();
    const { org } = await ownerAndOrg();
    await subscribe(org.id, LICENSE_EVENTS);
    const lic = await createLicense(admin, { organization_id: org.id });
    const revoked = await post(`/v1/licenses/${lic.id}/revoke`, undefined, admin.as);
    expect(revoked.status, revoked.text).toBe(200);
    // The organization is read first, so its entry can go in the revocation's batch: two round trips.
    expect([revoked.cost.queries, revoked.cost.statements]).toEqual([2, 5]);
    // Idempotent: the second call records nothing.
    const again = await post(`/v1/licenses/${lic.id}/revoke`, undefined, admin.as);
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
    expect(again.cost.queries).toBe(1);

    const entries = await ofLicenses(org.id);
    expect(entries.map((e) => [e.action, e.target_id, e.changes, e.actor_id])).toEqual([
      ["license.assigned", lic.id, ["license_id"], admin.id],
      ["license.revoked", lic.id, ["revoked_at"], admin.id],
    ]);
    const event = (await outboxEvents(org.id)).find((e) => e.type === "license.revoked")!;
    expect(event.data).toMatchObject({ id: lic.id, organization_id: org.id, status: "revoked", revoked_at: revoked.body.revoked_at });
    expectNoKey([event], lic);

    const spare = await createLicense(admin);
    const res = await post(`/v1/licenses/${spare.id}/revoke`, undefined, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body.revoked_at).not.toBeNull();
  });

  it("a refused revocation reads no license and changes nothing", async () => {
    const admin = await platformAdmin();
    const { org, owner } = await ownerAndOrg();
    const lic = await createLicense(admin, { organization_id: org.id });
    expectProblem(await post(`/v1/licenses/${lic.id}/revoke`, undefined, { token: owner.accessToken }), 403, "forbidden");
    expectProblem(await post(`/v1/licenses/${UNKNOWN_LICENSE}/revoke`, undefined, admin.as), 404, "not_found");
    expect((await ofLicenses(org.id)).map((e) => e.action)).toEqual(["license.assigned"]);
  });
});

describe("deployments", () => {
  it("a heartbeat is not an organization change: no entry", async () => {
    const admin = await platformAdmin();
    const { org } = await ownerAndOrg();
    const lic = await createLicense(admin, { organization_id: org.id });
    const before = await auditEntries(org.id);
    const res = await post(`/v1/licenses/${lic.id}/deployments`, { name: "eu-1", region: "eu", version: "1.0.0" }, { token: lic.license_key });
    expect(res.status, res.text).toBe(201);
    expect(await auditEntries(org.id)).toEqual(before);
  });
});
