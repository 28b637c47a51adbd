import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";
import type { EmailMessage } from "../../src/queue/messages";
import { STUCK_AFTER_MS } from "../../src/queue/outbox";
import { get, post, testEnv } from "../helpers/client";
import { uniqueEmail } from "../helpers/factories";
import {
  eventually,
  expireDirect,
  invitationPath,
  invitationRow,
  invitationsPath,
  inviteWithToken,
  mailboxFor,
  orgCounters,
  outboxRow,
  previewPath,
  queueDown,
} from "../routes/invitations-helpers";
import { expectProblem } from "../helpers/problems";
import { adminAndOrg } from "../routes/members-helpers";
import { undeliveredInvitation } from "./queue-helpers";

/**
 * Fires the worker's real scheduled() handler, as the every-minute cron trigger would, and
 * returns the outbox ids it put on the queue. The queue is the real one, watched on the way
 * through; `overrides` may replace it (a queue that is down).
 */
async function cron(overrides: Partial<Bindings> = {}): Promise<string[]> {
  const base = testEnv();
  const sent: string[] = [];
  const watched = {
    send: (body: EmailMessage, o?: QueueSendOptions) => (sent.push(body.outbox_id), base.EMAIL_QUEUE.send(body, o)),
    sendBatch: (msgs: Iterable<MessageSendRequest<EmailMessage>>, o?: QueueSendBatchOptions) => {
      const list = [...msgs];
      sent.push(...list.map((m) => m.body.outbox_id));
      return base.EMAIL_QUEUE.sendBatch(list, o);
    },
  } as unknown as Queue;
  const ctx = createExecutionContext();
  // A fresh env object: testEnv's cache is keyed by JSON, which drops the functions of stub bindings.
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), { ...base, EMAIL_QUEUE: watched, ...overrides }, ctx);
  await waitOnExecutionContext(ctx);
  return sent;
}

/** Makes an outbox row look as old as `ms`, as if its queue send had failed that long ago. */
async function age(outboxId: string, ms: number) {
  await env.DB.prepare("update outbox set created_at = ? where id = ?")
    .bind(Date.now() - ms, outboxId)
    .run();
}

/**
 * The cron takes the oldest stuck rows first, 100 a run; other tests' aged rows may be ahead of
 * this one, so run it until this row has left `pending`.
 */
async function cronUntilPicked(outboxId: string) {
  for (let i = 0; i < 10; i++) {
    if ((await cron()).includes(outboxId)) return;
  }
  throw new Error(`the cron never picked ${outboxId}`);
}

describe("redelivery of emails that never reached the queue", () => {
  it("a row younger than a minute is left alone; once older, the cron enqueues it and the real consumer sends it", async () => {
    const { admin, org, invitation, outboxId } = await undeliveredInvitation();
    // Too young: its queue send may still be on its way.
    expect(await cron()).not.toContain(outboxId);
    expect((await outboxRow(outboxId))!.status).toBe("pending");

    await age(outboxId, STUCK_AFTER_MS + 1000);
    await cronUntilPicked(outboxId);
    expect(["queued", "sent"]).toContain((await outboxRow(outboxId))!.status);

    const [mail] = await eventually(
      () => mailboxFor(invitation.email),
      (m) => m.length === 1,
      "the redelivered email",
    );
    const token = /token=([A-Za-z0-9_-]+)/.exec(mail!.text)![1]!;
    expect((await get(previewPath(token))).status).toBe(200);
    await eventually(
      () => get(invitationPath(org.id, invitation.id), { token: admin.accessToken }),
      (r) => r.body.email_status === "sent",
      "email_status sent",
    );
    expect((await outboxRow(outboxId))!.status).toBe("sent");
  });

  it("while the queue is still down the row stays in the outbox for the next run", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    await age(outboxId, 5 * 60_000);
    await cron(queueDown);
    expect((await outboxRow(outboxId))!.status).toBe("pending");
    expect((await invitationRow(invitation.id))!.email_status).toBe("queued");
    await cronUntilPicked(outboxId);
    await eventually(
      () => mailboxFor(invitation.email),
      (m) => m.length === 1,
      "the email after the queue came back",
    );
  });

  it("rows already queued or sent are not enqueued again", async () => {
    const { invitation, outboxId } = await undeliveredInvitation();
    await age(outboxId, 5 * 60_000);
    await env.DB.prepare("update outbox set status = 'queued' where id = ?").bind(outboxId).run();
    expect(await cron()).not.toContain(outboxId);
    expect((await outboxRow(outboxId))!.status).toBe("queued");
    expect((await invitationRow(invitation.id))!.email_status).toBe("queued");
  });
});

describe("expiry sweep", () => {
  it("marks pending invitations past their expiry expired and frees their seats", async () => {
    const { admin, org } = await adminAndOrg();
    const seats = { FREE_PLAN_SEATS: "3" };
    const a = await inviteWithToken(admin.accessToken, org.id);
    const b = await inviteWithToken(admin.accessToken, org.id);
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: admin.accessToken, env: seats }), 409, "seat_limit_reached");
    await expireDirect(a.invitation.id);
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(2);

    await cron();
    expect((await invitationRow(a.invitation.id))!.status).toBe("expired");
    expect((await invitationRow(b.invitation.id))!.status).toBe("pending");
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(1);
    expect((await get(invitationPath(org.id, a.invitation.id), { token: admin.accessToken })).body.status).toBe("expired");
    // The seat is free again.
    const c = await post(invitationsPath(org.id), { email: uniqueEmail(), send_email: false }, { token: admin.accessToken, env: seats });
    expect(c.status, c.text).toBe(201);

    // A second run changes nothing more.
    await cron();
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(2);
  });
});
