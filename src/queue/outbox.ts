import { and, eq, lt, sql, type SQL } from "drizzle-orm";
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
  const sealed: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.secrets ?? {})) sealed[k] = await encryptString(config.encryptionKey, v, `outbox:${id}:${k}`);
  const payload = JSON.stringify({ ...input.payload, sealed });
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
    await env.EMAIL_QUEUE.sendBatch(messages);
  } catch (err) {
    console.error(JSON.stringify({ level: "warn", msg: "queue send failed; the cron will retry", outbox_ids: ids, error: String(err) }));
    return false;
  }
  const mark = backgroundDb(env)
    .update(outbox)
    .set({ status: "queued", updatedAt: Date.now() })
    // One bound parameter for any number of ids: D1 refuses more than 100 per statement.
    .where(and(sql`${outbox.id} in (select value from json_each(${JSON.stringify(ids)}))`, eq(outbox.status, "pending")))
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

/** The cron: re-enqueue rows that never reached the queue. */
export async function redeliverStuckOutbox(ctx: ServiceCtx): Promise<number> {
  const stuck = await ctx.db
    .select({ id: outbox.id })
    .from(outbox)
    .where(and(eq(outbox.status, "pending"), lt(outbox.createdAt, Date.now() - STUCK_AFTER_MS)))
    .orderBy(outbox.createdAt)
    .limit(100);
  const ids = stuck.map((r) => r.id);
  await enqueueOutbox(ctx, ids);
  return ids.length;
}
