import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createUser, unique } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { eventually, mailboxFor, orgCounters } from "./invitations-helpers";
import { claimDomain, domainPath, membership, seedVerifyToken, uniqueDomain, verifiedDomain } from "./domains-helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

const verifyEmail = (token: string) => post("/v1/auth/verify-email", { token });

/** An organization whose verified domain has JIT provisioning on. */
async function jitOrg(settings: Record<string, unknown> = { jit_provisioning_enabled: true }) {
  const admin = await createUser();
  const org = await createOrg(admin);
  const d = await verifiedDomain(admin.accessToken, org.id, uniqueDomain("jit"), settings);
  return { admin, org, d, domain: d.domain, token: admin.accessToken };
}

const emailAt = (domain: string) => `p.${unique("")}@${domain}`;

describe("happy", () => {
  it("signing up joins nothing; following the emailed link makes the person a `user` member", async () => {
    const { org, domain, token } = await jitOrg();
    const person = await createUser({ email: emailAt(domain) });
    expect(await membership(org.id, person.id)).toBeNull();
    expect((await get(`/v1/organizations/${org.id}`, { token: person.accessToken })).status).toBe(404);

    const mail = await eventually(
      () => mailboxFor(person.email),
      (items) => items.length > 0,
      "the verification email",
    );
    const link = /verify-email\?token=(vfy_[A-Za-z0-9_-]+)/.exec(mail[0]!.text)![1]!;
    const before = await orgCounters(org.id);
    const res = await verifyEmail(link);
    expect(res.status, res.text).toBe(204);
    expect(await membership(org.id, person.id)).toEqual({ role: "user", type: "user", email: person.email });
    const after = await orgCounters(org.id);
    expect(after.member_count).toBe(before.member_count + 1);
    expect(after.user_member_count).toBe(before.user_member_count + 1);
    // The new member sees the organization, and is listed with role `user`.
    expect((await get(`/v1/organizations/${org.id}`, { token: person.accessToken })).status).toBe(200);
    const listed = await get(`/v1/organizations/${org.id}/members/${person.id}`, { token });
    expect(listed.body).toMatchObject({ role: "user", type: "user", user: { id: person.id, email: person.email } });
    expect((await get("/v1/me", { token: person.accessToken })).body.email_verified).toBe(true);
  });

  it("is idempotent: verifying again (a second link) adds nothing and counts nothing twice", async () => {
    const { org, domain } = await jitOrg();
    const person = await createUser({ email: emailAt(domain) });
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    const once = await orgCounters(org.id);
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    expect(await orgCounters(org.id)).toEqual(once);
    expect(await membership(org.id, person.id)).toMatchObject({ role: "user" });
  });

  it("an existing member keeps their role", async () => {
    const { org, domain } = await jitOrg();
    const person = await createUser({ email: emailAt(domain) });
    await addMemberDirect(org.id, person, "admin");
    const before = await orgCounters(org.id);
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    expect(await membership(org.id, person.id)).toMatchObject({ role: "admin" });
    expect(await orgCounters(org.id)).toEqual(before);
  });
});

describe("errors", () => {
  it("a verified domain without JIT, or an unverified domain with nothing on: verifying joins nothing", async () => {
    const off = await jitOrg({});
    const a = await createUser({ email: emailAt(off.domain) });
    expect((await verifyEmail(await seedVerifyToken(a))).status).toBe(204);
    expect(await membership(off.org.id, a.id)).toBeNull();

    const admin = await createUser();
    const org = await createOrg(admin);
    const d = await claimDomain(admin.accessToken, org.id);
    expectProblem(await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: true }, { token: admin.accessToken }), 409, "domain_not_verified");
    const b = await createUser({ email: emailAt(d.domain) });
    expect((await verifyEmail(await seedVerifyToken(b))).status).toBe(204);
    expect(await membership(org.id, b.id)).toBeNull();
  });

  it("JIT switched off again stops provisioning", async () => {
    const { org, d, domain, token } = await jitOrg();
    await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: false }, { token });
    const person = await createUser({ email: emailAt(domain) });
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    expect(await membership(org.id, person.id)).toBeNull();
  });

  it("a full organization admits nobody, and the address is still verified", async () => {
    const { org, domain } = await jitOrg();
    // One seat: the admin holds it.
    const person = await createUser({ email: emailAt(domain) });
    const before = await orgCounters(org.id);
    const res = await post("/v1/auth/verify-email", { token: await seedVerifyToken(person) }, { env: { FREE_PLAN_SEATS: "1" } });
    expect(res.status, res.text).toBe(204);
    expect(await membership(org.id, person.id)).toBeNull();
    expect(await orgCounters(org.id)).toEqual(before);
    expect((await get("/v1/me", { token: person.accessToken })).body.email_verified).toBe(true);
  });

  it("an inactive organization admits nobody", async () => {
    const { org, domain, token } = await jitOrg();
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token })).status).toBe(200);
    const person = await createUser({ email: emailAt(domain) });
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    expect(await membership(org.id, person.id)).toBeNull();
  });

  it("a used, unknown or expired token joins nothing", async () => {
    const { org, domain } = await jitOrg();
    const person = await createUser({ email: emailAt(domain) });
    const token = await seedVerifyToken(person);
    await env.DB.prepare("update email_tokens set expires_at = ? where user_id = ? and used_at is null")
      .bind(Date.now() - 1, person.id)
      .run();
    expectProblem(await verifyEmail(token), 400, "invalid_token");
    expectProblem(await verifyEmail(`vfy_${"B".repeat(43)}`), 400, "invalid_token");
    expect(await membership(org.id, person.id)).toBeNull();
  });
});

describe("security", () => {
  it("a token sent to an address the account no longer has verifies nothing and joins nothing", async () => {
    const { org, domain } = await jitOrg();
    // The token was minted for an address in the JIT domain; the account has since moved away from it.
    const person = await createUser({ email: emailAt(domain) });
    const token = await seedVerifyToken(person);
    await env.DB.prepare("update users set email = ? where id = ?")
      .bind(`moved.${unique("")}@example.com`, person.id)
      .run();
    expectProblem(await verifyEmail(token), 400, "invalid_token");
    expect(await membership(org.id, person.id)).toBeNull();
    // And the token is spent.
    expectProblem(await verifyEmail(token), 400, "invalid_token");
  });

  it("the same link used twice at once verifies once and provisions once", async () => {
    const { org, domain } = await jitOrg();
    const person = await createUser({ email: emailAt(domain) });
    const token = await seedVerifyToken(person);
    const before = await orgCounters(org.id);
    const results = await Promise.all([verifyEmail(token), verifyEmail(token)]);
    expect(results.map((r) => r.status).sort()).toEqual([204, 400]);
    expect(await membership(org.id, person.id)).toMatchObject({ role: "user" });
    expect((await orgCounters(org.id)).member_count).toBe(before.member_count + 1);
  });

  it("verifying an address in a JIT domain joins only the organization that verified the domain", async () => {
    const { org, domain } = await jitOrg();
    // Another organization claims the same domain (unverified) with nothing on.
    const other = await createUser();
    const otherOrg = await createOrg(other);
    await claimDomain(other.accessToken, otherOrg.id, domain);
    const person = await createUser({ email: emailAt(domain) });
    expect((await verifyEmail(await seedVerifyToken(person))).status).toBe(204);
    expect(await membership(org.id, person.id)).not.toBeNull();
    expect(await membership(otherOrg.id, person.id)).toBeNull();
  });
});
