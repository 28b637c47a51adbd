import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { post } from "../helpers/client";
import { addMemberDirect, createUser, PASSWORD, uniqueEmail } from "../helpers/factories";
import { auditEntries, outboxEvents, subscribe } from "../helpers/audit-trail";
import { acceptPath, expireDirect, invitationPath, invitationsPath, invite, orgCounters, tokenOf, type Invitation } from "./invitations-helpers";
import { adminAndOrg } from "./members-helpers";
import { expectProblem } from "../helpers/problems";

/**
 * The endpoints these tests subscribe are not real: their deliveries stay in the outbox, where the
 * tests read them, and the webhook consumer is never handed one.
 */
const held = { WEBHOOK_QUEUE: { held: true, send: async () => undefined, sendBatch: async () => undefined } as unknown as Queue };

async function inviteWithToken(token: string, orgId: string, body: Record<string, unknown> = {}) {
  const invitation = await invite(token, orgId, { ...body, send_email: false }, { env: held });
  return { invitation, token: tokenOf(invitation.accept_url!) };
}

const INVITATION_EVENTS = ["invitation.created", "invitation.updated", "invitation.resent", "invitation.canceled", "invitation.accepted", "member.added"];

/** What an event carries: the invitation as the API returns it, minus the one-time link. */
const asEvent = ({ accept_url: _, ...inv }: Invitation) => inv;

/** Nothing in an event may let its receiver accept the invitation. */
function expectNoToken(payload: unknown) {
  const text = JSON.stringify(payload);
  expect(text).not.toMatch(/(?:ivt|inv)_[A-Za-z0-9_-]{40,}/);
  expect(text).not.toContain("accept_url");
  expect(text).not.toContain("token_hash");
}

describe("audit entries and events", () => {
  it("a create and a combine: one entry each, the event carrying the invitation as returned, never its link", async () => {
    const { admin, org } = await adminAndOrg();
    await subscribe(org.id, INVITATION_EVENTS);
    const created = await post(invitationsPath(org.id), { email: uniqueEmail(), send_email: false, message: "hello" }, { token: admin.accessToken, env: held });
    expect(created.status, created.text).toBe(201);
    const combined = await post(
      invitationsPath(org.id),
      { email: created.body.email, combine_pending: true, role: "admin", send_email: false },
      { token: admin.accessToken, env: held },
    );
    expect(combined.status, combined.text).toBe(200);

    const entries = await auditEntries(org.id);
    const mine = entries.filter((e) => e.action.startsWith("invitation."));
    expect(mine).toEqual([
      expect.objectContaining({
        action: "invitation.created",
        actor_type: "user",
        actor_id: admin.id,
        credential: "session",
        target_type: "invitation",
        target_id: created.body.id,
        changes: null,
      }),
      expect.objectContaining({
        action: "invitation.updated",
        actor_id: admin.id,
        target_id: created.body.id,
        changes: ["token", "role", "project_ids", "expires_at", "email_status"],
      }),
    ]);
    const events = (await outboxEvents(org.id)).filter((e) => e.type.startsWith("invitation."));
    expect(events.map((e) => e.type)).toEqual(["invitation.created", "invitation.updated"]);
    expect(events[0]!.data).toEqual(asEvent(created.body));
    expect(events[1]!.data).toEqual(asEvent(combined.body));
    for (const e of events) expectNoToken(e);
  });

  it("a batch records only the rows that went in; a batch refused row by row answers 200 and records nothing", async () => {
    const { admin, org } = await adminAndOrg();
    await subscribe(org.id, INVITATION_EVENTS);
    const pending = await inviteWithToken(admin.accessToken, org.id);
    const before = (await auditEntries(org.id)).length;
    const rows = [{ email: uniqueEmail() }, { email: pending.invitation.email }, { email: "nope" }, { email: uniqueEmail(), send_email: false }];
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: held });
    expect(res.status, res.text).toBe(200);
    const landed = res.body.results.filter((r: any) => r.status === "created").map((r: any) => r.invitation as Invitation);
    expect(landed).toHaveLength(2);
    const entries = (await auditEntries(org.id)).slice(before);
    expect(entries.map((e) => [e.action, e.target_id])).toEqual(landed.map((i: Invitation) => ["invitation.created", i.id]));
    const events = (await outboxEvents(org.id)).slice(-2);
    expect(events.map((e) => e.data)).toEqual(landed.map(asEvent));

    const refused = await post(
      `${invitationsPath(org.id)}/batch`,
      { invitations: [{ email: pending.invitation.email }, { email: "bad" }] },
      { token: admin.accessToken, env: held },
    );
    expect(refused.status, refused.text).toBe(200);
    expect(refused.body.results.map((r: any) => r.status)).toEqual(["error", "error"]);
    expect(await auditEntries(org.id)).toHaveLength(before + 2);
  });

  it("cancel and resend: one entry each; a refused one (409) records nothing", async () => {
    const { admin, org } = await adminAndOrg();
    await subscribe(org.id, INVITATION_EVENTS);
    const a = await inviteWithToken(admin.accessToken, org.id);
    const resent = await post(
      `${invitationPath(org.id, a.invitation.id)}/resend`,
      { send_email: false, expires_in_days: 3 },
      { token: admin.accessToken, env: held },
    );
    expect(resent.status, resent.text).toBe(200);
    const canceled = await post(`${invitationPath(org.id, a.invitation.id)}/cancel`, undefined, { token: admin.accessToken, env: held });
    expect(canceled.status, canceled.text).toBe(200);
    expectProblem(await post(`${invitationPath(org.id, a.invitation.id)}/cancel`, undefined, { token: admin.accessToken, env: held }), 409, "conflict");
    expectProblem(await post(`${invitationPath(org.id, a.invitation.id)}/resend`, undefined, { token: admin.accessToken, env: held }), 409, "conflict");

    const entries = (await auditEntries(org.id)).filter((e) => e.target_id === a.invitation.id);
    expect(entries.map((e) => [e.action, e.changes])).toEqual([
      ["invitation.created", null],
      ["invitation.resent", ["token", "expires_at", "email_status"]],
      ["invitation.canceled", ["status"]],
    ]);
    const events = (await outboxEvents(org.id)).filter((e) => e.data.id === a.invitation.id);
    expect(events.map((e) => e.type)).toEqual(["invitation.created", "invitation.resent", "invitation.canceled"]);
    expect(events[1]!.data).toEqual(asEvent(resent.body));
    expect(events[2]!.data).toEqual(asEvent(canceled.body));
    for (const e of events) expectNoToken(e);
  });

  it("accept while signed in: invitation.accepted and member.added, by the user, with the member as returned", async () => {
    const { admin, org } = await adminAndOrg();
    await subscribe(org.id, INVITATION_EVENTS);
    const user = await createUser();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email, role: "admin" });
    const res = await post(acceptPath(token), undefined, { token: user.accessToken, env: held });
    expect(res.status, res.text).toBe(200);
    const entries = (await auditEntries(org.id)).slice(-2);
    expect(entries).toEqual([
      expect.objectContaining({
        action: "invitation.accepted",
        actor_type: "user",
        actor_id: user.id,
        credential: "session",
        target_type: "invitation",
        target_id: invitation.id,
      }),
      expect.objectContaining({ action: "member.added", actor_id: user.id, credential: "session", target_type: "user", target_id: user.id, changes: ["role"] }),
    ]);
    const events = (await outboxEvents(org.id)).slice(-2);
    expect(events.map((e) => e.type)).toEqual(["invitation.accepted", "member.added"]);
    expect(events[0]!.data).toMatchObject({ id: invitation.id, status: "accepted", accepted_at: res.body.member.joined_at });
    expect(events[1]!.data).toEqual(res.body.member);
    for (const e of events) expectNoToken(e);
  });

  it("accept as a new account: the new user acted, through the invitation", async () => {
    const { admin, org } = await adminAndOrg();
    const { invitation, token } = await inviteWithToken(admin.accessToken, org.id);
    const res = await post(acceptPath(token), { display_name: "New Person", password: PASSWORD }, { env: held });
    expect(res.status, res.text).toBe(201);
    const userId = res.body.member.user.id;
    expect((await auditEntries(org.id)).slice(-2)).toEqual([
      expect.objectContaining({ action: "invitation.accepted", actor_type: "user", actor_id: userId, credential: "invitation", target_id: invitation.id }),
      expect.objectContaining({ action: "member.added", actor_id: userId, credential: "invitation", target_id: userId }),
    ]);
  });

  it("accept by someone already a member: the invitation is accepted, nobody is added", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    await addMemberDirect(org.id, user, "user");
    const before = (await auditEntries(org.id)).length;
    expect((await post(acceptPath(token), undefined, { token: user.accessToken, env: held })).status).toBe(200);
    expect((await auditEntries(org.id)).slice(before).map((e) => e.action)).toEqual(["invitation.accepted"]);
  });

  it("concurrent accepts in one millisecond: only the winner's entries", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email });
    const before = (await auditEntries(org.id)).length;
    const results = await Promise.all([1, 2, 3].map(() => post(acceptPath(token), undefined, { token: user.accessToken, env: held })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 410, 410]);
    expect((await auditEntries(org.id)).slice(before).map((e) => e.action)).toEqual(["invitation.accepted", "member.added"]);
  });
});

describe("statement budget", () => {
  /**
   * 100 rows with every outcome at once: invalid, repeated, a member, pending without and with
   * combine_pending, a lapsed pending one (which frees its seat), an unknown role, and more new
   * emails than there are seats (the first ones in row order get them).
   */
  it("a batch of 100 mixed rows takes at most 50 statements and the same three round trips, with every row's result as before", async () => {
    const { admin, org } = await adminAndOrg();
    await subscribe(org.id, INVITATION_EVENTS);
    const seats = { FREE_PLAN_SEATS: "60", ...held };
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const existing = Array.from({ length: 21 }, () => uniqueEmail("pending"));
    const seeded = await post(
      `${invitationsPath(org.id)}/batch`,
      { invitations: existing.map((email) => ({ email, send_email: false })) },
      { token: admin.accessToken, env: seats },
    );
    expect(seeded.body.results.every((r: any) => r.status === "created")).toBe(true);
    const lapsed = seeded.body.results[20].invitation as Invitation;
    await expireDirect(lapsed.id);
    // 2 members + 20 live pending: 38 seats are left once the lapsed invitation stops holding one.
    const fresh = Array.from({ length: 67 }, () => uniqueEmail("fresh"));
    const rows = [
      ...Array.from({ length: 5 }, (_, i) => ({ email: `not-an-email-${i}` })),
      { email: member.email },
      ...existing.slice(0, 10).map((email) => ({ email, send_email: false })),
      ...existing.slice(10, 20).map((email, i) => ({ email, combine_pending: true, role: "admin", send_email: i % 2 === 0 })),
      { email: lapsed.email },
      { email: uniqueEmail(), role: "no-such-role" },
      ...fresh.map((email, i) => ({ email, send_email: i % 2 === 0, project_ids: [] })),
      ...fresh.slice(0, 5).map((email) => ({ email })),
    ];
    expect(rows).toHaveLength(100);
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: seats });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.statements).toBeLessThanOrEqual(50);
    // Authorization and reads; the write; the seat limit for the refusals' message.
    expect(res.cost.queries).toBe(3);

    const outcome = (r: any) => (r.status === "error" ? r.error.code : r.status);
    const got = res.body.results.map(outcome);
    expect(got).toEqual([
      ...Array(5).fill("validation_failed"),
      "already_member",
      ...Array(10).fill("invitation_pending"),
      ...Array(10).fill("combined"),
      "created",
      "validation_failed",
      ...Array(37).fill("created"),
      ...Array(30).fill("seat_limit_reached"),
      ...Array(5).fill("validation_failed"),
    ]);
    expect(res.body.results.find((r: any) => outcome(r) === "seat_limit_reached").error.seats).toBe(60);
    const combined = res.body.results.slice(16, 26).map((r: any) => r.invitation as Invitation);
    expect(combined.map((i: Invitation) => i.role)).toEqual(Array(10).fill("admin"));
    expect(combined.map((i: Invitation) => i.email_status)).toEqual(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? "queued" : null)));
    expect(combined.map((i: Invitation) => i.id)).toEqual(seeded.body.results.slice(10, 20).map((r: any) => r.invitation.id));
    expect(res.body.results[26].invitation.id).not.toBe(lapsed.id);
    expect(await orgCounters(org.id)).toMatchObject({ user_member_count: 2, pending_invitation_count: 58 });

    // One entry and one event per row that went in, exactly as the response shows it.
    const went = res.body.results.filter((r: any) => r.status !== "error");
    expect(went).toHaveLength(48);
    const entries = (await auditEntries(org.id)).slice(-48);
    expect(entries.map((e) => [e.action, e.target_id]).sort()).toEqual(
      went.map((r: any) => [r.status === "created" ? "invitation.created" : "invitation.updated", r.invitation.id]).sort(),
    );
    const events = (await outboxEvents(org.id)).slice(-48);
    const byId = new Map(events.map((e) => [e.data.id, e.data]));
    for (const r of went) expect(byId.get(r.invitation.id)).toEqual(asEvent(r.invitation));
    for (const e of events) expectNoToken(e);

    // An email for every row that asked for one and went in, and for no other.
    const { results: mails } = await env.DB.prepare(
      "select o.recipient from outbox o join invitations i on i.outbox_id = o.id where i.id in (select value from json_each(?))",
    )
      .bind(JSON.stringify(went.map((r: any) => r.invitation.id)))
      .all<{ recipient: string }>();
    const asked = went.filter((r: any) => r.invitation.email_status === "queued").map((r: any) => r.email);
    expect(mails.map((m) => m.recipient).sort()).toEqual(asked.sort());
  });

  it("100 new invitations with emails: at most 50 statements, two round trips", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = Array.from({ length: 100 }, () => ({ email: uniqueEmail("budget") }));
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: { FREE_PLAN_SEATS: "1000", ...held } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.results.every((r: any) => r.status === "created")).toBe(true);
    expect(res.cost.statements).toBeLessThanOrEqual(50);
    expect(res.cost.queries).toBe(2);
    expect((await auditEntries(org.id)).filter((e) => e.action === "invitation.created")).toHaveLength(100);
  });
});
