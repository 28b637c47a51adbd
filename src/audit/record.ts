import { sql, type SQL } from "drizzle-orm";
import type { BatchItem, BatchResponse } from "drizzle-orm/batch";
import { jsonRows } from "../db/json-rows";
import { auditLogs, webhookDeliveries } from "../db/schema";
import type { ServiceCtx } from "../env";
import { newId } from "../lib/ids";
import { enqueueWebhookDeliveries } from "./deliveries";
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
  /**
   * Entries whose number the service cannot know (one per row a set-based statement changes),
   * each written by a SELECT placed right before the statement that makes the change, so it reads
   * the rows as that statement will judge them. Only `commit` takes these.
   */
  entriesFrom?: SelectedEntries[];
}

/**
 * One entry per row of `rows`, which yields `target_type`, `target_id` (not null; one row per
 * target), `changes` (a JSON array of field names, or null) and, with `event`, `event_data` (the
 * JSON of the event's data, the resource as the API returns it). The action and event type are
 * the same for every row.
 */
export interface SelectedEntries {
  /** Index of the service statement the entries go right before. */
  before: number;
  action: AuditAction;
  event?: EventType;
  rows: SQL;
}

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

function organizationOf(ctx: ServiceCtx, spec: AuditSpec): string {
  const orgId = spec.organizationId ?? (ctx as { org?: { id: string } }).org?.id;
  if (!orgId) throw new Error("an audit entry needs an organization");
  return orgId;
}

function actorOf(ctx: ServiceCtx, spec: AuditSpec): AuditActor {
  const actor = spec.actor ?? auditActorOf(ctx);
  if (!actor) throw new Error("an audit entry needs an actor: pass spec.actor on a public route");
  return actor;
}

/** The audit insert and the deliveries insert for `spec`; exported for the rare verb that cannot use `commit`. */
export function auditStatements(ctx: ServiceCtx, spec: AuditSpec, now = Date.now()): Prepared {
  const orgId = organizationOf(ctx, spec);
  const actor = actorOf(ctx, spec);
  if (spec.entries.length === 0) return { statements: [], deliveriesAt: null, entries: 0 };
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
      : jsonRows(rows, "audit_row");
  const statements: BatchItem<"sqlite">[] = [
    ctx.db
      .insert(auditLogs)
      .select(sql`select ${sql.raw(ROW_COLUMNS.map((c) => `audit_row.${c}`).join(", "))} from ${source} where ${spec.onlyIf ?? sql`1 = 1`}`),
  ];
  const events = spec.entries.flatMap((e, i) =>
    e.event
      ? [
          {
            audit_id: rows[i]!.id,
            event_id: newId("event", now),
            type: e.event.type,
            payload: JSON.stringify({ type: e.event.type, timestamp: new Date(now).toISOString(), data: e.event.data }),
          },
        ]
      : [],
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
            from ${jsonRows(events, "ev")}
            join webhooks w on w.organization_id = ${orgId} and w.disabled_at is null and exists (select 1 from json_each(w.events) s where s.value = ev.type)
            where exists (select 1 from audit_logs a where a.id = ev.audit_id)`,
        )
        .returning({ id: webhookDeliveries.id }),
    );
  }
  return { statements, deliveriesAt, entries: rows.length };
}

/**
 * The ids of entries written by a SELECT are minted in SQL: `aud_`, the time like every id, then
 * a run of newId's random tail shared by the statement's rows (its last characters: those differ
 * between two ids of one millisecond) and the row's number, zero-padded. Still 26 Crockford
 * characters and time-sortable, unique without drawing randomness per row, and the rows one
 * statement wrote are a range of the primary key. The rows are numbered in no particular order:
 * an ORDER BY there would invite SQLite to walk a whole index that yields that order (for
 * members, every member of the organization by type) instead of probing the rows it needs.
 */
const ROW_NUMBER_DIGITS = 7;
function selectedIdPrefix(now: number): string {
  const id = newId("audit", now);
  return id.slice(0, id.length - 16) + id.slice(-(16 - ROW_NUMBER_DIGITS));
}

/** The audit insert (and deliveries insert) for one `entriesFrom` item. */
function selectedStatements(ctx: ServiceCtx, spec: AuditSpec, sel: SelectedEntries, now: number): Prepared {
  const orgId = organizationOf(ctx, spec);
  const actor = actorOf(ctx, spec);
  const req = ctx.request;
  const prefix = selectedIdPrefix(now);
  const rows = sql`(${sel.rows}) sel_row`;
  const statements: BatchItem<"sqlite">[] = [
    ctx.db.insert(auditLogs).select(
      sql`select ${prefix} || printf(${`%0${ROW_NUMBER_DIGITS}d`}, row_number() over ()), ${orgId}, ${sel.action},
                 ${actor.type}, ${actor.id}, ${actor.credential}, sel_row.target_type, sel_row.target_id, sel_row.changes,
                 ${req?.ip ?? null}, ${req?.userAgent ?? null}, ${req?.id ?? null}, ${now}
          from ${rows}`,
    ),
  ];
  if (!sel.event) return { statements, deliveriesAt: null, entries: 0 };
  const type = sel.event;
  const subscribed = (w: string) =>
    sql`${sql.raw(w)}.organization_id = ${orgId} and ${sql.raw(w)}.disabled_at is null and exists (select 1 from json_each(${sql.raw(w)}.events) s where s.value = ${type})`;
  statements.push(
    ctx.db
      .insert(webhookDeliveries)
      // Columns in table order (see auditStatements). The SELECT runs again here, unchanged since
      // the audit insert; each row finds its entry by (organization, target, time, this
      // statement's id range) on audit_logs_target_idx, and the event id is the entry's. The
      // last condition reads no row of the SELECT, so SQLite tests it once before the loop:
      // without a subscribed endpoint the SELECT is not run a second time.
      .select(
        sql`select 'whd_' || lower(hex(randomblob(16))), w.id, w.organization_id, 'evt_' || substr(a.id, 5), ${type},
                   json_object('type', ${type}, 'timestamp', ${new Date(now).toISOString()}, 'data', json(sel_row.event_data)),
                   'pending', 0, null, null, null, null, null, ${now}, ${now}
            from ${rows}
            join audit_logs a on a.organization_id = ${orgId} and a.target_id = sel_row.target_id and a.created_at = ${now}
                              and a.id > ${prefix} and a.id < ${`${prefix}~`} and a.target_type = sel_row.target_type
            join webhooks w on ${subscribed("w")}
            where exists (select 1 from webhooks w_any where ${subscribed("w_any")})`,
      )
      .returning({ id: webhookDeliveries.id }),
  );
  return { statements, deliveriesAt: 1, entries: 0 };
}

type Statements = readonly [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]];

/**
 * Runs `statements` with their audit entries (and webhook deliveries) in one batch and returns
 * the service statements' results, as `db.batch` would. Deliveries are handed to the queue after
 * the response; if that send fails the rows stay `pending` and the cron sends them.
 */
export async function commit<T extends Statements>(ctx: ServiceCtx, statements: T, spec: AuditSpec): Promise<BatchResponse<T>> {
  // One time for every entry and event of the change.
  const now = Date.now();
  const prepared = auditStatements(ctx, spec, now);
  // Where each group of audit statements goes, as "before service statement i". At the same
  // place the entries go first: `after` puts them right after the statement their onlyIf reads.
  const inserts = [
    { before: spec.after === undefined ? statements.length : spec.after + 1, prepared },
    ...(spec.entriesFrom ?? []).map((sel) => ({ before: sel.before, prepared: selectedStatements(ctx, spec, sel, now) })),
  ].sort((a, b) => a.before - b.before);
  const all: BatchItem<"sqlite">[] = [];
  const at: number[] = [];
  let next = 0;
  statements.forEach((stmt, i) => {
    for (; next < inserts.length && inserts[next]!.before <= i; next++) {
      at[next] = all.length;
      all.push(...inserts[next]!.prepared.statements);
    }
    all.push(stmt);
  });
  for (; next < inserts.length; next++) {
    at[next] = all.length;
    all.push(...inserts[next]!.prepared.statements);
  }
  const results = (await ctx.db.batch(all as unknown as Statements)) as unknown as unknown[];
  const own = new Set<number>();
  inserts.forEach((ins, k) => {
    const n = ins.prepared.statements.length;
    afterCommit(ctx, ins.prepared, results.slice(at[k], at[k]! + n));
    for (let j = 0; j < n; j++) own.add(at[k]! + j);
  });
  return results.filter((_, i) => !own.has(i)) as unknown as BatchResponse<T>;
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
