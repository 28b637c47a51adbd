import { and, desc, eq, inArray, lt, sql, type SQL } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import { identityProviderConfigs, scimLogs } from "../../db/schema";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { sha256Hex, newSecret } from "../../lib/crypto";
import { ApiError, notFound } from "../../lib/errors";
import { parseFilter } from "../../lib/filter";
import { isId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { DAY_MS, iso } from "../../lib/time";
import { spUrls } from "../../sso/metadata";
import { SCIM_TOKEN_PREFIX } from "../../lib/ids";
import { serializeIdp, type IdpRow } from "./identity-providers.schemas";
import { idpColumns } from "./identity-providers.service";
import { commit } from "../../audit/record";

const t = identityProviderConfigs;

// The config's own columns (never the token hash), plus the token's public prefix and age.
const columns = { ...idpColumns, scimTokenPrefix: t.scimTokenPrefix, scimTokenCreatedAt: t.scimTokenCreatedAt };

/** Enough of the token to tell two apart in an IdP's settings; far too little to use. */
export const SCIM_TOKEN_PREFIX_LENGTH = 12;

/**
 * Mints the config's SCIM token: one UPDATE replaces the stored hash, so the previous token stops
 * on its very next request (the seam looks tokens up by hash). The token is returned once; the
 * audit entry and its event carry the config and the token's prefix, never the token.
 */
export async function mintScimToken(ctx: OrgCtx, rows: IdpRow[] | undefined) {
  const current = rows?.[0];
  if (!current) throw notFound("identity provider config");
  const token = newSecret(SCIM_TOKEN_PREFIX);
  const now = Date.now();
  const prefix = token.slice(0, SCIM_TOKEN_PREFIX_LENGTH);
  const shown = (row: IdpRow) => ({ ...serializeIdp(row, spUrls(ctx.config, row.id)), scim_token_prefix: prefix, scim_token_created_at: iso(now) });
  const [[row]] = await commit(
    ctx,
    [
      ctx.db
        .update(t)
        .set({ scimTokenHash: await sha256Hex(token), scimTokenPrefix: prefix, scimTokenCreatedAt: now, updatedAt: now })
        .where(and(eq(t.id, current.id), eq(t.organizationId, ctx.org.id)))
        .returning(columns),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "identity_provider.scim_token_created",
          target: { type: "identity_provider", id: current.id },
          changes: ["scim_token"],
          event: { type: "identity_provider.scim_token_created", data: shown({ ...current, updatedAt: now }) },
        },
      ],
    },
  );
  if (!row) throw notFound("identity provider config");
  return { ...shown(row as IdpRow), token };
}

// ---------------------------------------------------------------------------------------------
// Request logs

/** How long SCIM request logs are kept; the cron prunes older rows (src/scheduled.ts). */
export const SCIM_LOG_RETENTION_MS = 30 * DAY_MS;
/** Rows the cron deletes per run (every minute): 7.2 million a day at most, each run one short statement. */
export const SCIM_LOG_PRUNE_BATCH = 5000;

type LogQuery = { page_size: number; page_token?: string; filter?: string };

/**
 * `status = 404` (or `status = "404"`, the §10 grammar; a bare number is accepted as a client
 * would naturally write it). Only equality: it is one range of (config_id, status, id), so a page
 * stays about page_size rows; `!=` or a status class would scan past every non-matching entry.
 */
function statusCondition(filter: string | undefined): SQL | undefined {
  if (filter === undefined || filter.trim() === "") return undefined;
  const quoted = filter.replace(/(\bstatus\s*(?:!=|=|:)\s*)(\d{1,3})(?![\w"])/g, '$1"$2"');
  const terms = parseFilter(quoted);
  if (terms.length > 1) throw new ApiError("invalid_filter", "Filter on one status at a time: `status = 404`.");
  const [term] = terms;
  if (!term) return undefined;
  if (term.field !== "status") throw new ApiError("invalid_filter", `Unknown filter field \`${term.field}\`; filterable fields: status.`);
  if (term.op !== "=") throw new ApiError("invalid_filter", "`status` supports `=` only, e.g. `status = 404`.");
  const v = String(term.value);
  if (!/^[1-5]\d\d$/.test(v)) throw new ApiError("invalid_filter", "`status` takes an HTTP status code such as 404.");
  return eq(scimLogs.status, Number(v));
}

const logFingerprint = (orgId: string, idpId: string, filter: string | undefined) => `scim-logs|${orgId}|${idpId}|${filter ?? ""}`;

/**
 * The config (for its 404) and a page of its logs, newest first, in the seam's batch. Both read
 * through the guard; the page is one range of (config_id, id) — or of (config_id, status, id)
 * for `status = N` — page_size + 1 rows.
 */
export async function scimLogListQuery(db: ReadDb, org: OrgScope, config: Config, idpId: string, q: LogQuery) {
  if (!isId("identityProvider", idpId)) return undefined;
  const where = statusCondition(q.filter);
  const before = q.page_token ? String((await decodePageToken(config.hmacSecret, logFingerprint(org.id, idpId, q.filter), q.page_token, 1))[0]) : undefined;
  const idp = db
    .select({ id: t.id })
    .from(t)
    .where(and(eq(t.id, org.guard(idpId)), eq(t.organizationId, org.id)))
    .limit(1);
  const page = db
    .select({
      id: scimLogs.id,
      method: scimLogs.method,
      path: scimLogs.path,
      status: scimLogs.status,
      summary: scimLogs.summary,
      createdAt: scimLogs.createdAt,
    })
    .from(scimLogs)
    .where(and(eq(scimLogs.configId, org.guard(idpId)), eq(scimLogs.organizationId, org.id), where, before ? lt(scimLogs.id, before) : undefined))
    .orderBy(desc(scimLogs.id))
    .limit(q.page_size + 1);
  return { idp, page };
}

type LogRow = { id: string; method: string; path: string; status: number; summary: string; createdAt: number };

export async function scimLogPage(ctx: OrgCtx, idpId: string, q: LogQuery, loaded: { idp: { id: string }[]; page: LogRow[] } | undefined) {
  if (!loaded?.idp[0]) throw notFound("identity provider config");
  const page = await finishPage(ctx.config.hmacSecret, logFingerprint(ctx.org.id, idpId, q.filter), loaded.page, q.page_size, (r) => [r.id]);
  return {
    items: page.rows.map((r) => ({ id: r.id, method: r.method, path: r.path, status: r.status, summary: r.summary, created_at: iso(r.createdAt) })),
    next_page_token: page.nextPageToken,
  };
}

/**
 * Retention: rows older than SCIM_LOG_RETENTION_MS go, at most SCIM_LOG_PRUNE_BATCH a run, oldest
 * first through the created_at index (one statement, bounded whatever the backlog). Returns how
 * many went, for tests.
 */
export async function pruneScimLogs(ctx: ServiceCtx, now = Date.now()): Promise<number> {
  const cutoff = now - SCIM_LOG_RETENTION_MS;
  const oldest = ctx.db
    .select({ id: scimLogs.id })
    .from(scimLogs)
    .where(lt(scimLogs.createdAt, cutoff))
    .orderBy(scimLogs.createdAt)
    .limit(SCIM_LOG_PRUNE_BATCH);
  const res = await ctx.db.delete(scimLogs).where(inArray(scimLogs.id, oldest)).run();
  return (res as unknown as D1Result).meta?.changes ?? 0;
}
