import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, del, get, patch, post, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, PASSWORD, unique, uniqueEmail, verifyUserDirect } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { createRole, createServiceAccount, membersPath, memberPath } from "../routes/members-helpers";
import { acceptPath, invitationPath, invitationsPath, inviteWithToken, previewPath } from "../routes/invitations-helpers";
import { runOne, undeliveredInvitation } from "../queue/queue-helpers";

/**
 * One test per hole found by attacking `npm run dev` (issue 8), each written against the
 * behaviour an attacker exploited. They failed on the code before the fix.
 */

let ipSeq = 0;
const freshIp = () => `198.51.${(Date.now() >> 8) & 255}.${++ipSeq % 250}`;
const fromIp = (ip: string) => ({ "CF-Connecting-IP": ip });
const bogus = (prefix: string) =>
  `${prefix}_${"A".repeat(10)}${unique("")
    .replace(/[^A-Za-z0-9]/g, "x")
    .padEnd(33, "x")
    .slice(0, 33)}`;

/** What a refused caller can observe of a request, timing aside. */
const observed = (res: ApiResponse) => ({
  status: res.status,
  code: res.body?.code,
  detail: res.body?.detail,
  queries: res.cost.queries,
  rowsRead: res.cost.rowsRead,
  kvReads: res.cost.kvReads,
  kvWrites: res.cost.kvWrites,
});

describe("security", () => {
  it("1. an invitation link handed back to the inviter does not verify the address, nor make a platform admin", async () => {
    const attacker = await createUser();
    const org = await createOrg(attacker);
    const victim = await createUser();
    // A platform administrator's address that has no account yet.
    const rootEmail = uniqueEmail("root");
    const asRoot = (token: string) => ({ token, env: { PLATFORM_ADMIN_EMAILS: rootEmail } });
    const { token } = await inviteWithToken(attacker.accessToken, org.id, { email: rootEmail });
    const accepted = await post(acceptPath(token), { display_name: "Root", password: "a very long passphrase 1" });
    expect(accepted.status, accepted.text).toBe(201);
    expect(accepted.body.user.email_verified).toBe(false);
    const session = accepted.body.access_token as string;
    expectProblem(await get(`/v1/users/${victim.id}`, asRoot(session)), 403, "forbidden");
    expectProblem(await patch(`/v1/users/${victim.id}`, { new_password: "taken over completely" }, asRoot(session)), 403, "forbidden");
    expect((await post("/v1/auth/login", { email: victim.email, password: victim.password })).status).toBe(200);
  });

  it("1b. accepting the link of an invitation email that was actually sent does verify the address", async () => {
    const { outboxId, invitation } = await undeliveredInvitation();
    await runOne(outboxId);
    const mail = await env.DB.prepare("select text from mailbox where outbox_id = ?").bind(outboxId).first<{ text: string }>();
    expect(mail).toBeTruthy();
    const listed = await get(`/v1/dev/emails?to=${encodeURIComponent(invitation.email)}`);
    const link = /https?:\/\/\S+token=(ivt_[A-Za-z0-9_-]+)/.exec(listed.body.items[0].text)![1]!;
    const accepted = await post(acceptPath(link), { display_name: "Emailed", password: "a very long passphrase 2" });
    expect(accepted.status, accepted.text).toBe(201);
    expect(accepted.body.user.email_verified).toBe(true);
  });

  it("1c. a signed-in account that accepts its emailed invitation reads itself verified at once, through tokens minted before", async () => {
    const user = await createUser();
    const { outboxId } = await undeliveredInvitation({ email: user.email });
    await runOne(outboxId);
    const listed = await get(`/v1/dev/emails?to=${encodeURIComponent(user.email)}`);
    const mail = listed.body.items.find((m: { text: string }) => /token=ivt_/.test(m.text));
    const link = /token=(ivt_[A-Za-z0-9_-]+)/.exec(mail.text)![1]!;
    expect((await get("/v1/me", { token: user.accessToken })).body.email_verified).toBe(false);
    const accepted = await post(acceptPath(link), {}, { token: user.accessToken });
    expect(accepted.status, accepted.text).toBe(200);
    expect(accepted.body.user.email_verified).toBe(true);
    // The profile is re-published after the response; the old token's /v1/me follows it.
    expect((await get("/v1/me", { token: user.accessToken })).body.email_verified).toBe(true);
  });

  it("2. a made-up PAT or key, or an outsider's session, observes the same thing whatever the target organization holds", async () => {
    const [owner, outsider] = await Promise.all([createUser(), createUser()]);
    const small = await createOrg(owner);
    const big = await createOrg(owner);
    for (let i = 0; i < 12; i++) {
      const email = `c${unique("m")}@example.com`;
      await addMemberDirect(big.id, { id: `usr_${unique("").toUpperCase().padEnd(26, "0").slice(0, 26)}`, email, displayName: `Carol ${i}` });
    }
    const callers = { pat: bogus("pat"), key: bogus("sak"), outsider: outsider.accessToken };
    const path = (orgId: string) => `${membersPath(orgId)}?page_size=1000&filter=${encodeURIComponent('search:"c"')}`;
    for (const [who, token] of Object.entries(callers)) {
      const a = await get(path(small.id), { token });
      const b = await get(path(big.id), { token });
      expect([400, 401, 403, 404], who).toContain(a.status);
      expect(observed(b), who).toEqual(observed(a));
    }
  });

  it("3. resend and combine_pending check the invited role against the caller, as create does", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const inviter = await createUser();
    // Everything a `user` holds, and inviting: it may invite users, never admins.
    const role = await createRole(admin, org.id, [
      "organization:read",
      "members:read",
      "roles:read",
      "projects:read",
      "projects:write",
      "invitations:read",
      "invitations:write",
    ]);
    await addMemberDirect(org.id, inviter, role.name);
    const email = uniqueEmail("target");
    const { invitation } = await inviteWithToken(admin.accessToken, org.id, { email, role: "admin" });
    const resent = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false }, { token: inviter.accessToken });
    expectProblem(resent, 403, "forbidden");
    expect(resent.body.accept_url).toBeUndefined();
    // It may invite a user, but combining would take over an admin's pending admin invitation.
    const other = await post(invitationsPath(org.id), { email: uniqueEmail("ok"), role: "user", send_email: false }, { token: inviter.accessToken });
    expect(other.status, other.text).toBe(201);
    const combined = await post(invitationsPath(org.id), { email, role: "user", combine_pending: true, send_email: false }, { token: inviter.accessToken });
    expectProblem(combined, 403, "forbidden");
    const still = await get(invitationPath(org.id, invitation.id), { token: admin.accessToken });
    expect(still.body.role).toBe("admin");
  });

  it("4. adding a member by email needs a verified address", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const squatter = await createUser({ email: uniqueEmail("newhire") });
    expectProblem(await post(membersPath(org.id), { email: squatter.email, role: "user" }, { token: admin.accessToken }), 409, "email_not_verified");
    await verifyUserDirect(squatter.id);
    expect((await post(membersPath(org.id), { email: squatter.email, role: "user" }, { token: admin.accessToken })).status).toBe(201);
  });

  it("5. a refused login looks the same for a known and an unknown email, Server-Timing included", async () => {
    const user = await createUser();
    const ip = { headers: fromIp(freshIp()) };
    const known = await post("/v1/auth/login", { email: user.email, password: "wrong password entirely" }, ip);
    const unknown = await post("/v1/auth/login", { email: uniqueEmail("nobody"), password: "wrong password entirely" }, ip);
    // An address that sorts after every account's.
    const last = await post("/v1/auth/login", { email: `zzzz${unique("z")}@zzzz.example`, password: "wrong password entirely" }, ip);
    expectProblem(known, 401, "invalid_credentials");
    expect(observed(unknown)).toEqual(observed(known));
    expect(observed(last)).toEqual(observed(known));
  });

  describe("6. rate limits", () => {
    it("invitation preview and accept are limited per client", async () => {
      const opts = { headers: fromIp(freshIp()), env: { AUTH_RATE_LIMIT_PER_MINUTE: "2" } };
      const token = bogus("inv");
      expect((await get(previewPath(token), opts)).status).toBe(404);
      expect((await post(acceptPath(token), { display_name: "x", password: PASSWORD }, opts)).status).toBe(404);
      const limited = await post(acceptPath(token), { display_name: "x", password: PASSWORD }, opts);
      expectProblem(limited, 429, "rate_limited");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    });

    it("every /v1 route is limited per credential", async () => {
      const user = await createUser();
      const opts = { token: user.accessToken, env: { CREDENTIAL_RATE_LIMIT_PER_MINUTE: "3" } };
      for (let i = 0; i < 3; i++) expect((await get("/v1/me", opts)).status).toBe(200);
      const limited = await get("/v1/me/organizations", opts);
      expectProblem(limited, 429, "rate_limited");
      expect(limited.headers.get("ratelimit-limit")).toBe("3");
      // Another credential of the same user has its own budget.
      const pat = await createPat(user, ["organization:read"]);
      expect((await get("/v1/me", { ...opts, token: pat.token })).status).toBe(200);
    });

    it("a client spraying made-up PATs or keys is stopped before D1", async () => {
      const opts = { headers: fromIp(freshIp()), env: { AUTH_RATE_LIMIT_PER_MINUTE: "2" } };
      for (const prefix of ["pat", "sak"]) expectProblem(await get("/v1/me", { ...opts, token: bogus(prefix) }), 401, "unauthenticated");
      const limited = await get("/v1/me", { ...opts, token: bogus("pat") });
      expectProblem(limited, 429, "rate_limited");
      expect(limited.cost.queries).toBe(0);
    });

    it("IPv6 clients share a bucket per /64", async () => {
      const prefix = `2001:db8:${(Date.now() & 0xfff).toString(16)}:${(++ipSeq).toString(16)}`;
      const opts = (suffix: string) => ({ headers: fromIp(`${prefix}::${suffix}`), env: { AUTH_RATE_LIMIT_PER_MINUTE: "2" } });
      expect((await get(previewPath(bogus("inv")), opts("1"))).status).toBe(404);
      expect((await get(previewPath(bogus("inv")), opts("2"))).status).toBe(404);
      expectProblem(await get(previewPath(bogus("inv")), opts("ffff:1")), 429, "rate_limited");
      expect((await get(previewPath(bogus("inv")), { ...opts("1"), headers: fromIp(`2001:db8:ffff:${ipSeq.toString(16)}::1`) })).status).toBe(404);
    });

    it("failed logins for an email cannot lock its owner out", async () => {
      const victim = await createUser();
      const limits = { LOGIN_RATE_LIMIT_PER_EMAIL: "3" };
      const attackerIp = freshIp();
      for (let i = 0; i < 4; i++)
        await post("/v1/auth/login", { email: victim.email, password: `guess number ${i}!` }, { headers: fromIp(attackerIp), env: limits });
      for (let i = 0; i < 3; i++)
        await post("/v1/auth/login", { email: victim.email, password: `guess number ${i}!` }, { headers: fromIp(freshIp()), env: limits });
      // The attacker's own client is stopped, even with the right password.
      expectProblem(
        await post("/v1/auth/login", { email: victim.email, password: victim.password }, { headers: fromIp(attackerIp), env: limits }),
        429,
        "rate_limited",
      );
      // The owner, from a client that has not failed, still gets in.
      const owner = await post("/v1/auth/login", { email: victim.email, password: victim.password }, { headers: fromIp(freshIp()), env: limits });
      expect(owner.status, owner.text).toBe(200);
    });
  });

  it("7. production refuses the outbox email provider, and the dev mailbox keeps no live token in clear", async () => {
    const refused = await get("/healthz", { env: { ENVIRONMENT: "production", EMAIL_PROVIDER: "outbox" } });
    expect(refused.status).toBe(500);
    expect(refused.text).not.toMatch(/EMAIL_PROVIDER/);
    const { outboxId } = await undeliveredInvitation();
    await runOne(outboxId);
    const stored = await env.DB.prepare("select text, html from mailbox where outbox_id = ?").bind(outboxId).first<{ text: string; html: string }>();
    expect(stored!.text).not.toContain("ivt_");
    expect(stored!.html).not.toContain("ivt_");
  });

  describe("8. lesser holes", () => {
    it("PATs get a default lifetime and a maximum", async () => {
      const user = await createUser();
      const pat = await createPat(user, ["organization:read"]);
      const days = (Date.parse(pat.expires_at as string) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(89);
      expect(days).toBeLessThanOrEqual(90);
      expectProblem(
        await post("/v1/me/tokens", { name: "forever", scopes: ["organization:read"], expires_in_days: 366 }, { token: user.accessToken }),
        400,
        "validation_failed",
      );
    });

    it("an access token whose sign-in is not recent cannot mint a PAT", async () => {
      const user = await createUser();
      // The session signed in an hour ago; a refresh keeps that sign-in time.
      await env.DB.prepare("update sessions set created_at = ? where user_id = ?")
        .bind(Date.now() - 3_600_000, user.id)
        .run();
      const refreshed = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
      expect(refreshed.status, refreshed.text).toBe(200);
      expectProblem(
        await post("/v1/me/tokens", { name: "stolen", scopes: ["organization:read"] }, { token: refreshed.body.access_token }),
        403,
        "reauthentication_required",
      );
    });

    it("members routes need service_accounts:write to change or remove a service account", async () => {
      const admin = await createUser();
      const org = await createOrg(admin);
      const manager = await createUser();
      // Everything a `user` holds and members:write: enough to manage a `user` member, not a service account.
      const role = await createRole(admin, org.id, ["organization:read", "members:read", "members:write", "roles:read", "projects:read", "projects:write"]);
      await addMemberDirect(org.id, manager, role.name);
      const person = await createUser();
      await addMemberDirect(org.id, person, "user");
      expect((await patch(memberPath(org.id, person.id), { role: "user" }, { token: manager.accessToken })).status).toBe(200);
      const sa = await createServiceAccount(admin, org.id, { role: "user" });
      expectProblem(await patch(memberPath(org.id, sa.service_account.id), { role: "user" }, { token: manager.accessToken }), 403, "forbidden");
      expectProblem(await del(memberPath(org.id, sa.service_account.id), { token: manager.accessToken }), 403, "forbidden");
    });

    it("a service account with the admin role does not count as the organization's last admin", async () => {
      const admin = await createUser();
      const org = await createOrg(admin);
      await createServiceAccount(admin, org.id, { role: "admin" });
      const other = await createUser();
      await addMemberDirect(org.id, other, "user");
      expectProblem(await del(memberPath(org.id, admin.id), { token: admin.accessToken }), 409, "last_admin");
      expectProblem(await patch(memberPath(org.id, admin.id), { role: "user" }, { token: admin.accessToken }), 409, "last_admin");
    });

    it("a body that is not valid UTF-8 is 400, and names refuse control characters", async () => {
      const user = await createUser();
      const bytes = new Uint8Array([...new TextEncoder().encode('{"name":"Acme '), 0xff, 0xfe, ...new TextEncoder().encode('"}')]);
      const request = new Request("http://api.test/v1/organizations", {
        method: "POST",
        headers: { Authorization: `Bearer ${user.accessToken}`, "Content-Type": "application/json" },
        body: bytes,
      });
      const { default: worker } = await import("../../src/index");
      const { createExecutionContext, waitOnExecutionContext } = await import("cloudflare:test");
      const ctx = createExecutionContext();
      const raw = await worker.fetch(request, env as never, ctx);
      await waitOnExecutionContext(ctx);
      expect(raw.status).toBe(400);
      expect(((await raw.json()) as { code: string }).code).toBe("malformed_json");
      for (const name of ["\u001e", "Acme\u0000Corp", "Tab\there", "Line\nbreak"]) {
        expectProblem(await post("/v1/organizations", { name }, { token: user.accessToken }), 400, "validation_failed");
      }
      expectProblem(await patch("/v1/me", { display_name: "Bell\u0007" }, { token: user.accessToken }), 400, "validation_failed");
    });
  });
  it("9. a custom role's permissions come from its own organization, never from another's role of the same name", async () => {
    // Found while building issue 9: the role subquery compared the role's organization with
    // itself (an unqualified column bound to the subquery's table), so any organization's role
    // of that name lent its permissions.
    const [mallory, victimAdmin, member] = await Promise.all([createUser(), createUser(), createUser()]);
    const malloryOrg = await createOrg(mallory);
    const victimOrg = await createOrg(victimAdmin);
    const name = unique("dev")
      .toLowerCase()
      .replace(/[^a-z0-9]/g, "")
      .slice(0, 30);
    // The attacker's organization defines the name first, with every permission it wants to lend.
    const lent = await post(
      `/v1/organizations/${malloryOrg.id}/roles`,
      { name, permissions: ["invitations:read", "members:write", "organization:write"] },
      { token: mallory.accessToken },
    );
    expect(lent.status, lent.text).toBe(201);
    const own = await post(`/v1/organizations/${victimOrg.id}/roles`, { name, permissions: ["organization:read"] }, { token: victimAdmin.accessToken });
    expect(own.status, own.text).toBe(201);
    await addMemberDirect(victimOrg.id, member, name);
    expectProblem(await get(`/v1/organizations/${victimOrg.id}/invitations`, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await patch(`/v1/organizations/${victimOrg.id}`, { name: "Owned" }, { token: member.accessToken }), 403, "forbidden");
    const me = await get(`/v1/organizations/${victimOrg.id}/members/${member.id}`, { token: victimAdmin.accessToken });
    expect(me.status, me.text).toBe(200);
    expect((await get(`/v1/organizations/${victimOrg.id}`, { token: member.accessToken })).status).toBe(200);
  });
  it("10. resend and combine_pending do not hand out a link to private projects the caller cannot see", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const inviter = await createUser();
    const role = await createRole(admin, org.id, [
      "organization:read",
      "members:read",
      "roles:read",
      "projects:read",
      "projects:write",
      "invitations:read",
      "invitations:write",
    ]);
    await addMemberDirect(org.id, inviter, role.name);
    const secret = await post(`/v1/organizations/${org.id}/projects`, { name: "Secret", private: true }, { token: admin.accessToken });
    expect(secret.status, secret.text).toBe(201);
    const email = uniqueEmail("target");
    const { invitation } = await inviteWithToken(admin.accessToken, org.id, { email, role: "user", project_ids: [secret.body.id] });
    // The inviter may invite into `user`, but the invitation's link grants a project it cannot see.
    const resent = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false }, { token: inviter.accessToken });
    expectProblem(resent, 403, "forbidden");
    expect(resent.body.accept_url).toBeUndefined();
    const combined = await post(invitationsPath(org.id), { email, role: "user", combine_pending: true, send_email: false }, { token: inviter.accessToken });
    expectProblem(combined, 403, "forbidden");
    expect(combined.body.accept_url).toBeUndefined();
    // Once the inviter is on the project's access list, both are within its power.
    const granted = await api("PUT", `/v1/organizations/${org.id}/projects/${secret.body.id}/members/${inviter.id}`, { token: admin.accessToken });
    expect(granted.status, granted.text).toBe(200);
    const ok = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false }, { token: inviter.accessToken });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.accept_url).toBeTruthy();
  });
});
