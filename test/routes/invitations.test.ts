import { env } from "cloudflare:workers";
import { createProject } from "./projects-helpers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { api, get, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, uniqueEmail } from "../helpers/factories";
import {
  acceptPath,
  eventually,
  expireDirect,
  invitationPath,
  invitationRow,
  invitationsPath,
  invite,
  inviteWithToken,
  mailboxFor,
  orgCounters,
  outboxRow,
  previewPath,
  tokenOf,
  type Invitation,
} from "./invitations-helpers";
import { ISO, adminAndOrg, createRole } from "./members-helpers";
import { errorPaths, expectProblem } from "../helpers/problems";

const projectId = () => newId("project");

describe("happy", () => {
  it("creates an invitation with the defaults, stores only the token's hash and queues its email", async () => {
    const { admin, org } = await adminAndOrg();
    const email = uniqueEmail("Invitee");
    const before = Date.now();
    const res = await post(invitationsPath(org.id), { email: `  ${email.toUpperCase()} ` }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^inv_[0-9A-HJKMNP-TV-Z]{26}$/),
      email: email.toLowerCase(),
      role: "user",
      status: "pending",
      message: null,
      project_ids: [],
      invited_by: { id: admin.id, display_name: admin.displayName },
      email_status: "queued",
      expires_at: expect.stringMatching(ISO),
      created_at: expect.stringMatching(ISO),
      accepted_at: null,
    });
    // The default expiry is 7 days; nothing about the token is echoed when an email carries it.
    const expires = Date.parse(res.body.expires_at) - Date.parse(res.body.created_at);
    expect(expires).toBe(7 * 86_400_000);
    expect(Date.parse(res.body.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(res.body).not.toHaveProperty("accept_url");

    const row = await invitationRow(res.body.id);
    expect(row!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row!.outbox_id).toMatch(/^[a-z]+_/);
    // The invitation and its outbox row went in together; the email's secret is sealed.
    const mail = await outboxRow(row!.outbox_id);
    expect(mail).toMatchObject({ template: "invitation", recipient: email.toLowerCase(), subject_id: res.body.id });
    expect(mail!.payload).not.toMatch(/(?:ivt|inv)_[A-Za-z0-9_-]{40,}/);

    // The real queue delivers it; the emailed link's token is the one whose hash is stored.
    const [delivered] = await eventually(
      () => mailboxFor(email.toLowerCase()),
      (m) => m.length === 1,
      "the invitation email",
    );
    const token = /token=([A-Za-z0-9_-]+)/.exec(delivered!.text)![1]!;
    expect(await sha256Hex(token)).toBe(row!.token_hash);
    const got = await eventually(
      () => get(invitationPath(org.id, res.body.id), { token: admin.accessToken }),
      (r) => r.body.email_status === "sent",
      "email_status sent",
    );
    expect(got.body).toEqual({ ...res.body, email_status: "sent" });
  });

  it("keeps role, message, project_ids and expiry; send_email=false returns the accept_url once and queues nothing", async () => {
    const { admin, org } = await adminAndOrg();
    const projects = [(await createProject(admin.accessToken, org.id)).id, (await createProject(admin.accessToken, org.id, { private: true })).id];
    const res = await post(
      invitationsPath(org.id),
      { email: uniqueEmail(), role: "admin", message: "  Welcome aboard!  ", project_ids: projects, send_email: false, expires_in_days: 30 },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ role: "admin", message: "Welcome aboard!", project_ids: projects, email_status: null, status: "pending" });
    expect(Date.parse(res.body.expires_at) - Date.parse(res.body.created_at)).toBe(30 * 86_400_000);
    expect(res.body.accept_url).toMatch(/^http:\/\/app\.test\/invitations\/accept\?token=ivt_[A-Za-z0-9_-]{43}$/);
    expect((await invitationRow(res.body.id))!.outbox_id).toBeNull();
    expect(await sha256Hex(tokenOf(res.body.accept_url))).toBe((await invitationRow(res.body.id))!.token_hash);

    // Shown once: reads never carry it.
    const got = await get(invitationPath(org.id, res.body.id), { token: admin.accessToken });
    expect(got.body).not.toHaveProperty("accept_url");
    const { accept_url: _, ...rest } = res.body;
    expect(got.body).toEqual(rest);

    const shortest = await invite(admin.accessToken, org.id, { expires_in_days: 1, send_email: false });
    expect(Date.parse(shortest.expires_at) - Date.parse(shortest.created_at)).toBe(86_400_000);
  });

  it("invites into a custom role the caller's power covers", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, ["organization:read", "members:read"]);
    const inv = await invite(admin.accessToken, org.id, { role: role.name });
    expect(inv.role).toBe(role.name);
  });

  it("combine_pending refreshes the pending invitation: 200, new token and expiry, new role, project ids united", async () => {
    const { admin, org } = await adminAndOrg();
    const [p1, p2, p3] = await Promise.all([1, 2, 3].map(async () => (await createProject(admin.accessToken, org.id)).id));
    const first = await inviteWithToken(admin.accessToken, org.id, { role: "user", project_ids: [p1, p2], message: "first", expires_in_days: 2 });
    const res = await post(
      invitationsPath(org.id),
      { email: first.invitation.email, role: "admin", project_ids: [p2, p3], combine_pending: true, send_email: false, expires_in_days: 9 },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: first.invitation.id, role: "admin", status: "pending", message: "first", created_at: first.invitation.created_at });
    expect([...res.body.project_ids].sort()).toEqual([p1, p2, p3].sort());
    expect(Date.parse(res.body.expires_at) - Date.now()).toBeGreaterThan(8.9 * 86_400_000);
    // The old link stops working at once; the new one works.
    const newToken = tokenOf(res.body.accept_url);
    expect(newToken).not.toBe(first.token);
    expectProblem(await get(previewPath(first.token)), 404, "not_found");
    expect((await get(previewPath(newToken))).body.role).toBe("admin");
    // Still one pending invitation holding one seat.
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(1);

    // Without a pending one, combine_pending simply creates.
    const fresh = await post(invitationsPath(org.id), { email: uniqueEmail(), combine_pending: true }, { token: admin.accessToken });
    expect(fresh.status, fresh.text).toBe(201);
  });

  it("combine_pending with send_email sends a new email and the previous, undelivered one never goes out", async () => {
    const { admin, org } = await adminAndOrg();
    const first = await inviteWithToken(admin.accessToken, org.id);
    const res = await post(invitationsPath(org.id), { email: first.invitation.email, combine_pending: true }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.email_status).toBe("queued");
    const mails = await eventually(
      () => mailboxFor(first.invitation.email),
      (m) => m.length === 1,
      "the combined invitation's email",
    );
    const token = /token=([A-Za-z0-9_-]+)/.exec(mails[0]!.text)![1]!;
    expect((await get(previewPath(token))).status).toBe(200);
  });

  it("lists newest first across 3+ pages with a stable order, filtered by status", async () => {
    const { admin, org } = await adminAndOrg();
    const created: Invitation[] = [];
    for (let i = 0; i < 7; i++) created.push(await invite(admin.accessToken, org.id, { send_email: false }));
    const canceled = created[1]!;
    expect((await post(`${invitationPath(org.id, canceled.id)}/cancel`, undefined, { token: admin.accessToken })).status).toBe(200);
    const expired = created[4]!;
    await expireDirect(expired.id);
    // One the cron has swept and one it has not: the expired filter merges both, in id order.
    const swept = created[2]!;
    await expireDirect(swept.id);
    await env.DB.prepare("update invitations set status = 'expired' where id = ?").bind(swept.id).run();

    const walk = async (query: Record<string, string>, pageSize: number) => {
      const ids: string[] = [];
      let pageToken = "";
      let pages = 0;
      for (;;) {
        const qs = new URLSearchParams({ ...query, page_size: String(pageSize), ...(pageToken ? { page_token: pageToken } : {}) });
        const res = await get(`${invitationsPath(org.id)}?${qs}`, { token: admin.accessToken });
        expect(res.status, res.text).toBe(200);
        // The page, plus the caller's membership read by the authorization batch and by each statement's guard.
        expect(res.cost.rowsRead, "rows read by one page").toBeLessThanOrEqual(pageSize + 12);
        pages++;
        ids.push(...(res.body.items as Invitation[]).map((i) => i.id));
        pageToken = res.body.next_page_token;
        if (!pageToken) break;
        expect(res.body.items).toHaveLength(pageSize);
        expect(pages).toBeLessThan(20);
      }
      return { ids, pages };
    };
    const newestFirst = created.map((i) => i.id).reverse();
    const all = await walk({}, 2);
    expect(all.pages).toBe(4);
    expect(all.ids).toEqual(newestFirst);
    // Stable: walking again gives the same sequence.
    expect((await walk({}, 2)).ids).toEqual(newestFirst);

    const pending = await walk({ status: "pending" }, 1);
    expect(pending.pages).toBe(4);
    expect(pending.ids).toEqual(newestFirst.filter((id) => ![canceled.id, expired.id, swept.id].includes(id)));
    expect((await walk({ status: "canceled" }, 2)).ids).toEqual([canceled.id]);
    // Past its expiry, a pending invitation lists as expired before the cron sweeps it.
    expect((await walk({ status: "expired" }, 2)).ids).toEqual([expired.id, swept.id]);
    const oneByOne = await walk({ status: "expired" }, 1);
    expect(oneByOne).toEqual({ ids: [expired.id, swept.id], pages: 2 });
    expect((await walk({ status: "accepted" }, 2)).ids).toEqual([]);

    const one = await get(`${invitationsPath(org.id)}?status=expired`, { token: admin.accessToken });
    expect(one.body.items[0].status).toBe("expired");
  });

  it("gets one invitation", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { message: "hi", send_email: false });
    const res = await get(invitationPath(org.id, inv.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    const { accept_url: _, ...rest } = inv;
    expect(res.body).toEqual(rest);
  });

  it("cancel: 200 canceled, frees the seat, and the link stops working", async () => {
    const { admin, org } = await adminAndOrg();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id);
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(1);
    const res = await post(`${invitationPath(org.id, invitation.id)}/cancel`, undefined, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    const { accept_url: _, ...rest } = invitation;
    expect(res.body).toEqual({ ...rest, status: "canceled" });
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(0);
    expectProblem(await get(previewPath(token)), 404, "not_found");
    expectProblem(await post(acceptPath(token), { display_name: "X", password: "correct horse battery staple" }), 410, "invitation_not_pending");
    // A new invitation for the same email is allowed again.
    await invite(admin.accessToken, org.id, { email: invitation.email, send_email: false });
  });

  it("resend: a new token, a new expiry and a new email; the old link stops working", async () => {
    const { admin, org } = await adminAndOrg();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id, { expires_in_days: 1 });
    const res = await post(`${invitationPath(org.id, invitation.id)}/resend`, undefined, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: invitation.id, status: "pending", email_status: "queued", created_at: invitation.created_at });
    expect(res.body).not.toHaveProperty("accept_url");
    expect(Date.parse(res.body.expires_at) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    expectProblem(await get(previewPath(token)), 404, "not_found");
    const mails = await eventually(
      () => mailboxFor(invitation.email),
      (m) => m.length === 1,
      "the resent email",
    );
    const newToken = /token=([A-Za-z0-9_-]+)/.exec(mails[0]!.text)![1]!;
    expect((await get(previewPath(newToken))).status).toBe(200);
    await eventually(
      () => get(invitationPath(org.id, invitation.id), { token: admin.accessToken }),
      (r) => r.body.email_status === "sent",
      "email_status sent",
    );

    // With send_email=false and a chosen expiry, the link comes back instead of an email.
    const again = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false, expires_in_days: 3 }, { token: admin.accessToken });
    expect(again.status, again.text).toBe(200);
    expect(again.body.email_status).toBeNull();
    expect(Date.parse(again.body.expires_at) - Date.now()).toBeLessThanOrEqual(3 * 86_400_000);
    expectProblem(await get(previewPath(newToken)), 404, "not_found");
    expect((await get(previewPath(tokenOf(again.body.accept_url)))).status).toBe(200);
  });
});

describe("errors", () => {
  it("every bad field of a create is listed at once", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      invitationsPath(org.id),
      { email: "nope", role: "", message: "x".repeat(2001), project_ids: ["prj_bad"], send_email: "yes", combine_pending: 1, expires_in_days: 31 },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["combine_pending", "email", "expires_in_days", "message", "project_ids.0", "role", "send_email"]);
  });

  it.each([
    [{}, "email"],
    [{ email: uniqueEmail(), expires_in_days: 0 }, "expires_in_days"],
    [{ email: uniqueEmail(), expires_in_days: 1.5 }, "expires_in_days"],
    [{ email: uniqueEmail(), project_ids: "prj_x" }, "project_ids"],
    [{ email: uniqueEmail(), project_ids: Array.from({ length: 101 }, projectId) }, "project_ids"],
    [{ email: `${"a".repeat(250)}@example.com` }, "email"],
    [{ email: uniqueEmail(), message: 42 }, "message"],
  ])("create %j → 400 naming %s", async (body, path) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(invitationsPath(org.id), body, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual([path]);
  });

  it("a repeated project id → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const p = projectId();
    const res = await post(invitationsPath(org.id), { email: uniqueEmail(), project_ids: [p, p] }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["project_ids"]);
  });

  it("a role the organization does not have → 400 naming role", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(invitationsPath(org.id), { email: uniqueEmail(), role: "owner" }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["role"]);
  });

  it("already a member → 409 already_member; a pending invitation → 409 invitation_pending", async () => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await post(invitationsPath(org.id), { email: admin.email }, { token: admin.accessToken }), 409, "already_member");
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    expectProblem(await post(invitationsPath(org.id), { email: inv.email.toUpperCase() }, { token: admin.accessToken }), 409, "invitation_pending");
    // An expired pending invitation no longer blocks a new one, and stops holding its seat.
    await expireDirect(inv.id);
    const again = await invite(admin.accessToken, org.id, { email: inv.email, send_email: false });
    expect(again.id).not.toBe(inv.id);
    expect((await invitationRow(inv.id))!.status).toBe("expired");
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(1);
  });

  it("list: bad page_size, status or page_token → 400", async () => {
    const { admin, org } = await adminAndOrg();
    for (let i = 0; i < 3; i++) await invite(admin.accessToken, org.id, { send_email: false });
    for (const [q, path] of [
      ["page_size=0", "page_size"],
      ["page_size=-1", "page_size"],
      ["status=gone", "status"],
    ] as const) {
      const res = await get(`${invitationsPath(org.id)}?${q}`, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual([path]);
    }
    const first = await get(`${invitationsPath(org.id)}?page_size=1`, { token: admin.accessToken });
    const pageToken = first.body.next_page_token as string;
    expect(pageToken).not.toBe("");
    // A cursor belongs to its filter.
    expectProblem(
      await get(`${invitationsPath(org.id)}?page_size=1&status=pending&page_token=${pageToken}`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
    expectProblem(
      await get(`${invitationsPath(org.id)}?page_size=1&page_token=${pageToken.slice(0, -2)}xx`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
    // A huge page_size is coerced, not refused.
    expect((await get(`${invitationsPath(org.id)}?page_size=5000`, { token: admin.accessToken })).status).toBe(200);
  });

  it("get, cancel, resend: unknown or malformed ids → 404", async () => {
    const { admin, org } = await adminAndOrg();
    for (const id of [newId("invitation"), "inv_nope", "xyz", "usr_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"]) {
      expectProblem(await get(invitationPath(org.id, id), { token: admin.accessToken }), 404, "not_found");
      expectProblem(await post(`${invitationPath(org.id, id)}/cancel`, undefined, { token: admin.accessToken }), 404, "not_found");
      expectProblem(await post(`${invitationPath(org.id, id)}/resend`, {}, { token: admin.accessToken }), 404, "not_found");
    }
  });

  it("cancel or resend of an invitation that is not pending → 409 conflict", async () => {
    const { admin, org } = await adminAndOrg();
    const canceled = await invite(admin.accessToken, org.id, { send_email: false });
    expect((await post(`${invitationPath(org.id, canceled.id)}/cancel`, undefined, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await post(`${invitationPath(org.id, canceled.id)}/cancel`, undefined, { token: admin.accessToken }), 409, "conflict");
    expectProblem(await post(`${invitationPath(org.id, canceled.id)}/resend`, undefined, { token: admin.accessToken }), 409, "conflict");

    // Past its expiry it reads as expired, and is treated as such before and after the sweep.
    const expired = await invite(admin.accessToken, org.id, { send_email: false });
    await expireDirect(expired.id);
    expectProblem(await post(`${invitationPath(org.id, expired.id)}/resend`, undefined, { token: admin.accessToken }), 409, "conflict");
    expectProblem(await post(`${invitationPath(org.id, expired.id)}/cancel`, undefined, { token: admin.accessToken }), 409, "conflict");
  });

  it("resend: a bad expires_in_days or send_email → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    const res = await post(`${invitationPath(org.id, inv.id)}/resend`, { expires_in_days: 0, send_email: "no" }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["expires_in_days", "send_email"]);
  });
});

describe("security", () => {
  it("every route needs a credential: 401", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }), 401, "unauthenticated");
    expectProblem(await post(`${invitationsPath(org.id)}/batch`, { invitations: [{ email: uniqueEmail() }] }), 401, "unauthenticated");
    expectProblem(await get(invitationsPath(org.id)), 401, "unauthenticated");
    expectProblem(await get(invitationPath(org.id, inv.id)), 401, "unauthenticated");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/cancel`), 401, "unauthenticated");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/resend`), 401, "unauthenticated");
    expectProblem(await get(invitationsPath(org.id), { token: "pat_garbage" }), 401, "unauthenticated");
  });

  it("a member with the `user` role → 403 on every route; the invitation is untouched", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const token = member.accessToken;
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token }), 403, "forbidden");
    expectProblem(await post(`${invitationsPath(org.id)}/batch`, { invitations: [{ email: uniqueEmail() }] }, { token }), 403, "forbidden");
    expectProblem(await get(invitationsPath(org.id), { token }), 403, "forbidden");
    expectProblem(await get(invitationPath(org.id, inv.id), { token }), 403, "forbidden");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/cancel`, undefined, { token }), 403, "forbidden");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/resend`, undefined, { token }), 403, "forbidden");
    expect((await invitationRow(inv.id))!.status).toBe("pending");
  });

  it("an inviter may not invite into a role above their own: 403, also per batch row", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, ["organization:read", "members:read", "invitations:read", "invitations:write", "roles:read"]);
    const inviter = await createUser();
    await addMemberDirect(org.id, inviter, role.name);
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail(), role: "admin" }, { token: inviter.accessToken }), 403, "forbidden");
    // `user` carries projects:write, which this role lacks.
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: inviter.accessToken }), 403, "forbidden");
    const ok = await invite(inviter.accessToken, org.id, { role: role.name, send_email: false });
    expect(ok.invited_by).toEqual({ id: inviter.id, display_name: inviter.displayName });
    const batch = await post(
      `${invitationsPath(org.id)}/batch`,
      {
        invitations: [
          { email: uniqueEmail(), role: "admin" },
          { email: uniqueEmail(), role: role.name },
        ],
      },
      { token: inviter.accessToken },
    );
    expect(batch.body.results.map((r: any) => (r.status === "error" ? r.error.code : r.status))).toEqual(["forbidden", "created"]);
  });

  it("a PAT needs organization_member scopes: read for reads, write for writes (403 insufficient_scope)", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    const orgOnly = (await createPat(admin, ["organization:read", "organization:write"])).token;
    const readOnly = (await createPat(admin, ["organization_member:read"])).token;
    const write = (await createPat(admin, ["organization_member:write"])).token;
    expectProblem(await get(invitationsPath(org.id), { token: orgOnly }), 403, "insufficient_scope");
    expectProblem(await get(invitationPath(org.id, inv.id), { token: orgOnly }), 403, "insufficient_scope");
    expect((await get(invitationsPath(org.id), { token: readOnly })).status).toBe(200);
    expect((await get(invitationPath(org.id, inv.id), { token: readOnly })).status).toBe(200);
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: readOnly }), 403, "insufficient_scope");
    expectProblem(await post(`${invitationsPath(org.id)}/batch`, { invitations: [{ email: uniqueEmail() }] }, { token: readOnly }), 403, "insufficient_scope");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/cancel`, undefined, { token: readOnly }), 403, "insufficient_scope");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/resend`, undefined, { token: readOnly }), 403, "insufficient_scope");
    // A token hands out no more than it holds: organization_member:write alone lacks what the
    // `user` role carries (organization:read, projects:write…), so a leaked member-management
    // token cannot mint a broader identity.
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail(), send_email: false }, { token: write }), 403, "forbidden");
    const broad = (await createPat(admin, ["organization:write", "organization_member:write"])).token;
    const made = await post(invitationsPath(org.id), { email: uniqueEmail(), send_email: false }, { token: broad });
    expect(made.status, made.text).toBe(201);
    expect(made.body.invited_by.id).toBe(admin.id);
    expect((await post(`${invitationPath(org.id, inv.id)}/cancel`, undefined, { token: write })).status).toBe(200);
  });

  it("another organization's invitation → 404 on get, cancel and resend, even for its own admin's token elsewhere", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    const other = await createUser();
    const otherOrg = await createOrg(other);
    expectProblem(await get(invitationPath(otherOrg.id, inv.id), { token: other.accessToken }), 404, "not_found");
    expectProblem(await post(`${invitationPath(otherOrg.id, inv.id)}/cancel`, undefined, { token: other.accessToken }), 404, "not_found");
    expectProblem(await post(`${invitationPath(otherOrg.id, inv.id)}/resend`, undefined, { token: other.accessToken }), 404, "not_found");
    expect((await get(invitationsPath(otherOrg.id), { token: other.accessToken })).body.items).toEqual([]);
    // Not a member of the organization at all: 404 for the organization itself.
    expectProblem(await get(invitationPath(org.id, inv.id), { token: other.accessToken }), 404, "not_found");
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: other.accessToken }), 404, "not_found");
    expect((await invitationRow(inv.id))!.status).toBe("pending");
  });

  it("an inactive organization refuses new invitations: 409 organization_inactive", async () => {
    const { admin, org } = await adminAndOrg();
    const inv = await invite(admin.accessToken, org.id, { send_email: false });
    const off = await api("PATCH", `/v1/organizations/${org.id}`, { token: admin.accessToken, body: { active: false } });
    expect(off.status, off.text).toBe(200);
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(await post(`${invitationPath(org.id, inv.id)}/resend`, undefined, { token: admin.accessToken }), 409, "organization_inactive");
    expect((await get(invitationPath(org.id, inv.id), { token: admin.accessToken })).status).toBe(200);
  });
});
