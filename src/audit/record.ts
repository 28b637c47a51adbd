import { sql, type SQL } from "drizzle-orm";
import type { BatchItem, BatchResponse } from "drizzle-orm/batch";
import { auditLogs, webhookDeliveries } from "../db/schema";
import type { ServiceCtx } from "../env";
import { newId } from "../lib/ids";
import { enqueueWebhookDeliveries } from "../queue/webhook-outbox";
import type { AuditAction, EventType } from "./catalogue";

/**
 * How a change reaches the audit log and the webhooks: `commit` runs the service's statements and,
 * in the same D1 batch (one round trip, one transaction), the audit insert and the insert of one
 * webhook delivery per subscribed endpoint. A batch that fails leaves neither; a conditional
 * change that changed nothing leaves neither when `onlyIf` says so.
 */

/** How the actor authenticated: the credential kinds of SPEC §10, plus the two public paths that act for a person. */
export type Credential = "session" | "pat" | "service_account" | "scim" | "system" | "invitation" | "saml";
export interface AuditActor {
  type: "user" | "service_account" | "scim_directory" | "system";
  id: string | null;
  credential: Credential;
}

export interface AuditEntry {
  action: AuditAction;
  target: { type: string; id: string | null };
  /** Field names that changed; never values (some are secrets). */
  changes?: string[];
  /** The webhook event this change emits; `data` is the resource as the API returns it, never a secret. */
  event?: { type: EventType; data: Record<string, unknown> };
}

export interface AuditSpec {
  /** Defaults to the ctx's organization. */
  organizationId?: string;
  entries: AuditEntry[];
  /**
   * Write the entries only if this holds when the batch reaches them. It may read the row being
   * written through `audit_row` (columns of audit_logs, e.g. `audit_row.target_id`), so a
   * multi-row change can condition each entry on its own row.
   */
  onlyIf?: SQL;
  /**
   * Put the audit statements right after the service statement at this index instead of at the
   * end, so `onlyIf` can use `changes()` of that statement. The statement that follows them then
   * sees the deliveries insert's changes(), so it must not itself depend on changes().
   */
  after?: number;
  /** Who acted, when the ctx has no caller (a public route acting for a person). */
  actor?: AuditActor;
}

/** What the seam checks after a mutating route answered 2xx: it wrote an entry, or said it changed nothing. */
export interface AuditTrail {
  written: number;
  unchanged: boolean;
}
export const newAuditTrail = (): AuditTrail => ({ written: 0, unchanged: false });

/** A request that changed nothing (a PATCH with the values already in place) writes no entry; it says so. */
export function noChange(ctx: ServiceCtx) {
  ctx.audit.unchanged = true;
}

type Scim = { dir: { configId: string } };

export function auditActorOf(ctx: ServiceCtx): AuditActor | null {
  if ("dir" in ctx) return { type: "scim_directory", id: (ctx as unknown as Scim).dir.configId, credential: "scim" };
  const a = ctx.actor;
  if (!a) return null;
  switch (a.kind) {
    case "session":
      return { type: "user", id: a.userId, credential: "session" };
    case "pat":
      return { type: "user", id: a.userId, credential: "pat" };
    case "service_account":
      return { type: "service_account", id: a.serviceAccountId, credential: "service_account" };
    case "system":
      return { type: "system", id: null, credential: "system" };
  }
}

interface Prepared {
  statements: BatchItem<"sqlite">[];
  /** Index (within `statements`) of the deliveries insert, if any. */
  deliveriesAt: number | null;
  entries: number;
}

const ROW_COLUMNS = [
  "id",
  "organization_id",
  "action",
  "actor_type",
  "actor_id",
  "credential",
  "target_type",
  "target_id",
  "changes",
  "ip",
  "user_agent",
  "request_id",
  "created_at",
] as const;

/** The audit insert and the deliveries insert for `spec`; exported for the rare verb that cannot use `commit`. */
export function auditStatements(ctx: ServiceCtx, spec: AuditSpec): Prepared {
  const orgId = spec.organizationId ?? (ctx as { org?: { id: string } }).org?.id;
  if (!orgId) throw new Error("an audit entry needs an organization");
  const actor = spec.actor ?? auditActorOf(ctx);
  if (!actor) throw new Error("an audit entry needs an actor: pass spec.actor on a public route");
  if (spec.entries.length === 0) return { statements: [], deliveriesAt: null, entries: 0 };
  const now = Date.now();
  const req = ctx.request;
  const rows = spec.entries.map((e) => ({
    id: newId("audit", now),
    organization_id: orgId,
    action: e.action,
    actor_type: actor.type,
    actor_id: actor.id,
    credential: actor.credential,
    target_type: e.target.type,
    target_id: e.target.id,
    changes: e.changes && e.changes.length > 0 ? JSON.stringify(e.changes) : null,
    ip: req?.ip ?? null,
    user_agent: req?.userAgent ?? null,
    request_id: req?.id ?? null,
    created_at: now,
  }));
  // One statement for any number of entries: D1 counts statements against a per-request limit
  // and allows 100 bound parameters each, so many rows travel as one JSON parameter.
  const source =
    rows.length === 1
      ? sql`(select ${sql.join(
          ROW_COLUMNS.map((c) => sql`${rows[0]![c]} as ${sql.identifier(c)}`),
          sql`, `,
        )}) audit_row`
      : sql`(select ${sql.join(
          ROW_COLUMNS.map((c) => sql`json_extract(value, ${`$.${c}`}) as ${sql.identifier(c)}`),
          sql`, `,
        )} from json_each(${JSON.stringify(rows)})) audit_row`;
  const statements: BatchItem<"sqlite">[] = [
    ctx.db.insert(auditLogs).select(sql`select ${sql.raw(ROW_COLUMNS.map((c) => `audit_row.${c}`).join(", "))} from ${source} where ${spec.onlyIf ?? sql`1 = 1`}`),
  ];
  const events = spec.entries.flatMap((e, i) =>
    e.event ? [{ audit_id: rows[i]!.id, event_id: newId("event", now), type: e.event.type, payload: JSON.stringify({ type: e.event.type, timestamp: new Date(now).toISOString(), data: e.event.data }) }] : [],
  );
  let deliveriesAt: number | null = null;
  if (events.length > 0) {
    deliveriesAt = statements.length;
    // One delivery per (event, subscribed endpoint), only for entries that went in.
    statements.push(
      ctx.db
        .insert(webhookDeliveries)
        // Columns in table order: id, webhook_id, organization_id, event_id, event_type, payload, status, attempts,
        // last_response_code, last_duration_ms, last_error, next_attempt_at, delivered_at, created_at, updated_at.
        .select(
          sql`select 'whd_' || lower(hex(randomblob(16))), w.id, w.organization_id, ev.event_id, ev.type, ev.payload, 'pending', 0, null, null, null, null, null, ${now}, ${now}
            from (select json_extract(value, '$.audit_id') as audit_id, json_extract(value, '$.event_id') as event_id, json_extract(value, '$.type') as type,
                         json_extract(value, '$.payload') as payload from json_each(${JSON.stringify(events)})) ev
            join webhooks w on w.organization_id = ${orgId} and w.disabled_at is null and exists (select 1 from json_each(w.events) s where s.value = ev.type)
            where exists (select 1 from audit_logs a where a.id = ev.audit_id)`,
        )
        .returning({ id: webhookDeliveries.id }),
    );
  }
  return { statements, deliveriesAt, entries: rows.length };
}

type Statements = readonly [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]];

/**
 * Runs `statements` with their audit entries (and webhook deliveries) in one batch and returns
 * the service statements' results, as `db.batch` would. Deliveries are handed to the queue after
 * the response; if that send fails the rows stay `pending` and the cron sends them.
 */
export async function commit<T extends Statements>(ctx: ServiceCtx, statements: T, spec: AuditSpec): Promise<BatchResponse<T>> {
  const prepared = auditStatements(ctx, spec);
  const at = spec.after === undefined ? statements.length : spec.after + 1;
  const all = [...statements.slice(0, at), ...prepared.statements, ...statements.slice(at)];
  const results = [...((await ctx.db.batch(all as unknown as Statements)) as unknown as unknown[])];
  const own = results.splice(at, prepared.statements.length);
  afterCommit(ctx, prepared, own);
  return results as unknown as BatchResponse<T>;
}

/** Counts what went in and hands new deliveries to the queue; for verbs that run `auditStatements` in their own batch. */
export function afterCommit(ctx: ServiceCtx, prepared: Prepared, results: unknown[]) {
  if (prepared.statements.length === 0) return;
  ctx.audit.written += changesOf(results[0]);
  if (prepared.deliveriesAt !== null) {
    const ids = rowsOf(results[prepared.deliveriesAt]).map((r) => String((r as { id: unknown }).id));
    if (ids.length > 0) ctx.waitUntil(enqueueWebhookDeliveries(ctx.env, ids));
  }
}

function changesOf(result: unknown): number {
  const meta = (result as { meta?: { changes?: number } } | undefined)?.meta;
  return meta?.changes ?? 0;
}

function rowsOf(result: unknown): unknown[] {
  if (Array.isArray(result)) return result;
  return (result as { results?: unknown[] } | undefined)?.results ?? [];
}
