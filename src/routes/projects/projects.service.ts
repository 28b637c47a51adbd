import { and, asc, eq, gt, sql, type SQL } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { members, projectMembers, projects, projectTags, tags } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { ApiError, notFound, rootMessage } from "../../lib/errors";
import { compileFilter, parseFilter, parseOrderBy, type FilterField } from "../../lib/filter";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter, orderBy, type KeyValue, type SortKey } from "../../lib/pagination";
import { compareText, serializeProject, serializeProjectMember, type ProjectMemberRow, type ProjectRow } from "./projects.schemas";
import { commit, noChange } from "../../audit/record";

/**
 * Visibility: a public project is visible to every holder of `projects:read`; a private one to
 * holders of `projects:admin` and to members with a project_members row. Everything here applies
 * it inside SQL, so a project the caller may not see is never read into a response, and a
 * statement about one reads nothing (its guard is NULL), which keeps Server-Timing silent too.
 */

/** Names of the project's tags as a JSON array: a probe of project_tags' primary key (≤ 20 rows). */
const tagNamesSql = sql<string>`(select json_group_array(t.name) from project_tags x join tags t on t.id = x.tag_id where x.project_id = ${outer(projects.id)})`;

const projectColumns = {
  id: projects.id,
  name: projects.name,
  nameKey: projects.nameKey,
  description: projects.description,
  private: projects.private,
  createdBy: projects.createdBy,
  createdAt: projects.createdAt,
  updatedAt: projects.updatedAt,
  tags: tagNamesSql,
};

const grantedSql = (org: OrgScope) =>
  sql`exists (select 1 from project_members v where v.project_id = ${outer(projects.id)} and v.member_id = ${org.callerId})`;

/** The caller may see this row of `projects`. */
const visibleSql = (org: OrgScope) => sql`(${outer(projects.private)} = 0 or ${org.holds("projects:admin")} or ${grantedSql(org)})`;

/** The same rule for a project named by id, as one scalar the guard can be conditioned on. */
const projectVisibleSql = (org: OrgScope, projectId: string) =>
  sql`exists (select 1 from projects p where p.id = ${projectId} and p.organization_id = ${org.id}
      and (p.private = 0 or ${org.holds("projects:admin")} or exists (select 1 from project_members v where v.project_id = p.id and v.member_id = ${org.callerId})))`;

// ---- List -----------------------------------------------------------------------------------

const prefixEnd = (p: string) => `${p}\u{10FFFF}`;

// Checked here (fields, operators, value types); the SQL comes from nameWhere and the streams.
const PROJECT_FILTER: Record<string, FilterField> = {
  name: { kind: "string", column: projects.name },
  tag: { kind: "string", column: projectTags.tagId, ops: ["="] },
  private: { kind: "boolean", column: projects.private, ops: ["="] },
};

type OrderField = "created_at" | "name" | "updated_at";
const SORTABLE: Record<OrderField, SQLiteColumn> = { created_at: projects.id, name: projects.nameKey, updated_at: projects.updatedAt };

type ListQuery = { page_size: number; page_token?: string; filter?: string; order_by?: string };

/**
 * What a projects list asks for, parsed once (the load and the page share it). Each combination
 * is served by index ranges only:
 *   - no tag, no name prefix: any order; projects_org_private_{,name_,updated_}idx.
 *   - `name:"p"`: name order (the default then); the name index's prefix range.
 *   - `tag = "t"`: created_at order; project_tags (tag_id, private, project_id).
 * Other pairings would read rows that never reach the page, so they are refused (400).
 */
function planList(orgId: string, q: ListQuery) {
  const terms = q.filter ? parseFilter(q.filter) : [];
  // Validates every term (field, operator, value type) with one message style.
  compileFilter(terms, PROJECT_FILTER);
  const tagTerms = terms.filter((t) => t.field === "tag");
  if (tagTerms.length > 1) throw new ApiError("invalid_filter", "`tag` may appear once.");
  const nameTerms = terms.filter((t) => t.field === "name");
  const prefix = nameTerms.some((t) => t.op === ":");
  const privateValues = new Set(terms.filter((t) => t.field === "private").map((t) => t.value as boolean));
  const tag = tagTerms[0]?.value as string | undefined;

  const given = q.order_by?.trim() ? q.order_by : undefined;
  const fallback = tag !== undefined ? "created_at" : prefix ? "name" : "created_at";
  const { names } = parseOrderBy(given, SORTABLE, [{ field: fallback, desc: fallback === "created_at" }]);
  if (names.length > 1) throw new ApiError("invalid_order_by", "Order by one field: `created_at`, `name` or `updated_at`, optionally ` desc`.");
  const order = names[0]! as { field: OrderField; desc: boolean };
  if (tag !== undefined && order.field !== "created_at") {
    throw new ApiError("invalid_order_by", "A `tag` filter lists in `created_at` order (ascending or descending) only.");
  }
  if (tag === undefined && prefix && order.field !== "name") {
    throw new ApiError("invalid_order_by", 'A name prefix (`name:"…"`) lists in `name` order (ascending or descending) only.');
  }
  return {
    fingerprint: `projects|${orgId}|${q.filter ?? ""}|${order.field}|${order.desc}`,
    order,
    tag,
    nameTerms,
    // Which visibility streams can hold matches at all.
    wantPublic: !privateValues.has(true),
    wantPrivate: !privateValues.has(false),
    arity: order.field === "created_at" ? 1 : 2,
  };
}

type Plan = ReturnType<typeof planList>;

/**
 * The name terms as SQL. An exact name also pins name_key, so it is an index equality. A prefix
 * listed in name order after a page token keeps only the bound ahead of the token: the token's
 * key itself matches the prefix, so the row-value comparison implies the other bound, and given
 * both SQLite may start its range at the prefix and walk every row already listed.
 */
function nameWhere(plan: Plan, afterToken: boolean): SQL | undefined {
  const conds = plan.nameTerms.map((t) => {
    const v = t.value as string;
    if (t.op === "!=") return sql`${projects.name} != ${v}`;
    if (t.op === "=") return and(eq(projects.name, v), eq(projects.nameKey, v.toLowerCase()))!;
    const p = v.toLowerCase();
    const from = sql`${projects.nameKey} >= ${p}`;
    const to = sql`${projects.nameKey} < ${prefixEnd(p)}`;
    if (afterToken && plan.tag === undefined && plan.order.field === "name") return plan.order.desc ? from : to;
    return and(from, to)!;
  });
  return and(...conds);
}

/** The sort keys of one stream: `idColumn` is whichever column of the driving index carries the project id. */
function streamKeys(plan: Plan, idColumn: SQLiteColumn): SortKey[] {
  const { field, desc } = plan.order;
  if (field === "created_at") return [{ column: idColumn, desc }];
  return [
    { column: SORTABLE[field], desc },
    { column: projects.id, desc },
  ];
}

/**
 * One page of the projects the caller can see, as up to three statements in the authorization
 * batch, each walking one index range in the page's order and stopping at page_size + 1 rows:
 *   public    — the organization's public projects;
 *   private   — every private project, read only if the caller holds `projects:admin` (the
 *               indexed equality's value is NULL otherwise, so the range is empty);
 *   granted   — the caller's project_members rows joined to their projects, read only if the
 *               caller does not hold `projects:admin` (an admin's private stream covers them).
 * The handler merges them (a project can be in public and granted; it is kept once). The granted
 * stream walks the caller's grants in project id order: for `name` and `updated_at` orders it
 * reads all of the caller's grants (bounded by them, not by the organization).
 */
export async function projectListQueries(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const plan = planList(org.id, q);
  const after = q.page_token ? await decodePageToken(config.hmacSecret, plan.fingerprint, q.page_token, plan.arity) : undefined;
  const limit = q.page_size + 1;
  const adminOrg = sql`(select ${org.guard(org.id)} where ${org.holds("projects:admin")})`;
  const grantOrg = sql`(select ${org.guard(org.id)} where not ${org.holds("projects:admin")})`;
  const keyset = (keys: SortKey[]) => (after ? keysetAfter(keys, after) : undefined);
  const byName = nameWhere(plan, after !== undefined);

  // The caller's grants first, then each granted project by its key (a cross join keeps SQLite's
  // join order); `only` narrows it further.
  const granted = (only: SQL | undefined) => {
    const keys = streamKeys(plan, projectMembers.projectId);
    return db
      .select(projectColumns)
      .from(projectMembers)
      .crossJoin(projects)
      .where(
        and(
          eq(projectMembers.organizationId, grantOrg),
          eq(projectMembers.memberId, org.callerId),
          eq(projects.id, projectMembers.projectId),
          only,
          byName,
          keyset(keys),
        ),
      )
      .orderBy(...orderBy(keys))
      .limit(limit);
  };

  if (plan.tag !== undefined) {
    const tagId = (orgValue: SQL) => sql`(select t.id from tags t where t.organization_id = ${orgValue} and t.name = ${plan.tag})`;
    const byTag = (orgValue: SQL, isPrivate: 0 | 1) => {
      const keys = streamKeys(plan, projectTags.projectId);
      return db
        .select(projectColumns)
        .from(projectTags)
        .innerJoin(projects, eq(projects.id, projectTags.projectId))
        .where(and(eq(projectTags.tagId, tagId(orgValue)), sql`${projectTags.private} = ${isPrivate}`, byName, keyset(keys)))
        .orderBy(...orderBy(keys))
        .limit(limit);
    };
    const tagged = sql`exists (select 1 from project_tags y where y.project_id = ${outer(projectMembers.projectId)} and y.tag_id = ${tagId(sql`${org.id}`)})`;
    return {
      public: plan.wantPublic ? byTag(org.guard(org.id), 0) : undefined,
      private: plan.wantPrivate ? byTag(adminOrg, 1) : undefined,
      granted: plan.wantPrivate ? granted(and(sql`${projects.private} = 1`, tagged)) : undefined,
    };
  }

  const byOrg = (orgValue: SQL, isPrivate: 0 | 1) => {
    const keys = streamKeys(plan, projects.id);
    return db
      .select(projectColumns)
      .from(projects)
      .where(and(eq(projects.organizationId, orgValue), sql`${projects.private} = ${isPrivate}`, byName, keyset(keys)))
      .orderBy(...orderBy(keys))
      .limit(limit);
  };
  return {
    public: plan.wantPublic ? byOrg(org.guard(org.id), 0) : undefined,
    private: plan.wantPrivate ? byOrg(adminOrg, 1) : undefined,
    // Public projects come through the public stream; with no private filter a granted public one
    // is read here too and merged away (no skipped rows, so the limit holds).
    granted: plan.wantPrivate ? granted(plan.wantPublic ? undefined : sql`${projects.private} = 1`) : undefined,
  };
}

type ListedProject = ProjectRow;

export async function projectListPage(ctx: OrgCtx, q: ListQuery, loaded: { public?: ListedProject[]; private?: ListedProject[]; granted?: ListedProject[] }) {
  const plan = planList(ctx.org.id, q);
  const { field, desc } = plan.order;
  const cmp = (a: ListedProject, b: ListedProject) => {
    let c = 0;
    if (field === "name") c = compareText(a.nameKey, b.nameKey);
    else if (field === "updated_at") c = a.updatedAt - b.updatedAt;
    if (c === 0) c = compareText(a.id, b.id);
    return desc ? -c : c;
  };
  const seen = new Set<string>();
  const merged = [...(loaded.public ?? []), ...(loaded.private ?? []), ...(loaded.granted ?? [])]
    .sort(cmp)
    .filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)))
    .slice(0, q.page_size + 1);
  const keyOf = (r: ListedProject): KeyValue[] => (field === "created_at" ? [r.id] : [field === "name" ? r.nameKey : r.updatedAt, r.id]);
  const page = await finishPage(ctx.config.hmacSecret, plan.fingerprint, merged, q.page_size, keyOf);
  return { items: page.rows.map(serializeProject), next_page_token: page.nextPageToken };
}

// ---- One project ----------------------------------------------------------------------------

/** The project if the caller may see it; nothing to read for a malformed id. */
export function projectQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("project", id)) return undefined;
  return db
    .select(projectColumns)
    .from(projects)
    .where(and(eq(projects.id, org.guard(id)), eq(projects.organizationId, org.id), visibleSql(org)))
    .limit(1);
}

function found(rows: ProjectRow[] | undefined): ProjectRow {
  const row = rows?.[0];
  if (!row) throw notFound("project");
  return row;
}

export const getProject = (rows: ProjectRow[] | undefined) => serializeProject(found(rows));

// ---- Writes ---------------------------------------------------------------------------------

const inJson = (values: readonly string[]) => sql`(select value from json_each(${JSON.stringify(values)}))`;

/**
 * Statements that make the project's tag set exactly `names`, counters included. The batch is one
 * transaction, so each counter moves by the rows this batch actually removes or adds, read in
 * the same transaction: concurrent retaggings serialize and every count stays exact.
 */
function retagStatements(ctx: OrgCtx, projectId: string, names: readonly string[], isPrivate: boolean, now: number, fresh = false): BatchItem<"sqlite">[] {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const wanted = sql`(select id from tags where organization_id = ${orgId} and name in ${inJson(names)})`;
  const current = sql`(select tag_id from project_tags where project_id = ${projectId})`;
  const statements: BatchItem<"sqlite">[] = [];
  if (names.length > 0) {
    statements.push(
      // One JSON parameter, not a VALUES list: D1 binds at most 100 parameters per statement.
      db
        .insert(tags)
        .select(
          sql`select json_extract(j.value, '$[0]'), ${orgId}, json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), 0, ${now}, ${now}
              from json_each(${JSON.stringify(names.map((name) => [newId("tag", now), name, name.toLowerCase()]))}) j where true`,
        )
        .onConflictDoNothing({ target: [tags.organizationId, tags.name] }),
    );
  }
  if (!fresh) {
    statements.push(
      // Counted down before the rows go, from the rows that are there now.
      db
        .update(tags)
        .set({ projectCount: sql`${tags.projectCount} - 1` })
        .where(and(sql`${tags.id} in ${current}`, sql`${tags.id} not in ${wanted}`)),
      db.delete(projectTags).where(and(eq(projectTags.projectId, projectId), sql`${projectTags.tagId} not in ${wanted}`)),
    );
  }
  if (names.length > 0) {
    statements.push(
      // Counted up before the rows go in, for the tags the project does not carry yet.
      db
        .update(tags)
        .set({ projectCount: sql`${tags.projectCount} + 1` })
        .where(and(eq(tags.organizationId, orgId), sql`${tags.name} in ${inJson(names)}`, sql`${tags.id} not in ${current}`)),
      db.insert(projectTags).select(
        sql`select ${projectId}, t.id, ${orgId}, ${isPrivate ? 1 : 0} from tags t
              where t.organization_id = ${orgId} and t.name in ${inJson(names)} and t.id not in ${current}`,
      ),
    );
  }
  return statements;
}

/** Whoever makes a project private is on its access list, so a creator never locks themself out. */
function grantStatement(ctx: OrgCtx, projectId: string, memberId: string, now: number) {
  const grantedBy = memberIdOf(ctx.actor);
  return ctx.db.insert(projectMembers).values({ projectId, memberId, organizationId: ctx.org.id, grantedBy, grantedAt: now }).onConflictDoNothing();
}

export async function createProject(ctx: OrgCtx, input: { name: string; description?: string | null; private: boolean; tags: string[] }) {
  const now = Date.now();
  const id = newId("project", now);
  const orgId = ctx.org.id;
  const caller = memberIdOf(ctx.actor);
  const db = ctx.db;
  const row = {
    id,
    organizationId: orgId,
    name: input.name,
    nameKey: input.name.toLowerCase(),
    description: input.description ?? null,
    private: input.private,
    createdBy: caller,
    createdAt: now,
    updatedAt: now,
  };
  const project = serializeProject({ ...row, tags: input.tags });
  await commit(
    ctx,
    [
      db.insert(projects).values(row),
      ...retagStatements(ctx, id, input.tags, input.private, now, true),
      ...(input.private ? [grantStatement(ctx, id, caller, now)] : []),
    ],
    {
      entries: [
        {
          action: "project.created",
          target: { type: "project", id },
          changes: ["name", "description", "private", "tags"],
          event: { type: "project.created", data: project },
        },
      ],
    },
  );
  return project;
}

export async function updateProject(
  ctx: OrgCtx,
  rows: ProjectRow[] | undefined,
  input: { name?: string; description?: string | null; private?: boolean; tags?: string[] },
) {
  const current = found(rows);
  const now = Date.now();
  const db = ctx.db;
  const id = current.id;
  const wasPrivate = Boolean(current.private);
  const currentTags = serializeProject(current).tags;
  const set: Partial<typeof projects.$inferInsert> = {};
  const changes: string[] = [];
  if (input.name !== undefined && input.name !== current.name) {
    Object.assign(set, { name: input.name, nameKey: input.name.toLowerCase() });
    changes.push("name");
  }
  if (input.description !== undefined && input.description !== current.description) {
    set.description = input.description;
    changes.push("description");
  }
  if (input.private !== undefined && input.private !== wasPrivate) {
    set.private = input.private;
    changes.push("private");
  }
  const nextTags = input.tags === undefined ? currentTags : [...new Set(input.tags)];
  const retag = input.tags !== undefined && (nextTags.length !== currentTags.length || nextTags.some((t) => !currentTags.includes(t)));
  if (retag) changes.push("tags");
  // Values already in place change nothing, updated_at included, and record nothing.
  if (changes.length === 0) {
    noChange(ctx);
    return serializeProject(current);
  }
  set.updatedAt = now;
  const isPrivate = set.private ?? wasPrivate;
  const statements: BatchItem<"sqlite">[] = [
    db
      .update(projects)
      .set(set)
      .where(and(eq(projects.id, id), eq(projects.organizationId, ctx.org.id))),
  ];
  if (retag) statements.push(...retagStatements(ctx, id, nextTags, isPrivate, now));
  if (set.private !== undefined) {
    statements.push(db.update(projectTags).set({ private: set.private }).where(eq(projectTags.projectId, id)));
    if (set.private) statements.push(grantStatement(ctx, id, memberIdOf(ctx.actor), now));
  }
  statements.push(
    db
      .select(projectColumns)
      .from(projects)
      .where(and(eq(projects.id, id), eq(projects.organizationId, ctx.org.id))),
  );
  const project = serializeProject({ ...current, ...set, tags: nextTags });
  let results: unknown[];
  try {
    results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      // Right after the project's own update, which finds nothing if it was deleted meanwhile.
      after: 0,
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "project.updated", target: { type: "project", id }, changes, event: { type: "project.updated", data: project } }],
    });
  } catch (err) {
    // Deleted meanwhile: a tag row or a grant for it fails its foreign key, and nothing was written.
    if (rootMessage(err).includes("FOREIGN KEY constraint failed")) throw notFound("project");
    throw err;
  }
  const updated = (results[results.length - 1] as ProjectRow[])[0];
  if (!updated) throw notFound("project");
  return serializeProject(updated);
}

/** The project, its tag rows (counters counted down first), grants and integration mappings (cascade). */
export async function deleteProject(ctx: OrgCtx, rows: ProjectRow[] | undefined) {
  const current = found(rows);
  const db = ctx.db;
  const [, deleted] = await commit(
    ctx,
    [
      db
        .update(tags)
        .set({ projectCount: sql`${tags.projectCount} - 1` })
        .where(sql`${tags.id} in (select tag_id from project_tags where project_id = ${current.id})`),
      db
        .delete(projects)
        .where(and(eq(projects.id, current.id), eq(projects.organizationId, ctx.org.id)))
        .returning({ id: projects.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        { action: "project.deleted", target: { type: "project", id: current.id }, event: { type: "project.deleted", data: serializeProject(current) } },
      ],
    },
  );
  if (deleted.length === 0) throw notFound("project");
}

// ---- Access list ----------------------------------------------------------------------------

const isMemberId = (id: string) => isId("user", id) || isId("serviceAccount", id);

/** The project's id if the caller may see it: what the access routes check before anything else. */
function visibleProjectQuery(db: ReadDb, org: OrgScope, projectId: string) {
  return db
    .select({ id: projects.id })
    .from(projects)
    .where(and(eq(projects.id, org.guard(projectId)), eq(projects.organizationId, org.id), visibleSql(org)))
    .limit(1);
}

const grantColumns = {
  projectId: projectMembers.projectId,
  memberId: projectMembers.memberId,
  displayName: members.displayName,
  email: members.email,
  type: members.type,
  grantedAt: projectMembers.grantedAt,
};

function grantsOf(db: ReadDb | OrgCtx["db"]) {
  return db
    .select(grantColumns)
    .from(projectMembers)
    .innerJoin(members, and(eq(members.organizationId, projectMembers.organizationId), eq(members.memberId, projectMembers.memberId)));
}

const grantsFingerprint = (orgId: string, projectId: string) => `project-members|${orgId}|${projectId}`;

/**
 * The project's access list in member id order. The page's guard is also conditioned on the
 * project being visible to the caller (one scalar, computed before the walk), so the grants of a
 * project the caller may not see are not even read.
 */
export async function projectMemberListQueries(db: ReadDb, org: OrgScope, config: Config, projectId: string, q: { page_size: number; page_token?: string }) {
  if (!isId("project", projectId)) return { project: undefined, page: undefined };
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, grantsFingerprint(org.id, projectId), q.page_token, 1))[0]) : undefined;
  return {
    project: visibleProjectQuery(db, org, projectId),
    page: grantsOf(db)
      .where(
        and(
          eq(projectMembers.projectId, sql`(select ${org.guard(projectId)} where ${projectVisibleSql(org, projectId)})`),
          after ? gt(projectMembers.memberId, after) : undefined,
        ),
      )
      .orderBy(asc(projectMembers.memberId))
      .limit(q.page_size + 1),
  };
}

export async function projectMemberPage(
  ctx: OrgCtx,
  projectId: string,
  q: { page_size: number },
  loaded: { project?: { id: string }[]; page?: ProjectMemberRow[] },
) {
  if (!loaded.project?.[0]) throw notFound("project");
  const page = await finishPage(ctx.config.hmacSecret, grantsFingerprint(ctx.org.id, projectId), loaded.page ?? [], q.page_size, (r) => [r.memberId]);
  return { items: page.rows.map(serializeProjectMember), next_page_token: page.nextPageToken };
}

/** The grant revoking removes, read only if the caller may see the project (as the access list is). */
export function grantQuery(db: ReadDb, org: OrgScope, projectId: string, memberId: string) {
  if (!isId("project", projectId) || !isMemberId(memberId)) return undefined;
  return grantsOf(db)
    .where(
      and(
        eq(projectMembers.projectId, sql`(select ${org.guard(projectId)} where ${projectVisibleSql(org, projectId)})`),
        eq(projectMembers.memberId, memberId),
      ),
    )
    .limit(1);
}

/** What granting or revoking reads: the project (if visible) and, for a grant, the target member. */
export function accessQueries(db: ReadDb, org: OrgScope, projectId: string, memberId: string) {
  if (!isId("project", projectId) || !isMemberId(memberId)) return { project: undefined, member: undefined };
  return {
    project: visibleProjectQuery(db, org, projectId),
    member: db
      .select({ memberId: members.memberId, displayName: members.displayName, email: members.email, type: members.type })
      .from(members)
      .where(and(eq(members.organizationId, org.id), eq(members.memberId, org.guard(memberId))))
      .limit(1),
  };
}

/**
 * Grants a member access (idempotent: a second grant keeps the first one's time). The insert
 * reads the membership and the project in the same statement, so a member removed (or a project
 * deleted) meanwhile gets no row.
 */
export async function grantAccess(
  ctx: OrgCtx,
  projectId: string,
  memberId: string,
  loaded: { project?: { id: string }[]; member?: Omit<ProjectMemberRow, "projectId" | "grantedAt">[] },
) {
  if (!loaded.project?.[0]) throw notFound("project");
  const member = loaded.member?.[0];
  if (!member) throw notFound("member");
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  const [, rows] = await commit(
    ctx,
    [
      db
        .insert(projectMembers)
        .select(
          sql`select p.id, m.member_id, p.organization_id, ${memberIdOf(ctx.actor)}, ${now}
              from projects p join members m on m.organization_id = p.organization_id and m.member_id = ${memberId}
              where p.id = ${projectId} and p.organization_id = ${orgId}`,
        )
        .onConflictDoNothing(),
      grantsOf(db).where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.memberId, memberId))),
    ],
    {
      // A grant already in place inserts nothing and records nothing.
      after: 0,
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "project.member_added",
          target: { type: "project", id: projectId },
          changes: ["members"],
          event: { type: "project.member_added", data: serializeProjectMember({ ...member, projectId, grantedAt: now }) },
        },
      ],
    },
  );
  const row = rows[0];
  if (!row) throw notFound("member");
  if (ctx.audit.written === 0) noChange(ctx);
  return serializeProjectMember(row);
}

export async function revokeAccess(ctx: OrgCtx, projectId: string, memberId: string, loaded: { project?: { id: string }[]; grant?: ProjectMemberRow[] }) {
  if (!loaded.project?.[0]) throw notFound("project");
  const grant = loaded.grant?.[0];
  if (!grant) throw notFound("project member");
  const [deleted] = await commit(
    ctx,
    [
      ctx.db
        .delete(projectMembers)
        .where(and(eq(projectMembers.projectId, projectId), eq(projectMembers.memberId, memberId), eq(projectMembers.organizationId, ctx.org.id)))
        .returning({ id: projectMembers.memberId }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "project.member_removed",
          target: { type: "project", id: projectId },
          changes: ["members"],
          event: { type: "project.member_removed", data: serializeProjectMember(grant) },
        },
      ],
    },
  );
  if (deleted.length === 0) throw notFound("project member");
}
