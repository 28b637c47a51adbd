import { describe, expect, it } from "vitest";
import { del, patch, post } from "../helpers/client";
import { auditEntries, outboxEvents, subscribe } from "../helpers/audit-trail";
import { createOrg, createUser, unique } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { IDP2_CERT, IDP_CERT } from "../fixtures/saml";

/** Identity provider configs, the saml-sso shortcut and SCIM tokens write their entries in the change's batch. */

const configsPath = (orgId: string) => `/v1/organizations/${orgId}/identity-provider-configs`;
const samlSsoPath = (orgId: string) => `/v1/organizations/${orgId}/saml-sso`;
const IDP_EVENTS = ["identity_provider.created", "identity_provider.updated", "identity_provider.deleted", "identity_provider.scim_token_created"];

async function adminOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org, t: { token: admin.accessToken } };
}

const ofIdps = async (orgId: string) => (await auditEntries(orgId)).filter((e) => e.target_type === "identity_provider");

describe("identity provider configs", () => {
  it("create, update and delete: one entry each, by the caller, and events carrying the config as the API shows it", async () => {
    const { admin, org, t } = await adminOrg();
    await subscribe(org.id, IDP_EVENTS);
    const created = await post(configsPath(org.id), { name: `Okta ${unique()}`, saml_entity_id: "urn:okta", saml_x509_cert: IDP_CERT }, t);
    expect(created.status, created.text).toBe(201);
    const id = created.body.id;
    const updated = await patch(`${configsPath(org.id)}/${id}`, { name: created.body.name, saml_x509_cert_secondary: IDP2_CERT, allow_sha1: true }, t);
    expect(updated.status, updated.text).toBe(200);
    const promoted = await patch(`${configsPath(org.id)}/${id}`, { promote_secondary_cert: true }, t);
    expect(promoted.status, promoted.text).toBe(200);
    expect((await del(`${configsPath(org.id)}/${id}`, t)).status).toBe(204);

    const entries = await ofIdps(org.id);
    expect(entries.map((e) => [e.action, e.target_id, e.changes])).toEqual([
      ["identity_provider.created", id, null],
      // The unchanged name is not listed.
      ["identity_provider.updated", id, ["saml_x509_cert_secondary", "allow_sha1"]],
      ["identity_provider.updated", id, ["saml_x509_cert", "saml_x509_cert_secondary"]],
      ["identity_provider.deleted", id, null],
    ]);
    for (const e of entries) expect(e).toMatchObject({ actor_type: "user", actor_id: admin.id, credential: "session" });

    const events = await outboxEvents(org.id);
    expect(events.map((e) => e.type)).toEqual([
      "identity_provider.created",
      "identity_provider.updated",
      "identity_provider.updated",
      "identity_provider.deleted",
    ]);
    expect(events[0]!.data).toEqual(created.body);
    expect(events[1]!.data).toEqual(updated.body);
    expect(events[2]!.data).toEqual(promoted.body);
    expect(events[3]!.data).toEqual(promoted.body);
    // Certificates are public; nothing private travels.
    expect(JSON.stringify(events)).not.toMatch(/PRIVATE KEY/);
  });

  it("a PATCH that changes nothing records nothing; refused changes leave no entry", async () => {
    const { org, t } = await adminOrg();
    const created = await post(configsPath(org.id), { name: "Same", saml_entity_id: "urn:same" }, t);
    const before = await ofIdps(org.id);
    const same = await patch(`${configsPath(org.id)}/${created.body.id}`, { name: "Same", saml_entity_id: "urn:same" }, t);
    expect(same.status, same.text).toBe(200);
    expect(same.body).toEqual(created.body);
    expectProblem(await patch(`${configsPath(org.id)}/${created.body.id}`, { promote_secondary_cert: true }, t), 409, "conflict");
    expectProblem(await del(`${configsPath(org.id)}/idp_01JD6Q5W8ZK3H0V8N6C2Y4T1RB`, t), 404, "not_found");
    expect(await ofIdps(org.id)).toEqual(before);
  });

  it("cost: the entry rides in the change's round trip", async () => {
    const { org, t } = await adminOrg();
    const created = await post(configsPath(org.id), { name: "Cost", saml_entity_id: "urn:cost" }, t);
    expect([created.cost.queries, created.cost.statements]).toEqual([2, 4]);
    const updated = await patch(`${configsPath(org.id)}/${created.body.id}`, { name: "Cost 2" }, t);
    expect([updated.cost.queries, updated.cost.statements]).toEqual([2, 5]);
    const deleted = await del(`${configsPath(org.id)}/${created.body.id}`, t);
    expect([deleted.cost.queries, deleted.cost.statements]).toEqual([2, 5]);
  });
});

describe("saml-sso", () => {
  it("POST records identity_provider.created, then identity_provider.updated with what changed; DELETE records identity_provider.deleted", async () => {
    const { org, t } = await adminOrg();
    await subscribe(org.id, IDP_EVENTS);
    const first = await post(samlSsoPath(org.id), { entity_id: "urn:one" }, t);
    expect(first.status, first.text).toBe(201);
    const second = await post(samlSsoPath(org.id), { entity_id: "urn:one", sso_url: "https://idp.example/sso", x509_cert: IDP_CERT }, t);
    expect(second.status, second.text).toBe(200);
    // The same values again: 200, nothing written.
    const again = await post(samlSsoPath(org.id), { entity_id: "urn:one" }, t);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(second.body);
    expect((await del(samlSsoPath(org.id), t)).status).toBe(204);
    expectProblem(await del(samlSsoPath(org.id), t), 404, "not_found");

    const id = first.body.id;
    expect((await ofIdps(org.id)).map((e) => [e.action, e.target_id, e.changes])).toEqual([
      ["identity_provider.created", id, null],
      ["identity_provider.updated", id, ["saml_sso_url", "saml_x509_cert"]],
      ["identity_provider.deleted", id, null],
    ]);
    const events = await outboxEvents(org.id);
    expect(events.map((e) => e.data)).toEqual([first.body, second.body, second.body]);
  });

  it("concurrent first calls: one creates, the others update it, and every call that changed the config is recorded once", async () => {
    const { org, t } = await adminOrg();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => post(samlSsoPath(org.id), { entity_id: `urn:race:${i}` }, t)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
    const id = results[0]!.body.id;
    const entries = await ofIdps(org.id);
    expect(entries.map((e) => e.action).sort()).toEqual(["identity_provider.created", ...Array(4).fill("identity_provider.updated")]);
    expect(entries.every((e) => e.target_id === id)).toBe(true);
  });

  it("cost: create and update are one round trip after the seam's", async () => {
    const { org, t } = await adminOrg();
    const created = await post(samlSsoPath(org.id), { entity_id: "urn:cost" }, t);
    expect([created.cost.queries, created.cost.statements]).toEqual([2, 5]);
    const updated = await post(samlSsoPath(org.id), { entity_id: "urn:cost2" }, t);
    // Both candidate entries (created, updated) travel in one statement.
    expect([updated.cost.queries, updated.cost.statements]).toEqual([2, 5]);
  });
});

describe("scim-token", () => {
  it("minting records identity_provider.scim_token_created; its event has the config and the token's prefix, never the token", async () => {
    const { admin, org, t } = await adminOrg();
    await subscribe(org.id, IDP_EVENTS);
    const idp = (await post(configsPath(org.id), { name: "Dir", saml_entity_id: "urn:dir", scim_enabled: true }, t)).body;
    const minted = await post(`${configsPath(org.id)}/${idp.id}/scim-token`, undefined, t);
    expect(minted.status, minted.text).toBe(200);
    expect([minted.cost.queries, minted.cost.statements]).toEqual([2, 5]);
    const entry = (await ofIdps(org.id)).find((e) => e.action === "identity_provider.scim_token_created");
    expect(entry).toMatchObject({ target_id: idp.id, actor_id: admin.id, changes: ["scim_token"] });
    const event = (await outboxEvents(org.id)).find((e) => e.type === "identity_provider.scim_token_created")!;
    const { token, ...shown } = minted.body;
    expect(event.data).toEqual(shown);
    expect(JSON.stringify(event)).not.toContain(token);
    expectProblem(await post(`${configsPath(org.id)}/idp_01JD6Q5W8ZK3H0V8N6C2Y4T1RB/scim-token`, undefined, t), 404, "not_found");
  });
});
