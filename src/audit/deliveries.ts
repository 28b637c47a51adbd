import { and, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { backgroundDb } from "../db/client";
import { webhookDeliveries } from "../db/schema";
import type { Bindings } from "../env";

/*
 * Hands the delivery rows commit() wrote to the webhook queue. It lives beside commit() because
 * commit() calls it after every change that emits events; the consumer and the cron (src/queue/)
 * build on it.
 */

/** A webhook queue message names a delivery row; the row holds the signed payload's body. */
export const WebhookMessageSchema = z.object({ type: z.literal("webhook"), delivery_id: z.string().min(1) });
export type WebhookMessage = z.infer<typeof WebhookMessageSchema>;

/** Queues accept at most 100 messages per sendBatch call. */
const SEND_BATCH = 100;

/**
 * Hands delivery rows to the webhook queue and marks them `queued`. A send that throws leaves
 * them `pending` and the cron sends them later; the consumer ignores a delivery already done, so
 * a duplicate message is harmless.
 */
export async function enqueueWebhookDeliveries(env: Bindings, ids: string[]): Promise<boolean> {
  if (ids.length === 0) return true;
  try {
    for (let i = 0; i < ids.length; i += SEND_BATCH) {
      await env.WEBHOOK_QUEUE.sendBatch(ids.slice(i, i + SEND_BATCH).map((id) => ({ body: { type: "webhook", delivery_id: id } satisfies WebhookMessage })));
    }
  } catch (err) {
    console.error(JSON.stringify({ level: "warn", msg: "webhook queue send failed; the cron will retry", deliveries: ids.length, error: String(err) }));
    return false;
  }
  const now = Date.now();
  await backgroundDb(env)
    .update(webhookDeliveries)
    .set({ status: "queued", nextAttemptAt: now, updatedAt: now })
    .where(and(sql`${webhookDeliveries.id} in (select value from json_each(${JSON.stringify(ids)}))`, inArray(webhookDeliveries.status, ["pending", "queued"])))
    .then(
      () => undefined,
      (err) => console.error(JSON.stringify({ level: "warn", msg: "marking webhook deliveries queued failed", error: String(err) })),
    );
  return true;
}
