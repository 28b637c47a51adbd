import { and, eq, sql } from "drizzle-orm";
import { invitations, organizations } from "./db/schema";
import type { Bindings } from "./env";
import { backgroundDb, redeliverStuckOutbox } from "./queue/outbox";

/**
 * Pending invitations past their expiry become `expired` and stop holding a seat. Reads already
 * show them as expired; this sweep is what frees the counter, so a seat frees up within a minute.
 */
export async function sweepExpiredInvitations(env: Bindings, now = Date.now()): Promise<void> {
  const db = backgroundDb(env);
  const due = sql`select organization_id from invitations where status = 'pending' and expires_at <= ${now}`;
  await db.batch([
    db
      .update(organizations)
      .set({
        pendingInvitationCount: sql`${organizations.pendingInvitationCount} - (select count(*) from invitations i where i.organization_id = ${organizations.id} and i.status = 'pending' and i.expires_at <= ${now})`,
      })
      .where(sql`${organizations.id} in (${due})`),
    db
      .update(invitations)
      .set({ status: "expired", updatedAt: now })
      .where(and(eq(invitations.status, "pending"), sql`${invitations.expiresAt} <= ${now}`)),
  ]);
}

/** The every-minute cron: deliver what never reached the queue, expire what ran out. */
export async function runScheduled(env: Bindings): Promise<void> {
  await Promise.all([redeliverStuckOutbox(env), sweepExpiredInvitations(env)]);
}
