import { and, eq, inArray, lt, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { backgroundDb, type Db } from "../db/client";
import { outbox } from "../db/schema";
import type { Config, ServiceCtx } from "../env";
import { encryptString } from "../lib/crypto";
import { newId } from "../lib/ids";
import type { EmailMessage } from "./messages";
import type { TemplateName } from "./templates";

/** Rows still `pending` this long after creation never reached the queue: the cron re-sends them. */
export const STUCK_AFTER_MS = 60_000;

/**
 * Rows `queued` with no news this long are taken for lost (a message dropped, expired past the
 * queue's retention, or lost with a failed dead-letter consumer) and sent to the queue again.
 * The consumer bumps updated_at on every attempt and retries at most 10 minutes apart
 * (retryDelaySeconds), so a row still in the queue's hands is never this quiet; re-enqueuing
 * bumps it too, so the next run waits another 15 minutes. A duplicate is harmless: the consumer
 * skips a row already sent.
 */
export const QUEUED_STUCK_AFTER_MS = 15 * 60_000;

/** Per cron run and per kind (pending, queued): bounded work whatever the backlog. */
export const REDELIVER_BATCH = 100;

/** Queues accept at most 100 messages per sendBatch call. */
const SEND_BATCH = 100;

/**
 * An outbox row's payload: secret fields (tokens) encrypted and bound to the row id and field
 * name, so the consumer (src/queue/consumer.ts) opens them only for that row.
 */
export async function sealedPayload(config: Config, outboxId: string, payload: Record<string, unknown>, secrets: Record<string, string>): Promise<string> {
  const sealed: Record<string, string> = {};
  for (const [k, v] of Object.entries(secrets)) sealed[k] = await encryptString(config.encryptionKey, v, `outbox:${outboxId}:${k}`);
  return JSON.stringify({ ...payload, sealed });
}

/**
 * Builds the outbox insert for an email, to be put in the same D1 batch as the change that
 * causes it. Secret payload fields (tokens) are encrypted, bound to the row id.
 */
export async function outboxInsert(
  db: Db,
  config: Config,
  input: {
    template: TemplateName;
    recipient: string;
    payload: Record<string, unknown>;
    secrets?: Record<string, string>;
    subjectId?: string | SQL;
    /** Write the row only if this holds when the batch reaches it (e.g. the invitation went in). */
    onlyIf?: SQL;
  },
): Promise<{ id: string; statement: BatchItem<"sqlite"> }> {
  const id = newId("outbox");
  const now = Date.now();
  const payload = await sealedPayload(config, id, input.payload, input.secrets ?? {});
  const subject = input.subjectId ?? null;
  // Columns in table order: id, template, recipient, payload, status, attempts, last_error, subject_id, created_at, updated_at, sent_at.
  const statement = db
    .insert(outbox)
    .select(
      sql`select ${id}, ${input.template}, ${input.recipient}, ${payload}, 'pending', 0, null, ${subject}, ${now}, ${now}, null where ${input.onlyIf ?? sql`1 = 1`}`,
    );
  return { id, statement };
}

/**
 * Sends outbox rows to the queue. A send that throws leaves them `pending`, and the cron
 * delivers them later; nothing is lost either way.
 */
export async function enqueueOutbox(ctx: Pick<ServiceCtx, "env" | "request" | "waitUntil">, ids: string[]): Promise<boolean> {
  if (ids.length === 0) return true;
  const env = ctx.env;
  const messages: { body: EmailMessage }[] = ids.map((id) => ({ body: { type: "email", outbox_id: id, idempotency_key: id } }));
  try {
    for (let i = 0; i < messages.length; i += SEND_BATCH) await env.EMAIL_QUEUE.sendBatch(messages.slice(i, i + SEND_BATCH));
  } catch (err) {
    console.error(JSON.stringify({ level: "warn", msg: "queue send failed; the cron will retry", outbox_ids: ids, error: String(err) }));
    return false;
  }
  const mark = backgroundDb(env)
    .update(outbox)
    // A `queued` row sent again gets a fresh updated_at: the cron's next runs leave it to the queue.
    .set({ status: "queued", updatedAt: Date.now() })
    // One bound parameter for any number of ids: D1 refuses more than 100 per statement.
    .where(and(sql`${outbox.id} in (select value from json_each(${JSON.stringify(ids)}))`, inArray(outbox.status, ["pending", "queued"])))
    .then(
      () => undefined,
      // Left pending, the rows are only re-enqueued by the cron; the consumer's idempotency makes that harmless.
      (err) => console.error(JSON.stringify({ level: "warn", msg: "marking outbox rows queued failed", outbox_ids: ids, error: String(err) })),
    );
  // In a request the mark runs after the response; the cron waits for it.
  if (ctx.request) ctx.waitUntil(mark);
  else await mark;
  return true;
}

/**
 * The cron: re-enqueue rows that never reached the queue (`pending` past STUCK_AFTER_MS) and rows
 * the queue lost (`queued` past QUEUED_STUCK_AFTER_MS), oldest first, REDELIVER_BATCH of each a
 * run. Both reads walk outbox_status_idx in created_at order; the queued one reads the rows in
 * flight (few) until it has its batch.
 */
export async function redeliverStuckOutbox(ctx: ServiceCtx, now = Date.now()): Promise<number> {
  const stuck = (status: "pending" | "queued", since: SQL) =>
    ctx.db
      .select({ id: outbox.id })
      .from(outbox)
      .where(and(eq(outbox.status, status), since))
      .orderBy(outbox.createdAt)
      .limit(REDELIVER_BATCH);
  const [unsent, lost] = await ctx.db.batch([
    stuck("pending", lt(outbox.createdAt, now - STUCK_AFTER_MS)),
    stuck("queued", lt(outbox.updatedAt, now - QUEUED_STUCK_AFTER_MS)),
  ]);
  const ids = [...unsent, ...lost].map((r) => r.id);
  if (lost.length > 0) console.warn(JSON.stringify({ level: "warn", msg: "re-enqueuing emails the queue lost", outbox_ids: lost.map((r) => r.id) }));
  await enqueueOutbox(ctx, ids);
  return ids.length;
}
