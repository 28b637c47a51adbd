import { and, asc, eq, sql, type SQL } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { tags } from "../../db/schema";
import { notFound } from "../../lib/errors";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { isId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter } from "../../lib/pagination";
import { serializeTag, type TagRow } from "./tags.schemas";
import { afterCommit, auditStatements, noChange } from "../../audit/record";
import type { BatchItem } from "drizzle-orm/batch";

/**
 * Tags belong to the organization, not to a project: every holder of `projects:read` lists them
 * all (a tag carried only by private projects included), and `project_count` counts private
 * projects too. A tag stays when its last project drops it, until someone deletes it.
 */

const prefixEnd = (p: string) => `${p}\u{10FFFF}`;

const TAG_FILTER: Record<string, FilterField> = {
  name: {
    kind: "string",
    column: tags.name,
    prefix: (v) => {
      const p = v.toLowerCase();
      return sql`(${tags.nameKey} >= ${p} and ${tags.nameKey} < ${prefixEnd(p)})`;
    },
  },
};

const tagColumns = {
  id: tags.id,
  name: tags.name,
  nameKey: tags.nameKey,
  projectCount: tags.projectCount,
  createdAt: tags.createdAt,
  updatedAt: tags.updatedAt,
};

type ListQuery = { page_size: number; page_token?: string; filter?: string };

const fingerprint = (route: string, orgId: string, q: ListQuery) => `${route}|${orgId}|${q.filter ?? ""}`;
const KEYS = [
  { column: tags.nameKey, desc: false },
  { column: tags.name, desc: false },
];

/**
 * Tags in case-insensitive name order (ties, such as `Prod` and `prod`, by exact name): one range
 * of tags_org_name_key_idx (organization_id, name_key, name), so a page reads page_size + 1 rows,
 * a name prefix included. `name = "x"` is a probe of the unique (organization_id, name) index.
 */
export async function tagListQuery(db: ReadDb, org: OrgScope, config: Config, route: "tags" | "tag-info", q: ListQuery) {
  const where = compileFilter(q.filter ? parseFilter(q.filter) : [], TAG_FILTER);
  const after = q.page_token ? await decodePageToken(config.hmacSecret, fingerprint(route, org.id, q), q.page_token, 2) : undefined;
  const page = db
    .select(tagColumns)
    .from(tags)
    .where(and(org.inOrg(tags.organizationId), where, after ? keysetAfter(KEYS, after) : undefined))
    .orderBy(asc(tags.nameKey), asc(tags.name))
    .limit(q.page_size + 1);
  return { page };
}

async function pageOfTags(ctx: OrgCtx, route: "tags" | "tag-info", q: ListQuery, rows: TagRow[]) {
  return finishPage(ctx.config.hmacSecret, fingerprint(route, ctx.org.id, q), rows, q.page_size, (r) => [r.nameKey, r.name]);
}

export async function tagPage(ctx: OrgCtx, q: ListQuery, rows: TagRow[]) {
  const page = await pageOfTags(ctx, "tags", q, rows);
  return { items: page.rows.map(serializeTag), next_page_token: page.nextPageToken };
}

export async function tagInfoPage(ctx: OrgCtx, q: ListQuery & { include_counts: boolean }, rows: TagRow[]) {
  const page = await pageOfTags(ctx, "tag-info", q, rows);
  return {
    items: page.rows.map((t) => ({ tag: serializeTag(t), ...(q.include_counts ? { counts: { projects: t.projectCount } } : {}) })),
    next_page_token: page.nextPageToken,
  };
}

/*
 * Deleting a tag takes it off every project (project_tags cascades), private ones too: that is
 * why it needs `projects:admin`. The projects' updated_at does not move.
 *
 * The tags to delete are read in the authorization batch (no extra round trip), which gives
 * each entry its event data. The write batch then records an entry for each of those tags that
 * still exists, and deletes exactly those: a tag deleted meanwhile by someone else gets no entry
 * here, and one created meanwhile under a requested name is not deleted (this request came first).
 */

/**
 * The tags `ids` and `names` name, for the delete routes' load: one probe of the primary key or
 * of the (organization_id, name) index per name, never a walk of the organization's tags. One
 * JSON parameter each (D1 binds at most 100 parameters per statement).
 */
export function tagsToDeleteQuery(db: ReadDb, org: OrgScope, named: { ids?: string[]; names?: string[] }) {
  const ids = (named.ids ?? []).filter((id) => isId("tag", id));
  const names = named.names ?? [];
  const select = (where: SQL) =>
    db
      .select(tagColumns)
      .from(tags)
      .where(and(org.inOrg(tags.organizationId), where));
  return {
    byId: ids.length > 0 ? select(sql`${tags.id} in (select value from json_each(${JSON.stringify(ids)}))`) : undefined,
    byName: names.length > 0 ? select(sql`${tags.name} in (select value from json_each(${JSON.stringify(names)}))`) : undefined,
  };
}

type Named = { byId?: TagRow[]; byName?: TagRow[] } | undefined;

/** Each tag once, whether it was named by id, by name or both. */
const foundTags = (loaded: Named) => [...new Map([...(loaded?.byId ?? []), ...(loaded?.byName ?? [])].map((t) => [t.id, t])).values()];

/** One entry per tag (one statement whatever their number), each written only if its tag is still there; then the tags go. */
async function deleteTags(ctx: OrgCtx, found: TagRow[]): Promise<Set<string>> {
  if (found.length === 0) return new Set();
  const db = ctx.db;
  const audit = auditStatements(ctx, {
    entries: found.map((t) => ({
      action: "tag.deleted" as const,
      target: { type: "tag", id: t.id },
      event: { type: "tag.deleted" as const, data: serializeTag(t) },
    })),
    onlyIf: sql`exists (select 1 from tags t where t.id = audit_row.target_id and t.organization_id = ${ctx.org.id})`,
  });
  const statements = [
    ...audit.statements,
    db
      .delete(tags)
      .where(and(eq(tags.organizationId, ctx.org.id), sql`${tags.id} in (select value from json_each(${JSON.stringify(found.map((t) => t.id))}))`))
      .returning({ id: tags.id }),
  ];
  const results = await db.batch(statements as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  afterCommit(ctx, audit, results.slice(0, audit.statements.length));
  return new Set((results[results.length - 1] as { id: string }[]).map((r) => r.id));
}

export async function deleteTagById(ctx: OrgCtx, id: string, loaded: Named) {
  const tag = loaded?.byId?.find((t) => t.id === id);
  if (!tag || !(await deleteTags(ctx, [tag])).has(tag.id)) throw notFound("tag");
}

export async function deleteTagByName(ctx: OrgCtx, name: string, loaded: Named) {
  const tag = loaded?.byName?.find((t) => t.name === name);
  if (!tag || !(await deleteTags(ctx, [tag])).has(tag.id)) throw notFound("tag");
}

/**
 * Up to 100 tags by id and by name in one batch; each item reports `deleted` or `not_found`. A
 * tag named both by id and by name reads `deleted` in both places. The batch is four statements
 * whatever the number of tags (entries, deliveries, delete), within D1's per-request budget.
 */
export async function batchDeleteTags(ctx: OrgCtx, input: { ids: string[]; names: string[] }, loaded: Named) {
  const found = foundTags(loaded);
  const deleted = await deleteTags(ctx, found);
  if (deleted.size === 0) noChange(ctx);
  const gone = found.filter((t) => deleted.has(t.id));
  const goneIds = new Map(gone.map((t) => [t.id, t.name]));
  const goneNames = new Map(gone.map((t) => [t.name, t.id]));
  return {
    results: [
      ...input.ids.map((id) => (goneIds.has(id) ? { id, name: goneIds.get(id)!, status: "deleted" as const } : { id, status: "not_found" as const })),
      ...input.names.map((name) =>
        goneNames.has(name) ? { id: goneNames.get(name)!, name, status: "deleted" as const } : { name, status: "not_found" as const },
      ),
    ],
  };
}
