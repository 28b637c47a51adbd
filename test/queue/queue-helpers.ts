import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { expect } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";
import { testEnv } from "../helpers/client";
import { createOrg, createUser } from "../helpers/factories";
import { invitationRow, invite, queueDown } from "../routes/invitations-helpers";

/** Queue names as wrangler.toml declares them (the consumer tells the dead-letter queue by name). */
export const EMAIL_QUEUE_NAME = "tenancy-email";
export const DEAD_LETTER_QUEUE_NAME = "tenancy-email-dlq";

/** What getQueueResult reports (the pool's type for it is not in the workers-types we compile against). */
export interface QueueResult {
  outcome: string;
  ackAll: boolean;
  retryBatch: { retry: boolean; delaySeconds?: number };
  explicitAcks: string[];
  retryMessages: { msgId: string; delaySeconds?: number }[];
}

let seq = 0;

export interface Delivery {
  outboxId: string;
  /** The message id; a redelivery reuses it. */
  id?: string;
  attempts?: number;
  body?: unknown;
}

/** Runs the worker's real queue() handler on a batch built by the test, as the Queues runtime would. */
export async function runQueue(deliveries: Delivery[], opts: { env?: Partial<Bindings>; queue?: string } = {}) {
  const messages = deliveries.map((d) => ({
    id: d.id ?? `msg-${++seq}`,
    timestamp: new Date(),
    attempts: d.attempts ?? 1,
    body: d.body ?? { type: "email", outbox_id: d.outboxId, idempotency_key: d.outboxId },
  }));
  const batch = createMessageBatch(opts.queue ?? EMAIL_QUEUE_NAME, messages);
  // getQueueResult reports which messages were retried but not with what delay: watch retry() itself.
  const retries: { msgId: string; delaySeconds?: number }[] = [];
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    Object.defineProperty(m, "retry", { value: (o?: QueueRetryOptions) => (retries.push({ msgId: m.id, ...o }), retry(o)) });
  }
  const ctx = createExecutionContext();
  // A fresh env object per run: testEnv's cache is keyed by JSON, which drops the functions of stub bindings.
  await worker.queue(batch, opts.env ? { ...testEnv(), ...opts.env } : testEnv(), ctx);
  const result = (await getQueueResult(batch, ctx)) as unknown as QueueResult;
  expect(result.retryMessages.map((r) => r.msgId).sort()).toEqual(retries.map((r) => r.msgId).sort());
  return { result: { ...result, retryMessages: retries }, ids: messages.map((m) => m.id) };
}

export const runOne = async (outboxId: string, opts: { env?: Partial<Bindings>; queue?: string; attempts?: number; id?: string } = {}) => {
  const { result, ids } = await runQueue([{ outboxId, attempts: opts.attempts, id: opts.id }], opts);
  return { result, id: ids[0]! };
};

/** An invitation whose email is written to the outbox but never reached the queue, so only the test delivers it. */
export async function undeliveredInvitation(body: Record<string, unknown> = {}, owner?: { accessToken: string; id: string; displayName: string }) {
  const admin = owner ?? (await createUser());
  const org = await createOrg(admin);
  const invitation = await invite(admin.accessToken, org.id, body, { env: queueDown });
  expect(invitation.email_status).toBe("queued");
  const outboxId = (await invitationRow(invitation.id))!.outbox_id as string;
  expect(outboxId).toBeTruthy();
  return { admin, org, invitation, outboxId };
}
