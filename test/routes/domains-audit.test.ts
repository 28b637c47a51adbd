import { afterEach, describe, expect, it, vi } from "vitest";
import { del, patch, post } from "../helpers/client";
import { auditEntries, outboxEvents, subscribe } from "../helpers/audit-trail";
import { createOrg, createUser, createVerifiedUser, unique } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import {
  claimDomain,
  domainPath,
  domainsPath,
  NXDOMAIN,
  dnsJson,
  publish,
  seedVerifyToken,
  stubResolver,
  uniqueDomain,
  verifiedDomain,
  verifyPath,
} from "./domains-helpers";

/** Domains and the JIT memberships they cause write their audit entries (and events) in the change's batch. */

afterEach(() => {
  vi.restoreAllMocks();
});

async function adminOrg() {
  const admin = await createVerifiedUser();
  const org = await createOrg(admin);
  return { admin, org, t: { token: admin.accessToken } };
}

describe("domains", () => {
  it("create, update, verify and delete each write one entry by the caller, and the subscribed events carry the domain", async () => {
    const { admin, org, t } = await adminOrg();
    await subscribe(org.id, ["domain.created", "domain.updated", "domain.verified", "domain.deleted"]);
    const created = await post(domainsPath(org.id), { domain: uniqueDomain() }, t);
    expect(created.status, created.text).toBe(201);
    const d = created.body;
    const { spy } = publish({ [d.verification.name]: [d.verification.value] });
    const verified = await post(verifyPath(org.id, d.id), undefined, t);
    expect(verified.status, verified.text).toBe(200);
    spy.mockRestore();
    const updated = await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: true, sso_enforcement: "optional" }, t);
    expect(updated.status, updated.text).toBe(200);
    expect((await del(domainPath(org.id, d.id), t)).status).toBe(204);

    const entries = await auditEntries(org.id);
    const mine = entries.filter((e) => e.target_type === "domain");
    expect(mine.map((e) => [e.action, e.target_id, e.changes])).toEqual([
      ["domain.created", d.id, null],
      ["domain.verified", d.id, ["verified_at"]],
      // sso_enforcement was already `optional`: only what changed is listed.
      ["domain.updated", d.id, ["jit_provisioning_enabled"]],
      ["domain.deleted", d.id, null],
    ]);
    for (const e of mine) expect(e).toMatchObject({ actor_type: "user", actor_id: admin.id, credential: "session" });
    expect(mine.every((e) => typeof e.request_id === "string")).toBe(true);

    const events = await outboxEvents(org.id);
    expect(events.map((e) => e.type)).toEqual(["domain.created", "domain.verified", "domain.updated", "domain.deleted"]);
    expect(events[0]!.data).toEqual(d);
    expect(events[1]!.data).toEqual(verified.body);
    expect(events[2]!.data).toEqual(updated.body);
    expect(events[3]!.data).toEqual(updated.body);
  });

  it("a PATCH with the values in place, and a re-check of a verified domain, record nothing", async () => {
    const { org, t } = await adminOrg();
    const d = await verifiedDomain(t.token, org.id);
    const before = (await auditEntries(org.id)).length;
    const same = await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: false, sso_enforcement: "optional" }, t);
    expect(same.status, same.text).toBe(200);
    expect(same.body.updated_at).toBe(d.updated_at);
    const { spy } = publish({ [d.verification.name]: [d.verification.value] });
    expect((await post(verifyPath(org.id, d.id), undefined, t)).status).toBe(200);
    spy.mockRestore();
    expect((await auditEntries(org.id)).length).toBe(before);
  });

  it("a failed verification (422) and refused changes leave no entry", async () => {
    const { org, t } = await adminOrg();
    const d = await claimDomain(t.token, org.id);
    const before = await auditEntries(org.id);
    stubResolver(() => dnsJson(NXDOMAIN));
    expectProblem(await post(verifyPath(org.id, d.id), undefined, t), 422, "domain_verification_failed");
    vi.restoreAllMocks();
    expectProblem(await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: true }, t), 409, "domain_not_verified");
    expectProblem(await post(domainsPath(org.id), { domain: d.domain }, t), 409, "conflict");
    expectProblem(await del(domainPath(org.id, "dom_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"), t), 404, "not_found");
    expect(await auditEntries(org.id)).toEqual(before);
  });

  it("a domain another organization verified: 409 domain_taken, and no entry in either", async () => {
    const a = await adminOrg();
    const b = await adminOrg();
    const name = uniqueDomain("taken");
    await verifiedDomain(a.t.token, a.org.id, name);
    const d = await claimDomain(b.t.token, b.org.id, name);
    const before = await auditEntries(b.org.id);
    const { spy } = publish({ [d.verification.name]: [d.verification.value] });
    expectProblem(await post(verifyPath(b.org.id, d.id), undefined, b.t), 409, "domain_taken");
    spy.mockRestore();
    expect(await auditEntries(b.org.id)).toEqual(before);
  });

  it("cost: the entry rides in the change's round trip", async () => {
    const { org, t } = await adminOrg();
    const created = await post(domainsPath(org.id), { domain: uniqueDomain("cost") }, t);
    expect([created.cost.queries, created.cost.statements]).toEqual([2, 4]);
    const d = created.body;
    const { spy } = publish({ [d.verification.name]: [d.verification.value] });
    const verified = await post(verifyPath(org.id, d.id), undefined, t);
    spy.mockRestore();
    expect([verified.cost.queries, verified.cost.statements]).toEqual([2, 5]);
    const updated = await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: true }, t);
    expect([updated.cost.queries, updated.cost.statements]).toEqual([2, 5]);
    const deleted = await del(domainPath(org.id, d.id), t);
    expect([deleted.cost.queries, deleted.cost.statements]).toEqual([2, 5]);
  });
});

describe("JIT on email verification", () => {
  const emailAt = (domain: string) => `p.${unique("")}@${domain}`;

  it("joining writes member.added (actor: the system, the organization's JIT rule) with its event", async () => {
    const { org, t } = await adminOrg();
    const d = await verifiedDomain(t.token, org.id, uniqueDomain("jit"), { jit_provisioning_enabled: true });
    await subscribe(org.id, ["member.added"]);
    const person = await createUser({ email: emailAt(d.domain) });
    const res = await post("/v1/auth/verify-email", { token: await seedVerifyToken(person) });
    expect(res.status, res.text).toBe(204);
    const added = (await auditEntries(org.id)).filter((e) => e.action === "member.added");
    expect(added).toEqual([
      expect.objectContaining({ actor_type: "system", actor_id: null, credential: "system", target_type: "user", target_id: person.id, changes: ["role"] }),
    ]);
    const events = await outboxEvents(org.id);
    expect(events).toEqual([
      expect.objectContaining({
        type: "member.added",
        data: { user: { id: person.id, display_name: person.displayName, email: person.email }, role: "user", type: "user", joined_at: expect.any(String) },
      }),
    ]);
    // The join is read and written in the round trips verification always took.
    expect([res.cost.queries, res.cost.statements]).toEqual([2, 7]);

    // A second link joins nothing and records nothing.
    expect((await post("/v1/auth/verify-email", { token: await seedVerifyToken(person) })).status).toBe(204);
    expect((await auditEntries(org.id)).filter((e) => e.action === "member.added").length).toBe(1);
  });

  it("a verified domain without JIT: no membership, no entry", async () => {
    const { org, t } = await adminOrg();
    const d = await verifiedDomain(t.token, org.id, uniqueDomain("nojit"));
    const person = await createUser({ email: emailAt(d.domain) });
    const before = await auditEntries(org.id);
    expect((await post("/v1/auth/verify-email", { token: await seedVerifyToken(person) })).status).toBe(204);
    expect(await auditEntries(org.id)).toEqual(before);
  });
});
