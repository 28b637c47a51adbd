import { and, asc, eq, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { tags } from "../../db/schema";
import { notFound } from "../../lib/errors";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { isId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter } from "../../lib/pagination";
import { serializeTag, type TagRow } from "./tags.schemas";

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
 */

export async function deleteTagById(ctx: OrgCtx, id: string) {
  if (!isId("tag", id)) throw notFound("tag");
  const deleted = await ctx.db
    .delete(tags)
    .where(and(eq(tags.organizationId, ctx.org.id), eq(tags.id, id)))
    .returning({ id: tags.id });
  if (deleted.length === 0) throw notFound("tag");
}

export async function deleteTagByName(ctx: OrgCtx, name: string) {
  const deleted = await ctx.db
    .delete(tags)
    .where(and(eq(tags.organizationId, ctx.org.id), eq(tags.name, name)))
    .returning({ id: tags.id });
  if (deleted.length === 0) throw notFound("tag");
}

/**
 * Up to 100 tags by id and by name in one batch; each item reports `deleted` or `not_found`. A
 * tag named both by id and by name reads `deleted` in both places.
 */
export async function batchDeleteTags(ctx: OrgCtx, input: { ids: string[]; names: string[] }) {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const ids = input.ids.filter((id) => isId("tag", id));
  const returning = { id: tags.id, name: tags.name };
  const [byId, byName] = await db.batch([
    db
      .delete(tags)
      .where(and(eq(tags.organizationId, orgId), sql`${tags.id} in (select value from json_each(${JSON.stringify(ids)}))`))
      .returning(returning),
    db
      .delete(tags)
      .where(and(eq(tags.organizationId, orgId), sql`${tags.name} in (select value from json_each(${JSON.stringify(input.names)}))`))
      .returning(returning),
  ]);
  const gone = [...byId, ...byName];
  const goneIds = new Map(gone.map((t) => [t.id, t.name]));
  const goneNames = new Map(gone.map((t) => [t.name, t.id]));
  return {
    results: [
      ...input.ids.map((id) => (goneIds.has(id) ? { id, name: goneIds.get(id)!, status: "deleted" as const } : { id, status: "not_found" as const })),
      ...input.names.map((name) => (goneNames.has(name) ? { id: goneNames.get(name)!, name, status: "deleted" as const } : { name, status: "not_found" as const })),
    ],
  };
}
