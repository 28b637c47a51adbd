import { and, inArray, lt, type SQL } from "drizzle-orm";
import { AUDIT_ACTIONS } from "../../audit/catalogue";
import type { OrgScope, ReadDb } from "../../db/authz";
import { auditLogs } from "../../db/schema";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { decodePageToken, finishPage, keysetAfter, orderBy, type SortKey } from "../../lib/pagination";
import { DAY_MS } from "../../lib/time";
import { serializeAuditLog, type AuditLogRow } from "./audit-logs.schemas";

/**
 * Equality only on the three ids: each is the second column of its own (organization_id, x,
 * created_at, id) index, so a filtered page is one index range in list order. `!=` or a prefix
 * would walk the whole organization.
 */
const FILTER: Record<string, FilterField> = {
  actor_id: { kind: "string", column: auditLogs.actorId, ops: ["="] },
  action: { kind: "enum", column: auditLogs.action, values: Object.keys(AUDIT_ACTIONS), ops: ["="] },
  target_id: { kind: "string", column: auditLogs.targetId, ops: ["="] },
  created_at: { kind: "timestamp", column: auditLogs.createdAt },
};

// Newest first; the id (time-sortable, unique) breaks ties within a millisecond.
const KEYS: SortKey[] = [
  { column: auditLogs.createdAt, desc: true },
  { column: auditLogs.id, desc: true },
];

type ListQuery = { page_size: number; page_token?: string; filter?: string };

const fingerprint = (orgId: string, q: ListQuery) => `audit-logs|${orgId}|${q.filter ?? ""}`;

/**
 * One page, newest first. SQLite takes the index whose leading columns the equalities cover
 * (audit_logs_actor_idx, _action_idx, _target_idx, else _org_idx) and walks it backwards from the
 * page token, so a page reads page_size + 1 entries whatever the log's size, time range included.
 */
export async function auditLogListQuery(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const terms = q.filter ? parseFilter(q.filter) : [];
  compileFilter(terms, FILTER); // validates every term, the ones left out below included
  let after: SQL | undefined;
  let applied = terms;
  if (q.page_token) {
    after = keysetAfter(KEYS, await decodePageToken(config.hmacSecret, fingerprint(org.id, q), q.page_token, KEYS.length));
    // The token's key is a row this very filter matched (it is signed with it), so the keyset bound
    // already implies `created_at < …`. Left in, SQLite takes that plain bound for the range's
    // top and walks every earlier page again; out, each page starts where the last one ended.
    applied = terms.filter((t) => !(t.field === "created_at" && (t.op === "<" || t.op === "<=")));
  }
  const conds: (SQL | undefined)[] = [org.inOrg(auditLogs.organizationId), compileFilter(applied, FILTER), after];
  const page = db
    .select({
      id: auditLogs.id,
      action: auditLogs.action,
      actorType: auditLogs.actorType,
      actorId: auditLogs.actorId,
      credential: auditLogs.credential,
      targetType: auditLogs.targetType,
      targetId: auditLogs.targetId,
      changes: auditLogs.changes,
      ip: auditLogs.ip,
      userAgent: auditLogs.userAgent,
      requestId: auditLogs.requestId,
      createdAt: auditLogs.createdAt,
    })
    .from(auditLogs)
    .where(and(...conds))
    .orderBy(...orderBy(KEYS))
    .limit(q.page_size + 1);
  return { page };
}

export async function auditLogPage(ctx: OrgCtx, q: ListQuery, rows: AuditLogRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, fingerprint(ctx.org.id, q), rows, q.page_size, (r) => [r.createdAt, r.id]);
  return { items: page.rows.map(serializeAuditLog), next_page_token: page.nextPageToken };
}

/**
 * Per run, at most this many entries go: one DELETE whose work is bounded whatever the backlog
 * (a lowered retention, or a first run after a long pause, catches up over several minutes).
 */
export const AUDIT_LOG_PRUNE_BATCH = 5000;

/**
 * Retention: entries older than `auditLogRetentionDays` go, oldest first through
 * audit_logs_created_idx, across organizations. Returns how many went, for tests.
 */
export async function pruneAuditLogs(ctx: ServiceCtx, now = Date.now()): Promise<number> {
  const cutoff = now - ctx.config.auditLogRetentionDays * DAY_MS;
  const oldest = ctx.db
    .select({ id: auditLogs.id })
    .from(auditLogs)
    .where(lt(auditLogs.createdAt, cutoff))
    .orderBy(auditLogs.createdAt)
    .limit(AUDIT_LOG_PRUNE_BATCH);
  const res = await ctx.db.delete(auditLogs).where(inArray(auditLogs.id, oldest)).run();
  return (res as unknown as D1Result).meta?.changes ?? 0;
}
