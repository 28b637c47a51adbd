import { lt } from "drizzle-orm";
import { mailbox } from "./db/schema";
import { systemCtx, type Bindings, type ServiceCtx } from "./env";
import { redeliverStuckOutbox } from "./queue/outbox";
import { MAILBOX_RETENTION_MS } from "./queue/providers";
import { pruneWebhookDeliveries, redeliverStuckWebhooks } from "./queue/webhook-outbox";
import { pruneAuditLogs } from "./routes/audit-logs/audit-logs.service";
import { pruneScimLogs } from "./routes/identity-providers/scim.service";
import { sweepExpiredInvitations } from "./routes/invitations/invitations.service";

/** The dev mailbox holds rendered emails with live links: it keeps them a week, not forever. */
async function pruneMailbox(ctx: ServiceCtx, now = Date.now()) {
  await ctx.db.delete(mailbox).where(lt(mailbox.createdAt, now - MAILBOX_RETENTION_MS));
}

/**
 * The every-minute cron: send again the emails and webhook deliveries that never reached the
 * queue or that the queue lost (both consumers skip a row already done, so a double is harmless),
 * expire what ran out, and prune the dev mailbox, SCIM request logs past their 30 days, audit
 * entries past AUDIT_LOG_RETENTION_DAYS and finished webhook deliveries past their 30 days.
 */
export async function runScheduled(env: Bindings, execution?: { waitUntil(p: Promise<unknown>): void }): Promise<void> {
  // Every step is awaited here; work handed to waitUntil is only the background kind.
  const ctx = systemCtx(env, execution ?? { waitUntil: () => undefined });
  await Promise.all([
    redeliverStuckOutbox(ctx),
    redeliverStuckWebhooks(ctx),
    sweepExpiredInvitations(ctx),
    pruneMailbox(ctx),
    pruneScimLogs(ctx),
    pruneAuditLogs(ctx),
    pruneWebhookDeliveries(ctx),
  ]);
}
