import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";
import type { EmailMessage } from "../../src/queue/messages";
import { QUEUED_STUCK_AFTER_MS, REDELIVER_BATCH } from "../../src/queue/outbox";
import { get, testEnv } from "../helpers/client";
import { createOrg, createUser } from "../helpers/factories";
import { invitationPath, invitationRow, invite, mailboxFor, outboxRow } from "../routes/invitations-helpers";
import { runQueue } from "./queue-helpers";

/**
 * "Nothing lost": the queue accepts a message and then loses it (dropped, expired, a dead-letter
 * consumer that failed). The outbox row stays `queued`; the cron must send it again once it has
 * been quiet past QUEUED_STUCK_AFTER_MS, once per threshold, and the consumer must turn any
 * number of copies into exactly one email.
 */

/** A queue that accepts every message and delivers none: what a lost message looks like from the producer. */
function blackHole(name: string) {
  const sent: string[] = [];
  const queue = {
    // Its own testEnv cache key: functions do not survive JSON.stringify.
    toJSON: () => `black-hole:${name}`,
    send: async (body: EmailMessage) => void sent.push(body.outbox_id),
    sendBatch: async (msgs: Iterable<MessageSendRequest<EmailMessage>>) => void sent.push(...[...msgs].map((m) => m.body.outbox_id)),
  } as unknown as Queue;
  return { queue, sent };
}

/** Fires the worker's real scheduled() handler with `queue` as EMAIL_QUEUE. */
async function cron(queue: Queue, overrides: Partial<Bindings> = {}) {
  const ctx = createExecutionContext();
  // A fresh env object: testEnv's cache is keyed by JSON, which drops the functions of stub bindings.
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), { ...testEnv(), EMAIL_QUEUE: queue, ...overrides }, ctx);
  await waitOnExecutionContext(ctx);
}

/** Makes outbox rows look as if nothing had happened to them for `ms`. */
async function quietFor(ids: string[], ms: number) {
  await env.DB.prepare("update outbox set updated_at = ? where id in (select value from json_each(?))")
    .bind(Date.now() - ms, JSON.stringify(ids))
    .run();
}

const count = (list: string[], id: string) => list.filter((x) => x === id).length;

describe("emails whose queue message was lost", () => {
  it("five invitations whose messages the queue dropped: re-sent once per threshold, each email sent exactly once", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const dropped = blackHole("requests");
    const invitations = [];
    for (let i = 0; i < 5; i++) invitations.push(await invite(admin.accessToken, org.id, {}, { env: { EMAIL_QUEUE: dropped.queue } }));
    const outboxIds = await Promise.all(invitations.map(async (inv) => (await invitationRow(inv.id))!.outbox_id as string));
    // The sends succeeded, so the rows are `queued`; the queue never hands them to the consumer.
    expect(dropped.sent.sort()).toEqual([...outboxIds].sort());
    for (const id of outboxIds) expect((await outboxRow(id))!.status).toBe("queued");
    for (const inv of invitations) expect(inv.email_status).toBe("queued");

    // Quiet, but not for long enough: a row the queue may still retry is left to it.
    await quietFor(outboxIds, QUEUED_STUCK_AFTER_MS - 60_000);
    const early = blackHole("cron-early");
    await cron(early.queue);
    for (const id of outboxIds) expect(count(early.sent, id)).toBe(0);

    // Past the threshold: the first run re-sends each once and bumps updated_at, so the next run
    // (a minute later) leaves them to the queue.
    await quietFor(outboxIds, QUEUED_STUCK_AFTER_MS + 60_000);
    const runs = blackHole("cron");
    await cron(runs.queue);
    for (const id of outboxIds) expect(count(runs.sent, id), `first run, ${id}`).toBe(1);
    for (const id of outboxIds) {
      const row = (await outboxRow(id))!;
      expect(row.status).toBe("queued");
      expect(row.updated_at).toBeGreaterThan(Date.now() - 60_000);
    }
    await cron(runs.queue);
    for (const id of outboxIds) expect(count(runs.sent, id), `after two runs, ${id}`).toBe(1);

    // The consumer gets the re-sent messages, and then the "lost" originals turn up after all:
    // every address receives its email exactly once.
    const first = await runQueue(outboxIds.map((outboxId) => ({ outboxId })));
    expect(first.result.retryMessages).toEqual([]);
    const late = await runQueue(outboxIds.map((outboxId) => ({ outboxId })));
    expect(late.result.retryMessages).toEqual([]);
    for (const inv of invitations) expect(await mailboxFor(inv.email)).toHaveLength(1);
    for (const id of outboxIds) expect((await outboxRow(id))!.status).toBe("sent");
    for (const inv of invitations) expect((await get(invitationPath(org.id, inv.id), { token: admin.accessToken })).body.email_status).toBe("sent");

    // Sent rows are never re-sent, however quiet.
    await quietFor(outboxIds, 24 * 60 * 60_000);
    const after = blackHole("cron-after");
    await cron(after.queue);
    for (const id of outboxIds) expect(count(after.sent, id)).toBe(0);
  });

  it("a large backlog is taken in bounded runs, oldest first, and every row is re-sent", async () => {
    const now = Date.now();
    const ids = Array.from({ length: REDELIVER_BATCH + 50 }, (_, i) => `obx_lostbacklog${String(i).padStart(4, "0")}${now}`);
    // Rows of a template the consumer knows nothing of: this test stops at the queue.
    await env.DB.prepare(
      `insert into outbox (id, template, recipient, payload, status, attempts, last_error, subject_id, created_at, updated_at, sent_at)
       select value, 'verify_email', 'backlog@example.com', '{}', 'queued', 1, null, null, ? + key, ?, null from json_each(?)`,
    )
      .bind(now - 3 * 86_400_000, now - 2 * QUEUED_STUCK_AFTER_MS, JSON.stringify(ids))
      .run();
    const runs = blackHole("backlog");
    await cron(runs.queue);
    const firstRun = runs.sent.filter((id) => ids.includes(id));
    expect(runs.sent.length).toBeLessThanOrEqual(2 * REDELIVER_BATCH);
    expect(firstRun).toEqual(ids.slice(0, REDELIVER_BATCH));
    await cron(runs.queue);
    const both = runs.sent.filter((id) => ids.includes(id));
    expect(both.sort()).toEqual([...ids].sort());
    await env.DB.prepare("delete from outbox where id in (select value from json_each(?))").bind(JSON.stringify(ids)).run();
  });

  it("a queue that is down when the cron re-sends leaves the row as it was, for the next run", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const dropped = blackHole("requests-2");
    const inv = await invite(admin.accessToken, org.id, {}, { env: { EMAIL_QUEUE: dropped.queue } });
    const outboxId = (await invitationRow(inv.id))!.outbox_id as string;
    await quietFor([outboxId], QUEUED_STUCK_AFTER_MS + 60_000);
    const before = (await outboxRow(outboxId))!.updated_at;
    const down = {
      toJSON: () => "down",
      send: () => Promise.reject(new Error("down")),
      sendBatch: () => Promise.reject(new Error("down")),
    } as unknown as Queue;
    await cron(down);
    expect((await outboxRow(outboxId))!).toMatchObject({ status: "queued", updated_at: before });
    const back = blackHole("back");
    await cron(back.queue);
    expect(count(back.sent, outboxId)).toBe(1);
  });
});
