import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { json, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

/**
 * One row per change to an organization, written in the same D1 batch as the change (see
 * src/audit/record.ts), so a change without its entry cannot exist. `changes` lists field names,
 * never values. Entries go with their organization; the cron prunes past the retention period.
 */
export const auditLogs = sqliteTable(
  "audit_logs",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    action: text("action").notNull(),
    actorType: text("actor_type").notNull(),
    actorId: text("actor_id"),
    credential: text("credential").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id"),
    changes: json<string[]>("changes"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    requestId: text("request_id"),
    createdAt: ms("created_at").notNull(),
  },
  // Newest first, by (created_at, id): one index per filter so a filtered page stays a range.
  (t) => [
    index("audit_logs_org_idx").on(t.organizationId, t.createdAt, t.id),
    index("audit_logs_actor_idx").on(t.organizationId, t.actorId, t.createdAt, t.id),
    index("audit_logs_action_idx").on(t.organizationId, t.action, t.createdAt, t.id),
    index("audit_logs_target_idx").on(t.organizationId, t.targetId, t.createdAt, t.id),
    // Retention pruning walks by age across organizations.
    index("audit_logs_created_idx").on(t.createdAt),
  ],
);

/**
 * A webhook endpoint. The signing secret is encrypted (it must be read to sign); after a rotation
 * the previous one keeps signing alongside until `previous_secret_expires_at`.
 */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    description: text("description"),
    events: json<string[]>("events").notNull(),
    secretCiphertext: text("secret_ciphertext").notNull(),
    previousSecretCiphertext: text("previous_secret_ciphertext"),
    previousSecretExpiresAt: ms("previous_secret_expires_at"),
    /** Since when every delivery has failed (null after any success): drives automatic disabling. */
    failingSince: ms("failing_since"),
    disabledAt: ms("disabled_at"),
    disabledReason: text("disabled_reason"),
    ...timestamps,
  },
  (t) => [index("webhooks_org_idx").on(t.organizationId, t.id)],
);

/**
 * The events' outbox: one row per (event, endpoint), inserted by the batch that makes the change.
 * `payload` is the exact body that is signed and sent; `event_id` is the `webhook-id`.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    organizationId: text("organization_id").notNull(),
    eventId: text("event_id").notNull(),
    eventType: text("event_type").notNull(),
    payload: text("payload").notNull(),
    status: text("status", { enum: ["pending", "queued", "succeeded", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastResponseCode: integer("last_response_code"),
    lastDurationMs: integer("last_duration_ms"),
    lastError: text("last_error"),
    /** When the queue is expected to hand the row to the consumer next; the cron re-enqueues rows well past it. */
    nextAttemptAt: ms("next_attempt_at"),
    deliveredAt: ms("delivered_at"),
    ...timestamps,
  },
  (t) => [
    index("webhook_deliveries_webhook_idx").on(t.webhookId, t.createdAt, t.id),
    index("webhook_deliveries_status_idx").on(t.status, t.nextAttemptAt),
    // The cron's pruning walks the oldest rows first; created_at never changes, so no status update touches it.
    index("webhook_deliveries_created_idx").on(t.createdAt),
  ],
);

/** One row per attempt to deliver, for `GET …/webhooks/{id}/deliveries`. */
export const webhookAttempts = sqliteTable(
  "webhook_attempts",
  {
    id: text("id").primaryKey(),
    deliveryId: text("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    responseCode: integer("response_code"),
    durationMs: integer("duration_ms").notNull(),
    error: text("error"),
    createdAt: ms("created_at").notNull(),
  },
  (t) => [index("webhook_attempts_delivery_idx").on(t.deliveryId, t.attempt)],
);
