import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import { sha256Hex } from "../../src/lib/crypto";
import { get, post } from "../helpers/client";
import { createUser, uniqueEmail } from "../helpers/factories";
import { invitationPath, invitationRow, invitationsPath, mailboxFor, outboxRow, previewPath, queueDown } from "../routes/invitations-helpers";
import { DEAD_LETTER_QUEUE_NAME, runOne, runQueue, undeliveredInvitation } from "./queue-helpers";

const RESEND_KEY = "re_test_0123456789";
const resend: Partial<Bindings> = { EMAIL_PROVIDER: "resend", RESEND_API_KEY: RESEND_KEY };

/**
 * Stubs the one outside system, Resend's HTTP API, and records what was sent to it. Anything else
 * fetched fails the test.
 */
function stubResend(answer: (call: number, body: any) => Response | Promise<Response>) {
  const calls: { url: string; headers: Headers; body: any }[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input as RequestInfo, init as RequestInit);
    if (req.url !== "https://api.resend.com/emails") throw new Error(`unexpected fetch to ${req.url}`);
    const body = await req.json();
    calls.push({ url: req.url, headers: req.headers, body });
    return answer(calls.length, body);
  });
  return { calls, spy };
}

afterEach(() => {
  vi.restoreAllMocks();
});

const tokenIn = (text: string) => /token=([A-Za-z0-9_-]+)/.exec(text)![1]!;

describe("happy", () => {
  it("outbox provider: renders, stores in the dev mailbox, acks; email_status becomes sent", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation({ message: "See you there" });
    expect(await mailboxFor(invitation.email)).toEqual([]);
    const { result, id } = await runOne(outboxId);
    expect(result.outcome).toBe("ok");
    expect(result.explicitAcks).toEqual([id]);
    expect(result.retryMessages).toEqual([]);

    const [mail, ...more] = await mailboxFor(invitation.email);
    expect(more).toEqual([]);
    expect(mail!.subject).toBe(`${admin.displayName} invited you to join ${org.name}`);
    expect(mail!.text).toContain(`${admin.displayName} invited you to join ${org.name} as user.`);
    expect(mail!.text).toContain("> See you there");
    expect(mail!.text).toMatch(/^http:\/\/app\.test\/invitations\/accept\?token=ivt_[A-Za-z0-9_-]+$/m);
    expect(mail!.html).toContain(`href="http://app.test/invitations/accept?token=${tokenIn(mail!.text)}"`);
    // The link's token is the invitation's, and it works.
    expect(await sha256Hex(tokenIn(mail!.text))).toBe((await invitationRow(invitation.id))!.token_hash);
    expect((await get(previewPath(tokenIn(mail!.text)))).status).toBe(200);

    expect(await outboxRow(outboxId)).toMatchObject({ status: "sent", attempts: 1, last_error: null, sent_at: expect.any(Number) });
    const got = await get(invitationPath(org.id, invitation.id), { token: admin.accessToken });
    expect(got.body.email_status).toBe("sent");
  });

  it("the accept link is built from APP_BASE_URL", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    await runOne(outboxId, { env: { APP_BASE_URL: "https://join.example.org/" } });
    const [mail] = await mailboxFor(invitation.email);
    expect(mail!.text).toMatch(/^https:\/\/join\.example\.org\/invitations\/accept\?token=ivt_[A-Za-z0-9_-]+$/m);
    expect(mail!.html).toContain('href="https://join.example.org/invitations/accept?token=');
    expect(mail!.text).not.toContain("app.test");
  });

  it("user text is escaped in the HTML part and left plain in the text part", async () => {
    const inviter = await createUser({ displayName: `Eve <img src=x onerror="alert(1)">` });
    const hostile = `<script>alert("pwned")</script>\n& 'quoted' <b>bold</b>`;
    const { invitation, outboxId } = await undeliveredInvitation({ message: hostile }, inviter);
    await runOne(outboxId);
    const [mail] = await mailboxFor(invitation.email);

    expect(mail!.html).not.toMatch(/<script|<img|<b>/i);
    expect(mail!.html).toContain("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;");
    expect(mail!.html).toContain("&amp; &#39;quoted&#39; &lt;b&gt;bold&lt;/b&gt;");
    expect(mail!.html).toContain("Eve &lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    // The text part is plain text: the same characters, unescaped, the message quoted line by line.
    expect(mail!.text).toContain(`> <script>alert("pwned")</script>\n> & 'quoted' <b>bold</b>`);
    expect(mail!.text).toContain(`Eve <img src=x onerror="alert(1)"> invited you`);
    expect(mail!.text).not.toContain("&lt;");
    expect(mail!.subject).not.toMatch(/[\r\n]/);
  });

  it("a redelivered message (the same message twice) sends once", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    const first = await runOne(outboxId, { id: "redelivered-1" });
    const again = await runOne(outboxId, { id: "redelivered-1", attempts: 2 });
    expect(first.result.explicitAcks).toEqual(["redelivered-1"]);
    expect(again.result.explicitAcks).toEqual(["redelivered-1"]);
    expect(await mailboxFor(invitation.email)).toHaveLength(1);
    expect((await outboxRow(outboxId))!.attempts).toBe(1);

    // Both copies in one batch, as an at-least-once queue may also deliver them.
    const other = await undeliveredInvitation();
    const both = await runQueue([{ outboxId: other.outboxId }, { outboxId: other.outboxId }]);
    expect(both.result.explicitAcks.sort()).toEqual([...both.ids].sort());
    expect(await mailboxFor(other.invitation.email)).toHaveLength(1);
  });

  it("each message is handled on its own: one bad one does not hold back the batch", async () => {
    const a = await undeliveredInvitation();
    const b = await undeliveredInvitation();
    const { result, ids } = await runQueue([{ outboxId: a.outboxId }, { outboxId: "x", body: { nonsense: true } }, { outboxId: b.outboxId }]);
    // A malformed message can never succeed: acked (dropped), never retried forever.
    expect(result.explicitAcks.sort()).toEqual([...ids].sort());
    expect(result.retryMessages).toEqual([]);
    expect(await mailboxFor(a.invitation.email)).toHaveLength(1);
    expect(await mailboxFor(b.invitation.email)).toHaveLength(1);
  });

  it("an unknown outbox id is acked and ignored", async () => {
    const { result, id } = await runOne("obx_does_not_exist");
    expect(result.explicitAcks).toEqual([id]);
  });
});

describe("resend provider", () => {
  it("posts to Resend's API with the key, an idempotency key and both parts; 200 → sent", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation({ message: "<hi>" });
    const { calls } = stubResend(() => Response.json({ id: "re_msg_1" }));
    const { result, id } = await runOne(outboxId, { env: resend });
    expect(result.explicitAcks).toEqual([id]);
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call!.headers.get("authorization")).toBe(`Bearer ${RESEND_KEY}`);
    expect(call!.headers.get("content-type")).toMatch(/^application\/json/);
    expect(call!.headers.get("idempotency-key")).toBe(outboxId);
    expect(call!.body).toEqual({
      from: "Tenancy <no-reply@example.com>",
      to: [invitation.email],
      subject: `${admin.displayName} invited you to join ${org.name}`,
      text: expect.stringContaining("http://app.test/invitations/accept?token=ivt_"),
      html: expect.stringContaining("&lt;hi&gt;"),
    });
    expect(call!.body.text).toContain("<hi>");
    expect((await invitationRow(invitation.id))!.email_status).toBe("sent");
    // Nothing lands in the dev mailbox when a real provider is configured.
    expect(await mailboxFor(invitation.email)).toEqual([]);
  });

  it("a redelivered message does not call Resend again", async () => {
    const { outboxId } = await undeliveredInvitation();
    const { calls } = stubResend(() => Response.json({ id: "re_msg_2" }));
    await runOne(outboxId, { env: resend, id: "dup" });
    const again = await runOne(outboxId, { env: resend, id: "dup", attempts: 2 });
    expect(again.result.explicitAcks).toEqual(["dup"]);
    expect(calls).toHaveLength(1);
  });

  it("500 → retry with backoff, each attempt recorded; after the last try the dead-letter queue marks it failed with the error", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation();
    const { calls } = stubResend(() => new Response("upstream exploded", { status: 500 }));

    const first = await runOne(outboxId, { env: resend, attempts: 1 });
    expect(first.result.explicitAcks).toEqual([]);
    expect(first.result.retryMessages).toEqual([{ msgId: first.id, delaySeconds: 10 }]);
    expect(await outboxRow(outboxId)).toMatchObject({ attempts: 1, last_error: "resend 500: upstream exploded" });
    expect((await get(invitationPath(org.id, invitation.id), { token: admin.accessToken })).body.email_status).toBe("queued");

    // The delay doubles with each attempt, capped at ten minutes.
    for (const [attempts, delay] of [
      [2, 20],
      [3, 40],
      [5, 160],
      [7, 600],
      [20, 600],
    ] as const) {
      const r = await runOne(outboxId, { env: resend, attempts });
      expect(r.result.retryMessages).toEqual([{ msgId: r.id, delaySeconds: delay }]);
    }
    expect(calls).toHaveLength(6);
    expect((await outboxRow(outboxId))!.attempts).toBe(6);

    // Out of retries, the runtime moves the message to the dead-letter queue, whose consumer records the failure.
    const dead = await runOne(outboxId, { env: resend, queue: DEAD_LETTER_QUEUE_NAME, attempts: 1 });
    expect(dead.result.explicitAcks).toEqual([dead.id]);
    expect(calls).toHaveLength(6);
    expect(await outboxRow(outboxId)).toMatchObject({ status: "failed", last_error: "resend 500: upstream exploded" });
    const got = await get(invitationPath(org.id, invitation.id), { token: admin.accessToken });
    expect(got.body.email_status).toBe("failed");
    // The invitation itself is still pending: the admin can resend it.
    expect(got.body.status).toBe("pending");
    const resent = await post(`${invitationPath(org.id, invitation.id)}/resend`, { send_email: false }, { token: admin.accessToken });
    expect(resent.status, resent.text).toBe(200);
  });

  it("429 and network errors are retried; other 4xx fail at once without a retry", async () => {
    const throttled = await undeliveredInvitation();
    stubResend(() => new Response("slow down", { status: 429 }));
    const t = await runOne(throttled.outboxId, { env: resend });
    expect(t.result.retryMessages).toEqual([{ msgId: t.id, delaySeconds: 10 }]);
    vi.restoreAllMocks();

    const unreachable = await undeliveredInvitation();
    vi.spyOn(globalThis, "fetch").mockRejectedValue(new TypeError("network connection lost"));
    const u = await runOne(unreachable.outboxId, { env: resend });
    expect(u.result.retryMessages).toEqual([{ msgId: u.id, delaySeconds: 10 }]);
    expect((await outboxRow(unreachable.outboxId))!.last_error).toMatch(/resend unreachable: .*network connection lost/);
    vi.restoreAllMocks();

    const rejected = await undeliveredInvitation();
    stubResend(() => Response.json({ message: "invalid to address" }, { status: 422 }));
    const r = await runOne(rejected.outboxId, { env: resend });
    expect(r.result.retryMessages).toEqual([]);
    expect(r.result.explicitAcks).toEqual([r.id]);
    expect(await outboxRow(rejected.outboxId)).toMatchObject({ status: "failed", last_error: expect.stringContaining("resend 422") });
    expect((await invitationRow(rejected.invitation.id))!.email_status).toBe("failed");
  });

  it("a dead letter for an email that was sent after all leaves it sent", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    await runOne(outboxId);
    await runOne(outboxId, { queue: DEAD_LETTER_QUEUE_NAME });
    expect((await outboxRow(outboxId))!.status).toBe("sent");
    expect((await invitationRow(invitation.id))!.email_status).toBe("sent");
  });
});

describe("cloudflare provider", () => {
  const cloudflare: Partial<Bindings> = { EMAIL_PROVIDER: "cloudflare" };

  it("sends through the simulated send_email binding → sent", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    const { result, id } = await runOne(outboxId, { env: cloudflare });
    expect(result.explicitAcks).toEqual([id]);
    expect(await outboxRow(outboxId)).toMatchObject({ status: "sent", last_error: null });
    expect((await invitationRow(invitation.id))!.email_status).toBe("sent");
    expect(await mailboxFor(invitation.email)).toEqual([]);
  });

  it("hands the binding the sender's name and address, both parts and an idempotency header", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation();
    const sent: any[] = [];
    const real = env.SEND_EMAIL as SendEmail;
    // Records what reaches the binding, then lets the real (simulated) binding send it.
    const recording = { send: (m: any) => (sent.push(m), real.send(m)) } as SendEmail;
    await runOne(outboxId, { env: { ...cloudflare, SEND_EMAIL: recording } });
    expect(sent).toEqual([
      {
        from: { name: "Tenancy", email: "no-reply@example.com" },
        to: invitation.email,
        subject: `${admin.displayName} invited you to join ${org.name}`,
        text: expect.stringContaining("http://app.test/invitations/accept?token=ivt_"),
        html: expect.stringContaining('href="http://app.test/invitations/accept?token=ivt_'),
        headers: { "X-Idempotency-Key": outboxId },
      },
    ]);
    expect((await outboxRow(outboxId))!.status).toBe("sent");
  });

  it("a binding failure is retried; no binding at all fails at once with a clear error", async () => {
    const flaky = await undeliveredInvitation();
    const failing = { send: () => Promise.reject(new Error("relay refused")) } as unknown as SendEmail;
    const f = await runOne(flaky.outboxId, { env: { ...cloudflare, SEND_EMAIL: failing } });
    expect(f.result.retryMessages).toEqual([{ msgId: f.id, delaySeconds: 10 }]);
    expect((await outboxRow(flaky.outboxId))!.last_error).toContain("relay refused");

    const unbound = await undeliveredInvitation();
    const u = await runOne(unbound.outboxId, { env: { ...cloudflare, SEND_EMAIL: null as unknown as SendEmail } });
    expect(u.result.retryMessages).toEqual([]);
    expect(await outboxRow(unbound.outboxId)).toMatchObject({ status: "failed", last_error: expect.stringContaining("SEND_EMAIL") });
    expect((await invitationRow(unbound.invitation.id))!.email_status).toBe("failed");
  });
});

describe("superseded emails", () => {
  it("an email whose invitation was re-sent, canceled or accepted since never goes out", async () => {
    const resent = await undeliveredInvitation();
    const again = await post(`${invitationPath(resent.org.id, resent.invitation.id)}/resend`, undefined, { token: resent.admin.accessToken, env: queueDown });
    expect(again.status, again.text).toBe(200);
    const newOutbox = (await invitationRow(resent.invitation.id))!.outbox_id;
    expect(newOutbox).not.toBe(resent.outboxId);
    const stale = await runOne(resent.outboxId);
    expect(stale.result.explicitAcks).toEqual([stale.id]);
    expect(await mailboxFor(resent.invitation.email)).toEqual([]);
    expect(await outboxRow(resent.outboxId)).toMatchObject({ status: "failed", last_error: expect.stringContaining("superseded") });
    // The old email's fate does not touch the invitation; the new one's does.
    expect((await invitationRow(resent.invitation.id))!.email_status).toBe("queued");
    await runOne(newOutbox);
    const mails = await mailboxFor(resent.invitation.email);
    expect(mails).toHaveLength(1);
    expect((await get(previewPath(tokenIn(mails[0]!.text)))).status).toBe(200);
    expect((await invitationRow(resent.invitation.id))!.email_status).toBe("sent");

    const canceled = await undeliveredInvitation();
    expect((await post(`${invitationPath(canceled.org.id, canceled.invitation.id)}/cancel`, undefined, { token: canceled.admin.accessToken })).status).toBe(
      200,
    );
    await runOne(canceled.outboxId);
    expect(await mailboxFor(canceled.invitation.email)).toEqual([]);
  });

  it("combine_pending without an email unlinks the old, undelivered one (its link is dead)", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation();
    const combined = await post(invitationsPath(org.id), { email: invitation.email, combine_pending: true, send_email: false }, { token: admin.accessToken });
    expect(combined.status, combined.text).toBe(200);
    expect(combined.body.email_status).toBeNull();
    await runOne(outboxId);
    expect(await mailboxFor(invitation.email)).toEqual([]);
    expect((await invitationRow(invitation.id))!.email_status).toBeNull();
  });
});

describe("queue unavailable", () => {
  it("a queue send that throws still answers 201; the email waits in the outbox", async () => {
    const admin = await createUser();
    const org = await post("/v1/organizations", { name: "Queue down" }, { token: admin.accessToken });
    const email = uniqueEmail();
    const res = await post(invitationsPath(org.body.id), { email }, { token: admin.accessToken, env: queueDown });
    expect(res.status, res.text).toBe(201);
    expect(res.body.email_status).toBe("queued");
    const row = await outboxRow((await invitationRow(res.body.id))!.outbox_id);
    expect(row).toMatchObject({ status: "pending", recipient: email, attempts: 0 });

    // No queue binding at all behaves the same.
    const missing = await post(
      invitationsPath(org.body.id),
      { email: uniqueEmail() },
      { token: admin.accessToken, env: { EMAIL_QUEUE: null as unknown as Queue } },
    );
    expect(missing.status, missing.text).toBe(201);
    expect((await outboxRow((await invitationRow(missing.body.id))!.outbox_id))!.status).toBe("pending");
  });
});
