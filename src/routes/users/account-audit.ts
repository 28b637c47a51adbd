import { sql, type SQL } from "drizzle-orm";
import { afterCommit, auditActorOf } from "../../audit/record";
import { auditLogs, webhookDeliveries } from "../../db/schema";
import type { ServiceCtx } from "../../env";
import { newId } from "../../lib/ids";

/**
 * `member.removed` in every organization an account leaves when it is deleted. `auditStatements`
 * writes entries for one organization whose rows the caller already holds; here the organizations
 * are whatever the account's memberships are when the batch runs, so both inserts select from
 * `members` instead: one statement for the entries and one for the events' deliveries, whatever
 * the number of organizations. Both must run before the memberships are deleted.
 *
 * Organizations the account is the only member of are deleted with it: they get no entry (it
 * would be cascaded with them).
 */
export function accountRemovalAudit(ctx: ServiceCtx, userId: string, allowed: SQL) {
  const actor = auditActorOf(ctx);
  if (!actor) throw new Error("an account deletion has a caller");
  const now = Date.now();
  const req = ctx.request;
  // `aud_` + the id's time part + 16 random hex digits (all Crockford base32 characters): a
  // well-formed, time-sortable id minted in SQL, since the rows are only known there.
  const timePart = newId("audit", now).slice(4, 14);
  const left = actor.type === "user" && actor.id === userId;
  const leaving = sql`m.member_id = ${userId} and ${allowed}
      and exists (select 1 from members o where o.organization_id = m.organization_id and o.member_id <> ${userId})`;
  const entries = ctx.db.insert(auditLogs).select(
    sql`select 'aud_' || ${timePart} || hex(randomblob(8)), m.organization_id, 'member.removed', ${actor.type}, ${actor.id}, ${actor.credential},
               'user', m.member_id, null, ${req?.ip ?? null}, ${req?.userAgent ?? null}, ${req?.id ?? null}, ${now}
        from members m where ${leaving}`,
  );
  // The member as the API shows it (serializeMember), with `left` as removeMember sends it.
  const data = sql`json_object(
      'user', json_object('id', m.member_id, 'display_name', m.display_name, 'email', case when m.type = 'service_account' or m.email = '' then null else m.email end),
      'role', m.role, 'type', m.type, 'joined_at', strftime('%Y-%m-%dT%H:%M:%fZ', m.joined_at / 1000.0, 'unixepoch'),
      'left', json(${left ? "true" : "false"}), 'account_deleted', json('true'))`;
  // One delivery per (entry, subscribed endpoint); the event id derives from the entry's id, so
  // every endpoint gets the same `webhook-id` for one organization's event.
  const deliveries = ctx.db
    .insert(webhookDeliveries)
    .select(
      sql`select 'whd_' || lower(hex(randomblob(16))), w.id, w.organization_id, 'evt_' || substr(a.id, 5), 'member.removed',
                 json_object('type', 'member.removed', 'timestamp', ${new Date(now).toISOString()}, 'data', ${data}),
                 'pending', 0, null, null, null, null, null, ${now}, ${now}
          from members m
          join audit_logs a on a.organization_id = m.organization_id and a.target_id = m.member_id and a.action = 'member.removed'
               and a.created_at = ${now} and a.request_id is ${req?.id ?? null}
          join webhooks w on w.organization_id = m.organization_id and w.disabled_at is null
               and exists (select 1 from json_each(w.events) s where s.value = 'member.removed')
          where ${leaving}`,
    )
    .returning({ id: webhookDeliveries.id });
  const prepared = { statements: [entries, deliveries], deliveriesAt: 1, entries: 0 };
  return {
    statements: [entries, deliveries] as const,
    /** After the batch: counts the entries for the seam and hands the deliveries to the queue. */
    done: (results: [unknown, unknown]) => afterCommit(ctx, prepared, results),
  };
}
