import { and, asc, eq, gt, sql, type SQL } from "drizzle-orm";
import type { Context } from "hono";
import type { AppEnv } from "../env";
import { identityProviderConfigs, scimGroups } from "../db/schema";
import { jsonBody, noContent } from "../lib/openapi";
import { isBuiltInRole } from "../lib/permissions";
import { scimContent, scimJson } from "./errors";
import { scimFilterSql } from "./filter";
import { GROUP_ROLE_SCHEMA, GroupInput, GroupListResponse, GroupParams, GroupPatchInput, GroupResource } from "./groups.schemas";
import {
  createGroup,
  customRoleQuery,
  deleteGroup,
  groupFilterAttrs,
  groupMembersQuery,
  groupPageQuery,
  groupQuery,
  groupResource,
  ifMatchVersion,
  knownUsersQuery,
  memberIds,
  notFoundGroup,
  patchGroup,
  planGroupPatch,
  replaceGroup,
  tryPlanGroupPatch,
  wantsMembers,
  type GroupRow,
  type MemberUser,
} from "./groups.service";
import {
  checkIfMatch,
  etagOf,
  listCursor,
  listFingerprint,
  listTotal,
  listTotalQuery,
  notModified,
  parsePaging,
  projectAttributes,
  rememberPage,
  ScimListQuery,
  ScimReadQuery,
  scimList,
  type Paging,
} from "./resource";
import { scimRoute, type ScimScope } from "./route";
import { scimRoutes } from "./router";

const TAGS = ["SCIM"];
const ROLE_NOTE = `A group may map to a role of the organization with the extension \`${GROUP_ROLE_SCHEMA}\`: \`{"role": "admin" | "user" | <custom role name> | null}\` (unknown role: 400 invalidValue). A SCIM-managed member's role is the mapped role of their earliest-created mapped group, else \`user\`; it changes in the same write as the membership.`;

/** A custom role to look up, unless the name is built-in (judged in code) or absent. */
const customRoleLoad = (db: Parameters<typeof customRoleQuery>[0], dir: ScimScope, role: string | null | undefined) =>
  role && !isBuiltInRole(role) ? customRoleQuery(db, dir, role) : undefined;

const project = (resource: ReturnType<typeof groupResource>, query: { attributes?: string; excludedAttributes?: string }) =>
  projectAttributes(resource, query.attributes, query.excludedAttributes);

const withEtag = (row: GroupRow) => ({ ETag: etagOf(row.version) });

/** The page's where (guard + filter), or undefined when the filter does not compile (the handler then answers 400 after the token check). */
function listWhere(dir: ScimScope, filter: string | undefined): SQL | undefined {
  try {
    return and(eq(scimGroups.configId, dir.configId), scimFilterSql(filter, groupFilterAttrs()));
  } catch {
    return undefined;
  }
}

function pagingOf(query: { startIndex?: string; count?: string }): Paging | undefined {
  try {
    return parsePaging(query);
  } catch {
    return undefined;
  }
}

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/Groups",
  tags: TAGS,
  summary: "List groups",
  description:
    'RFC 7644 §3.4.2, in id order. `filter` on `id`, `displayName` (case-insensitive), `externalId`, `members[value eq "…"]`, `meta.created`, `meta.lastModified`. `members` is left out of list results unless `attributes` names it: a page then costs O(count) rows whatever the size of its groups (GET one group returns its members).',
  request: { query: ScimListQuery },
  responses: { 200: scimContent(GroupListResponse, "A ListResponse of groups.") },
  load: async ({ db, dir, input, kv, tokenKey }) => {
    const where = listWhere(dir, input.query.filter);
    const paging = pagingOf(input.query);
    if (!where || !paging) return undefined;
    const filtered = scimFilterSql(input.query.filter, groupFilterAttrs()) !== undefined;
    // After the previous page's last id when this token just read it (resource.ts listCursor), else OFFSET.
    const after = await listCursor({ kv, tokenKey }, await listFingerprint("Group", input.query.filter), paging, "scimGroup");
    const paged = after === null ? where : and(where, gt(scimGroups.id, after))!;
    const page = groupPageQuery(db, dir, where, paging, after);
    const ids = db.select({ id: scimGroups.id }).from(scimGroups).where(paged).orderBy(asc(scimGroups.configId), asc(scimGroups.id)).limit(paging.count);
    const pageIds = after === null ? ids.offset(paging.offset) : ids;
    return {
      page,
      total: listTotalQuery(db, dir, identityProviderConfigs.scimGroupCount, scimGroups, paged, paging, after !== null, filtered),
      members: wantsMembers(input.query, false) && paging.count > 0 ? groupMembersQuery(db, dir, sql`in (${pageIds})`) : undefined,
    };
  },
  handle: async ({ ctx, input, loaded }) => {
    const paging = parsePaging(input.query);
    // Throws the filter's 400 when the load could not compile it.
    scimFilterSql(input.query.filter, groupFilterAttrs());
    const rows = loaded?.page ?? [];
    const byGroup = new Map<string, MemberUser[]>();
    for (const m of loaded?.members ?? []) byGroup.set(m.groupId, [...(byGroup.get(m.groupId) ?? []), m]);
    const withMembers = loaded?.members !== undefined;
    const resources = rows.map((row) => project(groupResource(ctx, row, withMembers ? (byGroup.get(row.id) ?? []) : undefined), input.query));
    ctx.note(`listed groups (${resources.length})`);
    const total = listTotal(loaded?.total, paging, rows.length);
    await rememberPage(
      ctx,
      await listFingerprint("Group", input.query.filter),
      paging,
      rows.map((r) => r.id),
      total,
    );
    return scimJson(scimList(resources, { totalResults: total, startIndex: paging.startIndex }));
  },
});

scimRoute(scimRoutes, {
  method: "post",
  path: "/scim/v2/Groups",
  audit: ["scim.group.created", "member.role_changed"],
  tags: TAGS,
  summary: "Create a group",
  description: `201 with the group, \`Location\` and \`ETag\`. \`members\` must be users of this directory (else 400 invalidValue listing the ids); a displayName already used in this directory (case-insensitively) → 409 uniqueness. ${ROLE_NOTE}`,
  request: { query: ScimReadQuery, body: jsonBody(GroupInput) },
  responses: { 201: scimContent(GroupResource, "The group.") },
  load: ({ db, dir, input }) => {
    const ids = memberIds(input.json.members);
    return {
      known: ids.length > 0 ? knownUsersQuery(db, dir, ids) : undefined,
      customRole: customRoleLoad(db, dir, input.json[GROUP_ROLE_SCHEMA]?.role),
    };
  },
  handle: async ({ ctx, input, loaded }) => {
    // A load of only absent reads comes back undefined.
    const group = await createGroup(ctx, input.json, loaded?.known ?? [], loaded?.customRole);
    return scimJson(project(group, input.query), 201, { Location: group.meta.location, ETag: group.meta.version });
  },
});

const GroupPath = "/scim/v2/Groups/{id}";

scimRoute(scimRoutes, {
  method: "get",
  path: GroupPath,
  tags: TAGS,
  summary: "Get a group",
  description:
    "With every member (`value`, `display`, `$ref`): RFC 7644 has no paging of members, so this reads the whole group — send `excludedAttributes=members` (as Entra ID and Okta do) to read none of them. `If-None-Match` with the current ETag → 304.",
  request: { params: GroupParams, query: ScimReadQuery },
  responses: { 200: scimContent(GroupResource, "The group."), 304: { description: "Not modified." } },
  load: ({ db, dir, input }) => ({
    group: groupQuery(db, dir, input.param.id),
    members: wantsMembers(input.query) ? groupMembersQuery(db, dir, input.param.id) : undefined,
  }),
  handle: ({ ctx, input, loaded }, c) => {
    const row = loaded.group[0];
    if (!row) throw notFoundGroup();
    if (notModified(c, row.version)) return new Response(null, { status: 304, headers: withEtag(row) });
    return scimJson(project(groupResource(ctx, row, loaded.members), input.query), 200, withEtag(row));
  },
});

scimRoute(scimRoutes, {
  method: "put",
  path: GroupPath,
  audit: ["scim.group.updated", "member.role_changed"],
  tags: TAGS,
  summary: "Replace a group",
  description: `Replaces displayName, and externalId, members and the role mapping when sent (an omitted one is left as it is; \`null\` / \`[]\` clears it). \`If-Match\` with another version → 412. Replacing the members of a mapped group recomputes the roles of everyone who leaves or joins. ${ROLE_NOTE}`,
  request: { params: GroupParams, query: ScimReadQuery, body: jsonBody(GroupInput) },
  responses: { 200: scimContent(GroupResource, "The group.") },
  load: ({ db, dir, input }) => {
    const ids = input.json.members === undefined ? undefined : memberIds(input.json.members);
    return {
      group: groupQuery(db, dir, input.param.id),
      known: ids && ids.length > 0 ? knownUsersQuery(db, dir, ids) : undefined,
      customRole: customRoleLoad(db, dir, input.json[GROUP_ROLE_SCHEMA]?.role),
      // Members not sent stay as they are; the response shows them unless excluded.
      members: ids === undefined && wantsMembers(input.query) ? groupMembersQuery(db, dir, input.param.id) : undefined,
    };
  },
  handle: async ({ ctx, input, loaded }, c) => {
    const current = loaded.group[0];
    if (!current) throw notFoundGroup();
    checkIfMatch(c, current.version);
    const version = ifMatchVersion(c.req.header("if-match"), current);
    const group = await replaceGroup(ctx, current, input.json, { known: loaded.known ?? [], customRole: loaded.customRole, members: loaded.members }, version);
    return scimJson(project(group, input.query), 200, { ETag: group.meta.version });
  },
});

scimRoute(scimRoutes, {
  method: "patch",
  path: GroupPath,
  audit: ["scim.group.updated", "member.role_changed"],
  tags: TAGS,
  summary: "Patch a group",
  description: `RFC 7644 §3.5.2 as IdPs send it: \`op\` in any case; \`add\` / \`replace\` / \`remove\` on \`members\`; \`remove\` with \`members[value eq "<id>"]\` (or a list joined by \`or\`); \`remove\` of \`members\` with no value (everyone); path-less \`replace\` / \`add\` with an object (\`{displayName}\`, \`{id, displayName}\`). Added members must be users of this directory (400 invalidValue); removing a non-member is not an error. Never reads the group's member list: a few members added to or removed from a group of any size cost a few rows. The operations apply in order and their member changes are written as one net change, a fixed number of statements however many operations. 204 with the new \`ETag\`, or 200 with the group when \`attributes\` / \`excludedAttributes\` is sent. ${ROLE_NOTE}`,
  request: { params: GroupParams, query: ScimReadQuery, body: jsonBody(GroupPatchInput) },
  responses: { 200: scimContent(GroupResource, "The group (when attributes or excludedAttributes is sent)."), 204: noContent },
  load: ({ db, dir, input }) => {
    const plan = tryPlanGroupPatch(input.json.Operations, input.param.id);
    const adds = plan ? [...new Set(plan.adds)] : [];
    return {
      group: groupQuery(db, dir, input.param.id),
      known: adds.length > 0 ? knownUsersQuery(db, dir, adds) : undefined,
      customRole: customRoleLoad(db, dir, plan?.fields.role),
    };
  },
  handle: async ({ ctx, input, loaded }, c) => {
    const plan = planGroupPatch(input.json.Operations, input.param.id);
    const current = loaded.group[0];
    if (!current) throw notFoundGroup();
    checkIfMatch(c, current.version);
    const version = ifMatchVersion(c.req.header("if-match"), current);
    const row = await patchGroup(ctx, current, plan, { known: loaded.known ?? [], customRole: loaded.customRole }, version);
    return patchResponse(ctx, row, input.query, c);
  },
});

async function patchResponse(
  ctx: Parameters<typeof groupResource>[0] & { db: import("../db/client").Db; dir: { configId: string } },
  row: GroupRow,
  query: { attributes?: string; excludedAttributes?: string },
  _c: Context<AppEnv>,
) {
  if (!query.attributes?.trim() && !query.excludedAttributes?.trim()) return new Response(null, { status: 204, headers: withEtag(row) });
  const members = wantsMembers(query) ? await groupMembersQuery(ctx.db, { configId: sql`${ctx.dir.configId}` }, row.id) : undefined;
  return scimJson(project(groupResource(ctx, row, members), query), 200, withEtag(row));
}

scimRoute(scimRoutes, {
  method: "delete",
  path: GroupPath,
  audit: ["scim.group.deleted", "member.role_changed"],
  tags: TAGS,
  summary: "Delete a group",
  description:
    "204. Its members leave it; when it was mapped to a role, every member's role is recomputed in the same batch (one statement, proportional to the group's size). `If-Match` with another version → 412.",
  request: { params: GroupParams },
  responses: { 204: noContent },
  load: ({ db, dir, input }) => groupQuery(db, dir, input.param.id),
  handle: async ({ ctx, loaded }, c) => {
    const current = loaded[0];
    if (!current) throw notFoundGroup();
    checkIfMatch(c, current.version);
    await deleteGroup(ctx, current, ifMatchVersion(c.req.header("if-match"), current));
    return new Response(null, { status: 204 });
  },
});
