import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runScheduled } from "../../src/scheduled";
import { newSecret, sha256Hex } from "../../src/lib/crypto";
import { api, get, patch, post } from "../helpers/client";
import { addMemberDirect, createPat, createUser, PASSWORD, uniqueEmail } from "../helpers/factories";
import { acceptPath, expireDirect, invitationPath, invitationRow, invitationsPath, inviteWithToken, orgCounters, previewPath } from "./invitations-helpers";
import { ISO, adminAndOrg, memberPath } from "./members-helpers";
import { errorPaths, expectProblem } from "../helpers/problems";

const newAccount = { display_name: "New Person", password: PASSWORD };

/** An organization with an admin and one pending invitation whose token the test holds. */
async function pending(body: Record<string, unknown> = {}) {
  const { admin, org } = await adminAndOrg();
  const { invitation, token } = await inviteWithToken(admin.accessToken, org.id, body);
  return { admin, org, invitation, token };
}

describe("preview", () => {
  it("shows what the invitation is for, without credentials", async () => {
    const { admin, org, invitation, token } = await pending({ role: "admin" });
    const res = await get(previewPath(token));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      organization: { id: org.id, name: org.name, logo_data_uri: null },
      inviter_display_name: admin.displayName,
      email: invitation.email,
      role: "admin",
      expires_at: invitation.expires_at,
    });
    expect(res.cost.queries).toBe(1);
  });

  it("an invitation's id in place of its token: 404 saying which to use, for preview and accept alike", async () => {
    const { invitation } = await pending();
    for (const res of [await get(previewPath(invitation.id)), await post(acceptPath(invitation.id), newAccount)]) {
      expectProblem(res, 404, "not_found");
      expect(res.body.detail).toMatch(/invitation id; use the token from the email.*ivt_/);
    }
  });

  it("a token minted before invitation tokens had their own prefix (inv_…) still previews and accepts", async () => {
    const { invitation } = await pending();
    // Such a row differs only in what was hashed: the lookup is by the hash of the whole token.
    const legacy = `inv_${newSecret("ivt").slice(4)}`;
    await env.DB.prepare("update invitations set token_hash = ? where id = ?")
      .bind(await sha256Hex(legacy), invitation.id)
      .run();
    expect((await get(previewPath(legacy))).status).toBe(200);
    const res = await post(acceptPath(legacy), newAccount);
    expect(res.status, res.text).toBe(201);
    expect((await invitationRow(invitation.id))!.status).toBe("accepted");
  });

  it("404 for unknown, malformed, used, canceled and expired tokens", async () => {
    const { admin, org, token } = await pending();
    for (const bad of [
      `ivt_${"A".repeat(43)}`,
      `inv_${"A".repeat(43)}`,
      `inv_${token.slice(4)}`,
      "nope",
      token.slice(0, -1),
      `${token}x`,
      "inv_'; drop table invitations; --",
    ]) {
      expectProblem(await get(previewPath(bad)), 404, "not_found");
    }
    expect((await post(acceptPath(token), newAccount)).status).toBe(201);
    expectProblem(await get(previewPath(token)), 404, "not_found");

    const canceled = await inviteWithToken(admin.accessToken, org.id);
    expect((await post(`${invitationPath(org.id, canceled.invitation.id)}/cancel`, undefined, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await get(previewPath(canceled.token)), 404, "not_found");

    const expired = await inviteWithToken(admin.accessToken, org.id);
    await expireDirect(expired.invitation.id);
    expectProblem(await get(previewPath(expired.token)), 404, "not_found");
    // And after the sweep has marked it.
    await runScheduled(env as never);
    expect((await invitationRow(expired.invitation.id))!.status).toBe("expired");
    expectProblem(await get(previewPath(expired.token)), 404, "not_found");
  });
});

describe("accept: signed in", () => {
  it("the invited user becomes a member with the invited role: 200", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email.toUpperCase(), role: "admin" });
    const before = await orgCounters(org.id);
    const res = await post(acceptPath(token), undefined, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      organization: { id: org.id, name: org.name },
      member: { user: { id: user.id, display_name: user.displayName, email: user.email }, role: "admin", type: "user", joined_at: expect.stringMatching(ISO) },
      // The link came back to the inviter (send_email: false), not by email: it proves nothing about the address.
      user: {
        id: user.id,
        email: user.email,
        display_name: user.displayName,
        email_verified: false,
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      },
    });
    expect(res.body).not.toHaveProperty("access_token");
    // The seat moves from the invitation to the member.
    expect(await orgCounters(org.id)).toEqual({
      member_count: before.member_count + 1,
      user_member_count: before.user_member_count + 1,
      pending_invitation_count: before.pending_invitation_count - 1,
    });
    expect((await get(memberPath(org.id, user.id), { token: admin.accessToken })).body.role).toBe("admin");
    expect((await get(`/v1/organizations/${org.id}`, { token: user.accessToken })).status).toBe(200);
    const after = await get(invitationPath(org.id, invitation.id), { token: admin.accessToken });
    expect(after.body).toMatchObject({ status: "accepted", accepted_at: expect.stringMatching(ISO) });
    const accepted = await get(`${invitationsPath(org.id)}?status=accepted`, { token: admin.accessToken });
    expect(accepted.body.items.map((i: { id: string }) => i.id)).toEqual([invitation.id]);
    expect((await get(`${invitationsPath(org.id)}?status=pending`, { token: admin.accessToken })).body.items).toEqual([]);
    expect((await get("/v1/me", { token: user.accessToken })).body.email_verified).toBe(false);
  });

  it("another user's session → 403 invitation_email_mismatch; the invitation stays pending", async () => {
    const { invitation, token } = await pending();
    const stranger = await createUser();
    expectProblem(await post(acceptPath(token), undefined, { token: stranger.accessToken }), 403, "invitation_email_mismatch");
    expect((await invitationRow(invitation.id))!.status).toBe("pending");
    expect((await get(previewPath(token))).status).toBe(200);
  });

  it("a PAT is not a session: 403; a bad credential: 401", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    const pat = await createPat(user, ["organization_member:write"]);
    expectProblem(await post(acceptPath(token), undefined, { token: pat.token }), 403, "forbidden");
    expectProblem(await post(acceptPath(token), undefined, { token: "garbage" }), 401, "unauthenticated");
    expect((await post(acceptPath(token), undefined, { token: user.accessToken })).status).toBe(200);
  });

  it("a user who is already a member keeps their membership and role; the seat is released", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email, role: "admin" });
    await addMemberDirect(org.id, user, "user");
    const before = await orgCounters(org.id);
    const res = await post(acceptPath(token), undefined, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.member.role).toBe("user");
    expect(await orgCounters(org.id)).toEqual({ ...before, pending_invitation_count: before.pending_invitation_count - 1 });
  });

  it("concurrent accepts by the invited user: exactly one wins, the others get 410", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    const before = await orgCounters(org.id);
    // Three, not two: the requests often share one millisecond, which is what once let all of them win.
    const results = await Promise.all([1, 2, 3].map(() => post(acceptPath(token), undefined, { token: user.accessToken })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 410, 410]);
    expectProblem(results.find((r) => r.status === 410)!, 410, "invitation_not_pending");
    expect(await orgCounters(org.id)).toEqual({
      member_count: before.member_count + 1,
      user_member_count: before.user_member_count + 1,
      pending_invitation_count: 0,
    });
  });
});

describe("accept: new account", () => {
  it("creates the account, joins, and returns a token pair: 201 (unverified: the link was not emailed)", async () => {
    const { admin, org, invitation, token } = await pending({ role: "admin" });
    const res = await post(acceptPath(token), { display_name: "  Ada Lovelace ", password: PASSWORD });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      organization: { id: org.id, name: org.name },
      member: {
        user: { id: expect.stringMatching(/^usr_/), display_name: "Ada Lovelace", email: invitation.email },
        role: "admin",
        type: "user",
        joined_at: expect.stringMatching(ISO),
      },
      user: {
        id: res.body.member.user.id,
        email: invitation.email,
        display_name: "Ada Lovelace",
        email_verified: false,
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
      },
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      token_type: "Bearer",
      expires_in: expect.any(Number),
    });
    // The tokens work, the account can log in, and it is an admin of the organization.
    const me = await get("/v1/me", { token: res.body.access_token });
    expect(me.body).toMatchObject({ id: res.body.user.id, email: invitation.email, email_verified: false });
    // As after a signup, a verification email is on its way.
    const outbox = await env.DB.prepare("select template from outbox where recipient = ? and template = 'verify_email'").bind(invitation.email).first();
    expect(outbox).toBeTruthy();
    expect((await post("/v1/auth/login", { email: invitation.email, password: PASSWORD })).status).toBe(200);
    expect((await post("/v1/auth/refresh", { refresh_token: res.body.refresh_token })).status).toBe(200);
    expect((await get(memberPath(org.id, res.body.user.id), { token: admin.accessToken })).body.role).toBe("admin");
    expect((await patch(`/v1/organizations/${org.id}`, { name: "Renamed by the invitee" }, { token: res.body.access_token })).status).toBe(200);
  });

  it("missing display_name and password → 400 naming both; a weak password → 400", async () => {
    const { invitation, token } = await pending();
    for (const body of [undefined, {}]) {
      const res = await post(acceptPath(token), body);
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res).sort()).toEqual(["display_name", "password"]);
    }
    const weak = await post(acceptPath(token), { display_name: "X", password: "password1" });
    expect(weak.status).toBe(400);
    expect(errorPaths(weak)).toEqual(["password"]);
    const blank = await post(acceptPath(token), { display_name: "   ", password: PASSWORD });
    expectProblem(blank, 400, "validation_failed");
    expect(errorPaths(blank)).toEqual(["display_name"]);
    expectProblem(await api("POST", acceptPath(token), { raw: "{not json", headers: { "Content-Type": "application/json" } }), 400, "malformed_json");
    expect((await invitationRow(invitation.id))!.status).toBe("pending");
  });

  it("an account with the invited email exists → 409 email_taken; signing in as it works", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    expectProblem(await post(acceptPath(token), newAccount), 409, "email_taken");
    expect((await invitationRow(invitation.id))!.status).toBe("pending");
    expect((await post(acceptPath(token), undefined, { token: user.accessToken })).status).toBe(200);
  });

  it("two concurrent accepts: exactly one account is created, the other gets 410", async () => {
    const { org, invitation, token } = await pending();
    const results = await Promise.all([post(acceptPath(token), newAccount), post(acceptPath(token), { ...newAccount, display_name: "Other" })]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 410]);
    expectProblem(results.find((r) => r.status === 410)!, 410, "invitation_not_pending");
    const users = await env.DB.prepare("select count(*) as n from users where email = ?").bind(invitation.email).first<{ n: number }>();
    expect(users!.n).toBe(1);
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(0);
  });
});

describe("accept: not pending", () => {
  it("used → 410 for a signed-in user and for a new account", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    expect((await post(acceptPath(token), undefined, { token: user.accessToken })).status).toBe(200);
    expectProblem(await post(acceptPath(token), undefined, { token: user.accessToken }), 410, "invitation_not_pending");
    expectProblem(await post(acceptPath(token), newAccount), 410, "invitation_not_pending");
  });

  it("canceled → 410", async () => {
    const { admin, org, invitation, token } = await pending();
    expect((await post(`${invitationPath(org.id, invitation.id)}/cancel`, undefined, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await post(acceptPath(token), newAccount), 410, "invitation_not_pending");
  });

  it("expired → 410, before and after the sweep, and no account is created", async () => {
    const { invitation, token } = await pending();
    await expireDirect(invitation.id);
    expectProblem(await post(acceptPath(token), newAccount), 410, "invitation_not_pending");
    await runScheduled(env as never);
    expectProblem(await post(acceptPath(token), newAccount), 410, "invitation_not_pending");
    expect(await env.DB.prepare("select id from users where email = ?").bind(invitation.email).first()).toBeNull();
  });

  it("a re-sent invitation's old token → 404 (unknown), the new one works", async () => {
    const { admin, org, invitation, token } = await pending();
    const resent = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false }, { token: admin.accessToken });
    expectProblem(await post(acceptPath(token), newAccount), 404, "not_found");
    const fresh = new URL(resent.body.accept_url).searchParams.get("token")!;
    expect((await post(acceptPath(fresh), newAccount)).status).toBe(201);
  });

  it("an inactive organization takes no new members: 409 organization_inactive until reactivated", async () => {
    const { admin, org, invitation, token } = await pending();
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await post(acceptPath(token), newAccount), 409, "organization_inactive");
    expect(await env.DB.prepare("select id from users where email = ?").bind(invitation.email).first()).toBeNull();
    expect((await patch(`/v1/organizations/${org.id}`, { active: true }, { token: admin.accessToken })).status).toBe(200);
    expect((await post(acceptPath(token), newAccount)).status).toBe(201);
  });

  it("an unknown or malformed token → 404", async () => {
    for (const bad of [`ivt_${"B".repeat(43)}`, `inv_${"B".repeat(43)}`, "x", "%00"]) expectProblem(await post(acceptPath(bad), newAccount), 404, "not_found");
    expectProblem(await post(acceptPath(uniqueEmail()), newAccount), 404, "not_found");
  });
});

describe("cost", () => {
  it("accepting takes a fixed number of round trips", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const signedIn = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    const a = await post(acceptPath(signedIn.token), undefined, { token: user.accessToken });
    expect(a.status).toBe(200);
    const { token } = await inviteWithToken(admin.accessToken, org.id);
    const b = await post(acceptPath(token), newAccount);
    expect(b.status).toBe(201);
    // The invitation by token; the user row; one batch that flips, joins and reads the member back.
    expect(a.cost.queries).toBe(3);
    // The invitation by token; one batch that creates the account, joins and opens the session.
    expect(b.cost.queries).toBe(2);
    expect(a.cost.rowsRead).toBeLessThanOrEqual(20);
    expect(b.cost.rowsRead).toBeLessThanOrEqual(20);
  });
});
