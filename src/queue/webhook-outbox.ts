import { and, eq, lt, sql } from "drizzle-orm";
import { DAY_MS } from "../lib/time";
import { webhookDeliveries } from "../db/schema";
import type { ServiceCtx } from "../env";
import { enqueueWebhookDeliveries } from "../audit/deliveries";

export { WebhookMessageSchema, type WebhookMessage } from "../audit/deliveries";

/** A delivery still `pending` this long after it was written (or retried by hand) never reached the queue. */
export const PENDING_STUCK_AFTER_MS = 60_000;
/**
 * A `queued` delivery whose next attempt is this far overdue lost its message (expired, dropped,
 * or a dead-letter consumer that failed). Well above the queue's own delivery lag, so a message
 * merely late is rarely doubled; a double is harmless anyway (the consumer skips finished ones).
 */
export const QUEUED_STUCK_AFTER_MS = 15 * 60_000;
/** Per cron run: bounded work, the rest waits a minute. */
const REDELIVER_LIMIT = 500;

/**
 * The cron: re-enqueue deliveries that never reached the queue or whose message was lost. Both
 * reads walk webhook_deliveries_status_idx in one round trip. Re-enqueueing marks them `queued`
 * with next_attempt_at = now, which is what keeps the next run from sending them again at once.
 */
export async function redeliverStuckWebhooks(ctx: ServiceCtx): Promise<number> {
  const db = ctx.db;
  const now = Date.now();
  const [pending, overdue] = await db.batch([
    db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.status, "pending"), lt(webhookDeliveries.updatedAt, now - PENDING_STUCK_AFTER_MS)))
      .limit(REDELIVER_LIMIT),
    db
      .select({ id: webhookDeliveries.id })
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.status, "queued"), lt(webhookDeliveries.nextAttemptAt, now - QUEUED_STUCK_AFTER_MS)))
      .orderBy(webhookDeliveries.nextAttemptAt)
      .limit(REDELIVER_LIMIT),
  ]);
  const ids = [...pending, ...overdue].slice(0, REDELIVER_LIMIT).map((r) => r.id);
  await enqueueWebhookDeliveries(ctx.env, ids);
  return ids.length;
}

/** Finished deliveries (and their attempts) are kept this long for `GET …/deliveries`, then pruned by the cron. */
export const DELIVERY_RETENTION_MS = 30 * DAY_MS;
const PRUNE_LIMIT = 1000;

/**
 * The cron: deletes finished deliveries past the retention, at most 1,000 per run. The subquery
 * walks webhook_deliveries_created_idx from the oldest row, so it reads what it deletes (plus any
 * old delivery still in flight, which only a queue down for weeks leaves), whatever the number of
 * endpoints; attempts go with their delivery (foreign key cascade). This also keeps deleting an
 * endpoint bounded by about 30 days of its deliveries.
 */
export async function pruneWebhookDeliveries(ctx: ServiceCtx, now = Date.now()): Promise<number> {
  const cutoff = now - DELIVERY_RETENTION_MS;
  const res = await ctx.db.delete(webhookDeliveries).where(
    sql`${webhookDeliveries.id} in (select d.id from webhook_deliveries d indexed by webhook_deliveries_created_idx
          where d.created_at < ${cutoff} and d.status in ('succeeded', 'failed') order by d.created_at limit ${PRUNE_LIMIT})`,
  );
  return (res as unknown as D1Result).meta.changes ?? 0;
}
