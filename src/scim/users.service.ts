import { republishProfile } from "../routes/auth/auth.service";
import { and, eq, gt, sql, type SQL } from "drizzle-orm";
import { outer } from "../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { Context } from "hono";
import type { ReadDb } from "../db/authz";
import type { Db } from "../db/client";
import { identityProviderConfigs, members, organizations, projectMembers, scimGroups, scimUsers, users } from "../db/schema";
import type { Config } from "../env";
import { isUniqueViolation } from "../lib/errors";
import { newId } from "../lib/ids";
import { seatFreeSql } from "../routes/licenses/seats";
import { serializeMember } from "../routes/members/members.schemas";
import { commit, noChange, type AuditEntry } from "../audit/record";
import type { AuditAction } from "../audit/catalogue";
import { ScimError, scimJson } from "./errors";
import { jsonField, jsonMulti, parseScimFilter, scimFilterSql, type AttrSpec, type FilterNode } from "./filter";
import {
  checkIfMatch,
  etagOf,
  listCursor,
  listFingerprint,
  listTotal,
  listTotalQuery,
  metaAttrs,
  notModified,
  parsePaging,
  projectAttributes,
  rememberPage,
  scimList,
  scimLocation,
  scimMeta,
  type CountedRow,
} from "./resource";
import type { ScimCtx, ScimDirectory, ScimLoadEnv, ScimScope } from "./route";
import {
  CORE_ATTRS,
  coerce,
  ENTERPRISE_ATTRS,
  ENTERPRISE_SCHEMA,
  IGNORED_ATTRS,
  MAX_ATTRIBUTES_BYTES,
  MAX_PATCH_OPERATIONS,
  READ_ONLY_ATTRS,
  toBool,
  USER_SCHEMA,
  type AttrDef,
} from "./users.schemas";

/**
 * SCIM Users of one identity provider config (RFC 7643 §4.1, RFC 7644 §3).
 *
 * A SCIM user is linked to the account whose email is its link key: `userName` when it is an
 * email address, else its primary email (the `primary` one, else the `work` one, else the
 * first). An existing account is linked, never duplicated; otherwise an account is created with
 * no password, its address verified only when it lies in a verified domain of the organization.
 *
 * Account takeover guard: what SCIM says about a person is kept on the scim_users row and on the
 * organization's member row (its display name is the organization's copy). It reaches the account
 * itself (`users.display_name`, `users.email`) only when the account's address — and for an
 * email change, the new address too — is in a verified domain of THIS organization; the condition
 * is part of the UPDATE statement itself. Passwords are never set (`password` is ignored).
 *
 * Membership follows `active`: active → a member of the organization (role from the group
 * mappings, else `user`; within the seat limit), `members.scim_config_id` = this config;
 * inactive or deleted → the membership this config manages is removed with its project grants,
 * in the same batch, and every session and token of the person loses the organization on its
 * very next request (each /v1 organization request reads the membership).
 */

// ---- Documents --------------------------------------------------------------------------------

/** The writable state of a user, canonical keys: userName, externalId, displayName, active, core attributes, and the enterprise extension under its URN. */
export type UserDoc = Record<string, unknown>;

const ENTERPRISE_LOWER = ENTERPRISE_SCHEMA.toLowerCase();
const CORE_LOWER = USER_SCHEMA.toLowerCase();
const COLUMN_DEFS: Record<string, AttrDef> = {
  username: { name: "userName", type: "string" },
  externalid: { name: "externalId", type: "string" },
  displayname: { name: "displayName", type: "string" },
  active: { name: "active", type: "boolean" },
};

/** A POST or PUT body as a document: names matched case-insensitively, values checked, the rest ignored. */
export function docFromBody(body: Record<string, unknown>): UserDoc {
  const doc: UserDoc = {};
  for (const [key, value] of Object.entries(body)) {
    let lower = key.toLowerCase();
    if (lower.startsWith(`${CORE_LOWER}:`)) lower = lower.slice(CORE_LOWER.length + 1);
    if (lower === ENTERPRISE_LOWER) {
      const ent = coerce({ name: ENTERPRISE_SCHEMA, type: "complex", sub: ENTERPRISE_ATTRS }, value, ENTERPRISE_SCHEMA);
      if (ent !== undefined) doc[ENTERPRISE_SCHEMA] = ent;
      continue;
    }
    const def = COLUMN_DEFS[lower] ?? CORE_ATTRS[lower];
    if (!def) continue; // id, meta, groups (read-only), password, schemas, other extensions, unknown
    const v = coerce(def, value, def.name);
    if (v !== undefined) doc[def.name] = v;
  }
  return doc;
}

/** What a document becomes on the row: columns, and the rest as `attributes`. */
export interface Finished {
  userName: string;
  userNameKey: string;
  externalId: string | null;
  displayName: string | null;
  active: boolean;
  attributes: Record<string, unknown>;
  /** The account's link key, lower-cased; null on an update that left the user no email (the link stays). */
  email: string | null;
  /** The name the organization's member row shows. */
  memberName: string;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/;
const isEmail = (v: unknown): v is string => typeof v === "string" && v.length <= 254 && EMAIL.test(v);

export function finish(doc: UserDoc, opts: { requireEmail: boolean } = { requireEmail: true }): Finished {
  const userName = doc.userName;
  if (typeof userName !== "string" || !userName.trim()) throw new ScimError(400, "userName is required.", "invalidValue");
  if (userName.length > 256) throw new ScimError(400, "userName is longer than 256 characters.", "invalidValue");
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc)) if (!["userName", "externalId", "displayName", "active"].includes(k) && v !== undefined) attributes[k] = v;
  if (JSON.stringify(attributes).length > MAX_ATTRIBUTES_BYTES)
    throw new ScimError(400, `The user's attributes exceed ${MAX_ATTRIBUTES_BYTES} bytes.`, "invalidValue");
  const email = opts.requireEmail ? linkEmail(userName, doc.emails) : linkEmailOrNull(userName, doc.emails);
  const name = (doc.name ?? {}) as Record<string, string>;
  const candidates = [doc.displayName, name.formatted, [name.givenName, name.familyName].filter(Boolean).join(" "), userName];
  const memberName = oneLine(candidates.find((c): c is string => typeof c === "string" && oneLine(c) !== "") ?? userName);
  return {
    userName,
    userNameKey: userName.toLowerCase(),
    externalId: typeof doc.externalId === "string" ? doc.externalId : null,
    displayName: typeof doc.displayName === "string" ? doc.displayName : null,
    active: doc.active === undefined ? true : (doc.active as boolean),
    attributes,
    email,
    memberName,
  };
}

// eslint-disable-next-line no-control-regex
const oneLine = (s: string) =>
  s
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .trim()
    .slice(0, 200);

const linkEmailOrNull = (userName: string, emails: unknown) => {
  try {
    return linkEmail(userName, emails);
  } catch {
    return null;
  }
};

/** userName when it is an email address, else the primary email (primary, else work, else first). */
export function linkEmail(userName: string, emails: unknown): string {
  if (isEmail(userName.trim())) return userName.trim().toLowerCase();
  const list = Array.isArray(emails) ? (emails as Record<string, unknown>[]) : [];
  const pick = list.find((e) => e.primary === true) ?? list.find((e) => typeof e.type === "string" && e.type.toLowerCase() === "work") ?? list[0];
  if (pick && isEmail(pick.value)) return pick.value.trim().toLowerCase();
  throw new ScimError(400, "userName must be an email address, or emails must hold one (the account is linked by email).", "invalidValue");
}

// ---- Rows and resources ---------------------------------------------------------------------

const userColumns = {
  id: scimUsers.id,
  userId: scimUsers.userId,
  userName: scimUsers.userName,
  externalId: scimUsers.externalId,
  displayName: scimUsers.displayName,
  active: scimUsers.active,
  attributes: scimUsers.attributes,
  version: scimUsers.version,
  createdAt: scimUsers.createdAt,
  updatedAt: scimUsers.updatedAt,
};

export type ScimUserRow = {
  id: string;
  userId: string;
  userName: string;
  externalId: string | null;
  displayName: string | null;
  active: boolean;
  attributes: Record<string, unknown>;
  version: number;
  createdAt: number;
  updatedAt: number;
};

export function toResource(row: ScimUserRow, config: Pick<Config, "apiBaseUrl">) {
  const { [ENTERPRISE_SCHEMA]: ent, ...core } = row.attributes ?? {};
  return {
    schemas: ent ? [USER_SCHEMA, ENTERPRISE_SCHEMA] : [USER_SCHEMA],
    id: row.id,
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    userName: row.userName,
    ...(row.displayName !== null ? { displayName: row.displayName } : {}),
    active: row.active,
    ...core,
    ...(ent ? { [ENTERPRISE_SCHEMA]: ent } : {}),
    meta: scimMeta("User", row.id, row.createdAt, row.updatedAt, row.version, config),
  };
}

const docOf = (row: ScimUserRow): UserDoc => ({
  userName: row.userName,
  ...(row.externalId !== null ? { externalId: row.externalId } : {}),
  ...(row.displayName !== null ? { displayName: row.displayName } : {}),
  active: row.active,
  ...structuredClone(row.attributes ?? {}),
});

const json = (status: number, row: ScimUserRow, config: Config, extra: Record<string, string> = {}) =>
  scimJson(toResource(row, config), status, { ETag: etagOf(row.version), ...extra });

/** One request's view of the `attributes`/`excludedAttributes` query. */
type Projection = { attributes?: string; excludedAttributes?: string };

// ---- Reads (all through the config guard) ---------------------------------------------------

/** scim_users.organization_id's verified domains include the domain of `email` (SQL text). */
const inVerifiedDomain = (orgId: SQL | string, email: SQL | string) =>
  sql`exists (select 1 from domains scim_d where scim_d.organization_id = ${orgId} and scim_d.verified_at is not null and scim_d.domain = substr(${email}, instr(${email}, '@') + 1))`;

/**
 * The user `id` of this config, found through the (config_id, id) index: by the primary key,
 * another directory's user would be read (and counted in Server-Timing) before its config_id
 * refused it, so a 404's cost would tell that the id exists elsewhere.
 */
const byConfigAndId = (configId: SQL | string, id: string) =>
  sql`"scim_users"."rowid" = (select scim_s.rowid from scim_users scim_s indexed by scim_users_config_id_idx where scim_s.config_id = ${configId} and scim_s.id = ${id})`;

/**
 * One user of the directory, with what a write needs to know about its account and membership
 * (the membership and the role an activation would give are what its member.* events carry).
 */
export function userForWriteQuery(db: ReadDb, configId: SQL | string, id: string) {
  return db
    .select({
      ...userColumns,
      accountEmail: users.email,
      orgActive: sql<number>`(select o.active from organizations o where o.id = ${outer(scimUsers.organizationId)})`.mapWith(Number),
      mappedRole: sql<string>`${mappedRoleSql(outer(scimUsers.id))}`,
      member: sql<
        WriteRow["member"]
      >`(select json_object('role', m.role, 'displayName', m.display_name, 'email', m.email, 'joinedAt', m.joined_at, 'scimConfigId', m.scim_config_id)
        from members m where m.organization_id = ${outer(scimUsers.organizationId)} and m.member_id = ${outer(scimUsers.userId)})`.mapWith((v: string) =>
        JSON.parse(v),
      ),
    })
    .from(scimUsers)
    .innerJoin(users, eq(users.id, scimUsers.userId))
    .where(byConfigAndId(configId, id))
    .limit(1);
}
export type WriteRow = ScimUserRow & {
  accountEmail: string;
  orgActive: number;
  mappedRole: string;
  member: { role: string; displayName: string; email: string; joinedAt: number; scimConfigId: string | null } | null;
};

export function userQuery(db: ReadDb, dir: ScimScope, id: string) {
  return db.select(userColumns).from(scimUsers).where(byConfigAndId(dir.configId, id)).limit(1);
}

const notFound = (id: string) => new ScimError(404, `No user ${id.slice(0, 64)} in this directory.`);

export function getUser(rows: ScimUserRow[] | undefined, id: string, q: Projection, c: Context, config: Config) {
  const row = rows?.[0];
  if (!row) throw notFound(id);
  if (notModified(c, row.version)) return new Response(null, { status: 304, headers: { ETag: etagOf(row.version) } });
  return scimJson(projectAttributes(toResource(row, config), q.attributes, q.excludedAttributes), 200, { ETag: etagOf(row.version) });
}

const ENT_FILTER_PREFIX = `${ENTERPRISE_LOWER}:`;
/** Filterable attributes (RFC 7644 §3.4.2.2); names lower-cased as filter.ts expects. */
export const USER_FILTER: Record<string, AttrSpec> = {
  id: { type: "string", column: scimUsers.id, caseExact: true },
  // user_name_key is the lower-cased userName: eq and sw run on the (config_id, user_name_key) index.
  username: { type: "string", column: scimUsers.userNameKey, folded: true },
  externalid: { type: "string", column: scimUsers.externalId, caseExact: true },
  displayname: { type: "string", column: scimUsers.displayName },
  active: { type: "boolean", column: scimUsers.active },
  title: { type: "string", column: jsonField(scimUsers.attributes, "$.title") },
  usertype: { type: "string", column: jsonField(scimUsers.attributes, "$.userType") },
  "name.givenname": { type: "string", column: jsonField(scimUsers.attributes, "$.name.givenName") },
  "name.familyname": { type: "string", column: jsonField(scimUsers.attributes, "$.name.familyName") },
  "name.formatted": { type: "string", column: jsonField(scimUsers.attributes, "$.name.formatted") },
  emails: jsonMulti(scimUsers.attributes, "$.emails", {
    value: { type: "string" },
    type: { type: "string" },
    primary: { type: "boolean" },
    display: { type: "string" },
  }),
  phonenumbers: jsonMulti(scimUsers.attributes, "$.phoneNumbers", { value: { type: "string" }, type: { type: "string" }, primary: { type: "boolean" } }),
  ...Object.fromEntries(
    ["employeeNumber", "costCenter", "organization", "division", "department"].map((a) => [
      `${ENT_FILTER_PREFIX}${a.toLowerCase()}`,
      { type: "string" as const, column: jsonField(scimUsers.attributes, `$."${ENTERPRISE_SCHEMA}".${a}`) },
    ]),
  ),
  [`${ENT_FILTER_PREFIX}manager.value`]: { type: "string", caseExact: true, column: jsonField(scimUsers.attributes, `$."${ENTERPRISE_SCHEMA}".manager.value`) },
  ...metaAttrs(scimUsers.createdAt, scimUsers.updatedAt),
};

type ListQueryIn = { filter?: string; startIndex?: string; count?: string; attributes?: string; excludedAttributes?: string };

/**
 * A page in id order on the (config_id, id) index, in the seam's batch with its total.
 * The page: after the previous page's last id when this token just read it (resource.ts
 * listCursor: O(count) however deep), else `limit count offset startIndex-1`, which steps over
 * startIndex-1 index entries (a first or a cold deep page).
 * The total: unfiltered, the directory's counter (exact, one row); filtered, a count that stops
 * one page past this one (count=0, a client asking only for the total, gets resource.ts's default
 * reach): exact near the end, else a lower bound past the page, so "while startIndex <=
 * totalResults" still visits every page.
 * A filter that names no indexed column (displayName, name.*, emails…) scans the config's rows.
 */
export async function userListQuery(db: ReadDb, dir: ScimScope, q: ListQueryIn, env: ScimLoadEnv) {
  const paging = parsePaging(q);
  const filter = scimFilterSql(q.filter, USER_FILTER);
  const after = await listCursor(env, await listFingerprint("User", q.filter), paging, "scimUser");
  const where = and(eq(scimUsers.configId, dir.configId), filter, after === null ? undefined : gt(scimUsers.id, after))!;
  const page = db.select(userColumns).from(scimUsers).where(where).orderBy(scimUsers.configId, scimUsers.id).limit(paging.count);
  return {
    page: after === null ? page.offset(paging.offset) : page,
    total: listTotalQuery(
      db,
      dir,
      identityProviderConfigs.scimUserCount,
      scimUsers,
      where,
      paging,
      after !== null,
      filter !== undefined,
      paging.count > 0 ? paging.count : undefined,
    ),
  };
}

export async function userListResponse(ctx: ScimCtx, q: ListQueryIn, loaded: { page: ScimUserRow[]; total: CountedRow[] }) {
  const paging = parsePaging(q);
  const resources = loaded.page.map((r) => projectAttributes(toResource(r, ctx.config), q.attributes, q.excludedAttributes));
  const total = listTotal(loaded.total, paging, loaded.page.length);
  await rememberPage(
    ctx,
    await listFingerprint("User", q.filter),
    paging,
    loaded.page.map((r) => r.id),
    total,
  );
  return scimJson(scimList(resources, { totalResults: total, startIndex: paging.startIndex }));
}

// ---- Membership statements ------------------------------------------------------------------

/**
 * The role a SCIM user's membership gets: the mapped role of their earliest-created mapped group
 * (lowest scim_groups.id, ids being time-ordered) that has one, else `user`.
 */
export const mappedRoleSql = (scimUserId: SQL | string) =>
  sql`coalesce((select scim_g.role from scim_group_members scim_gm join scim_groups scim_g on scim_g.id = scim_gm.group_id where scim_gm.scim_user_id = ${scimUserId} and scim_g.role is not null order by scim_g.id limit 1), 'user')`;

/**
 * For groups (S3): recomputing SCIM-managed members' roles from their groups' mappings
 * (mappedRoleSql), for the given SCIM users of this directory. Only memberships this config
 * manages change, only when the role differs, and never the organization's last human admin
 * (members/last-admin.ts: an IdP group change must not leave an organization without an admin).
 * When one change would demote every remaining admin, none of them is demoted.
 *
 * `update` is the statement; `changed` selects, with the same role and the same condition, the
 * members it will change, as audit rows (member.role_changed: the member as the API returns it,
 * with the new role and `previous_role`), for the entries written right before it. Null for no ids.
 */
export function memberRoleRecomputation(db: Db, dir: ScimDirectory, scimUserIds: string[] | SQL): { update: BatchItem<"sqlite">; changed: SQL } | null {
  if (Array.isArray(scimUserIds) && scimUserIds.length === 0) return null;
  const ids = Array.isArray(scimUserIds) ? sql`(select value from json_each(${JSON.stringify(scimUserIds)}))` : sql`(${scimUserIds})`;
  const scuOf = sql`(select su.id from scim_users su where su.config_id = ${dir.configId} and su.user_id = "members"."member_id")`;
  const role = mappedRoleSql(scuOf);
  const rows = sql`(select su.user_id from scim_users su where su.config_id = ${dir.configId} and su.id in ${ids})`;
  // Whether a human admin stays after this statement: one it would not demote. Every row is judged
  // against the state before the statement, so "another admin exists" would let two admins
  // leaving at once each count on the other. It names no row of the update, so SQLite computes it
  // once per statement, however many rows the statement judges.
  const demotedHere = sql`(a.scim_config_id = ${dir.configId} and a.member_id in ${rows}
    and ${mappedRoleSql(sql`(select su_a.id from scim_users su_a where su_a.config_id = ${dir.configId} and su_a.user_id = a.member_id)`)} <> 'admin')`;
  // `+a.type`: walk the organization's admins (members_org_role_idx), not all its people by type.
  const anAdminStays = sql`exists (select 1 from members a where a.organization_id = ${dir.organizationId} and a.role = 'admin' and +a.type = 'user' and not ${demotedHere})`;
  const changing = and(
    eq(members.organizationId, dir.organizationId),
    // Only people's memberships carry scim_config_id; a `type` term here would lead SQLite
    // to walk the organization's members by type instead of probing these members.
    eq(members.scimConfigId, dir.configId),
    sql`"members"."member_id" in ${rows}`,
    sql`"members"."role" <> ${role}`,
    sql`("members"."role" <> 'admin' or ${role} = 'admin' or ${anAdminStays})`,
  )!;
  return {
    update: db
      .update(members)
      .set({ role: sql`${role}` })
      .where(changing),
    changed: sql`select "members"."type" as target_type, "members"."member_id" as target_id, '["role"]' as changes,
                        ${memberJsonSql(role)} as event_data
                 from "members" where ${changing}`,
  };
}

/**
 * serializeMember (members.schemas.ts) in SQL, for the row of `members` in scope, with `role` as
 * its new role and its current one as `previous_role`: the data of member.role_changed as
 * PATCH …/members/{id} sends it. joined_at is built from whole seconds and the millisecond
 * remainder, as toISOString prints it (SQLite's %f would round through a float).
 */
const memberJsonSql = (role: SQL) =>
  sql`json_object(
        'user', json_object('id', "members"."member_id", 'display_name', "members"."display_name",
                            'email', case when "members"."type" = 'service_account' or "members"."email" = '' then null else "members"."email" end),
        'role', ${role}, 'type', "members"."type",
        'joined_at', strftime('%Y-%m-%dT%H:%M:%S', "members"."joined_at" / 1000, 'unixepoch') || printf('.%03dZ', "members"."joined_at" % 1000),
        'previous_role', "members"."role")`;

/** Makes the account a member (if not already), SCIM-managed by this config, showing the SCIM name. `when` gates every statement. */
function provision(db: Db, dir: ScimDirectory, scimUserId: string, userId: SQL | string, name: string, when: SQL, now: number): BatchItem<"sqlite">[] {
  const org = dir.organizationId;
  return [
    db
      .insert(members)
      .select(
        sql`select ${org}, ${userId}, 'user', ${mappedRoleSql(scimUserId)}, ${name}, ${name.toLowerCase()}, (select u.email from users u where u.id = ${userId}), ${now}, ${dir.configId}
            where ${when}`,
      )
      .onConflictDoNothing(),
    db
      .update(organizations)
      .set({ memberCount: sql`${organizations.memberCount} + 1`, userMemberCount: sql`${organizations.userMemberCount} + 1` })
      .where(and(eq(organizations.id, org), sql`changes() = 1`)),
    // A member who joined by invitation becomes managed by this directory; another config's stays its own.
    db
      .update(members)
      .set({ scimConfigId: sql`coalesce(${members.scimConfigId}, ${dir.configId})`, displayName: name, nameKey: name.toLowerCase() })
      .where(
        and(
          eq(members.organizationId, org),
          eq(members.memberId, userId),
          sql`(${members.scimConfigId} is null or ${members.scimConfigId} = ${dir.configId})`,
          when,
        ),
      ),
  ];
}

/**
 * Ends the membership this config manages, with its project grants; access ends on the person's
 * next request. Its second statement (the counters) changes one row exactly when the membership
 * ended: the audit entries go right after it (MEMBERSHIP_MOVED).
 */
function deprovision(db: Db, dir: ScimDirectory, userId: string, when: SQL): BatchItem<"sqlite">[] {
  const org = dir.organizationId;
  return [
    db.delete(members).where(and(eq(members.organizationId, org), eq(members.memberId, userId), eq(members.scimConfigId, dir.configId), when)),
    db
      .update(organizations)
      .set({
        memberCount: sql`${organizations.memberCount} - 1`,
        userMemberCount: sql`${organizations.userMemberCount} - 1`,
        ownerId: sql`case when ${organizations.ownerId} = ${userId} then null else ${organizations.ownerId} end`,
      })
      .where(and(eq(organizations.id, org), sql`changes() = 1`)),
    db
      .delete(projectMembers)
      .where(
        and(
          eq(projectMembers.organizationId, org),
          eq(projectMembers.memberId, userId),
          sql`not exists (select 1 from members m where m.organization_id = ${org} and m.member_id = ${userId})`,
        ),
      ),
  ];
}

/**
 * What SCIM may write to the account itself: only for an address in a verified domain of this
 * organization (and, for an email change, a new address there too that no other account uses).
 * The members rows elsewhere carry copies of the account's name and email, so they follow.
 */
function accountWrites(db: Db, dir: ScimDirectory, userId: string, next: Finished, when: SQL, now: number): BatchItem<"sqlite">[] {
  const org = dir.organizationId;
  const own = inVerifiedDomain(org, sql`"users"."email"`);
  const name: BatchItem<"sqlite">[] = [
    db
      .update(users)
      .set({ displayName: next.memberName, updatedAt: now })
      .where(and(eq(users.id, userId), sql`"users"."display_name" <> ${next.memberName}`, own, when)),
    db
      .update(members)
      .set({ displayName: next.memberName, nameKey: next.memberName.toLowerCase() })
      .where(and(eq(members.memberId, userId), sql`changes() = 1`)),
  ];
  if (next.email === null) return name;
  return [
    ...name,
    db
      .update(users)
      .set({ email: next.email, emailVerifiedAt: now, updatedAt: now })
      .where(
        and(
          eq(users.id, userId),
          sql`"users"."email" <> ${next.email}`,
          own,
          inVerifiedDomain(org, next.email),
          sql`not exists (select 1 from users u2 where u2.email = ${next.email})`,
          when,
        ),
      ),
    db
      .update(members)
      .set({ email: next.email })
      .where(and(eq(members.memberId, userId), sql`changes() = 1`)),
  ];
}

/** The organization's own copy of the name, on a membership this config manages. */
function memberName(db: Db, dir: ScimDirectory, userId: string, next: Finished, when: SQL) {
  return db
    .update(members)
    .set({ displayName: next.memberName, nameKey: next.memberName.toLowerCase() })
    .where(and(eq(members.organizationId, dir.organizationId), eq(members.memberId, userId), eq(members.scimConfigId, dir.configId), when));
}

// ---- Audit entries and events -----------------------------------------------------------------

/** Index, within provision()'s and deprovision()'s statements, of the counter update that runs only if the membership moved. */
const MEMBERSHIP_MOVED = 1;

/**
 * One condition per action for the entries of one write, placed right after MEMBERSHIP_MOVED:
 * the member.* entry holds when that statement changed a row, the SCIM entry when the write's
 * gate held (`changes()` there is the counter update's; a gate is a fact about rows, true
 * anywhere after the write's first statement).
 */
const byAction = (member: AuditAction, scim: SQL) => sql`(case audit_row.action when ${member} then changes() = 1 else ${scim} end)`;

/**
 * What a scim.user.* event carries: the SCIM user, the account it is linked to, the directory and
 * the organization. Not the SCIM attributes (phone numbers, addresses…): a receiver that needs
 * them reads the user through /scim/v2.
 */
function userEvent(
  dir: ScimDirectory,
  u: { id: string; userId: string; userName: string; externalId: string | null; displayName: string | null; active: boolean },
  email: string | null,
) {
  return {
    id: u.id,
    user_id: u.userId,
    email,
    user_name: u.userName,
    external_id: u.externalId,
    display_name: u.displayName,
    active: u.active,
    organization_id: dir.organizationId,
    identity_provider_config_id: dir.configId,
  };
}

const userTarget = (id: string) => ({ type: "scim_user", id });

/** The SCIM attribute names a write changes (field names only: values may be personal). */
function changedFields(row: ScimUserRow, next: Finished): string[] {
  const out: string[] = [];
  if (next.userName !== row.userName) out.push("userName");
  if (next.externalId !== row.externalId) out.push("externalId");
  if (next.displayName !== row.displayName) out.push("displayName");
  if (next.active !== row.active) out.push("active");
  const before = row.attributes ?? {};
  const keys = [...new Set([...Object.keys(before), ...Object.keys(next.attributes)])].sort();
  for (const k of keys) if (JSON.stringify(before[k]) !== JSON.stringify(next.attributes[k])) out.push(k);
  return out;
}

/** member.added for a membership provision() creates (the role is what mappedRoleSql gives it). */
function memberAdded(userId: string, name: string, email: string, role: string, now: number): AuditEntry {
  const data = serializeMember({ memberId: userId, type: "user", role, displayName: name, email, joinedAt: now });
  return { action: "member.added", target: { type: "user", id: userId }, changes: ["role"], event: { type: "member.added", data } };
}

/** member.removed for the membership deprovision() ends, when this config manages one. */
function memberRemoved(dir: ScimDirectory, row: WriteRow): AuditEntry[] {
  const m = row.member;
  if (!m || m.scimConfigId !== dir.configId) return [];
  const data = {
    ...serializeMember({ memberId: row.userId, type: "user", role: m.role, displayName: m.displayName, email: m.email, joinedAt: m.joinedAt }),
    left: false,
  };
  return [{ action: "member.removed", target: { type: "user", id: row.userId }, event: { type: "member.removed", data } }];
}

// ---- Create ---------------------------------------------------------------------------------

/** What POST reads beside the token: the userName taken?, the account with the link email, the domain and organization. */
export function createQuery(db: ReadDb, dir: ScimScope, body: Record<string, unknown>) {
  let next: Finished;
  try {
    next = finish(docFromBody(body));
  } catch {
    return undefined; // the handler answers the 400, after the token is judged
  }
  const email = next.email!; // finish() requires it on create
  const domain = email.slice(email.lastIndexOf("@") + 1);
  return {
    taken: db
      .select({ id: scimUsers.id })
      .from(scimUsers)
      .where(and(eq(scimUsers.configId, dir.configId), eq(scimUsers.userNameKey, next.userNameKey)))
      .limit(1),
    account: db
      .select({
        id: users.id,
        emailVerifiedAt: users.emailVerifiedAt,
        hasPassword: sql<number>`(${users.passwordHash} is not null)`.mapWith(Number),
        linked: sql<number>`exists (select 1 from scim_users su where su.config_id = ${dir.configId} and su.user_id = "users"."id")`.mapWith(Number),
      })
      .from(users)
      .where(and(eq(users.email, email), sql`${dir.configId} is not null`))
      .limit(1),
    org: db
      .select({
        active: sql<number>`(select o.active from organizations o where o.id = ${outer(identityProviderConfigs.organizationId)})`.mapWith(Number),
        domainVerified:
          sql<number>`exists (select 1 from domains scim_d where scim_d.organization_id = ${outer(identityProviderConfigs.organizationId)} and scim_d.verified_at is not null and scim_d.domain = ${domain})`.mapWith(
            Number,
          ),
      })
      .from(identityProviderConfigs)
      .where(eq(identityProviderConfigs.id, dir.configId))
      .limit(1),
  };
}

type CreateLoaded =
  | {
      taken: { id: string }[];
      account: { id: string; emailVerifiedAt: number | null; hasPassword: number; linked: number }[];
      org: { active: number; domainVerified: number }[];
    }
  | undefined;

const uniqueness = (detail: string) => new ScimError(409, detail, "uniqueness");
const seatsFull = () =>
  new ScimError(
    409,
    "The organization's seats are all taken (members plus pending invitations); free a seat or raise the plan's seats, then retry. The user was not provisioned.",
  );
const inactiveOrg = () => new ScimError(409, "The organization is inactive (read-only): users can be deactivated or deleted, not provisioned.");

export async function createUser(ctx: ScimCtx, body: Record<string, unknown>, loaded: CreateLoaded) {
  const next = finish(docFromBody(body));
  if (!loaded) throw new ScimError(500, "Internal error.");
  if (loaded.taken[0]) throw uniqueness(`userName ${next.userName} already exists in this directory.`);
  const account = loaded.account[0];
  if (account?.linked) throw uniqueness(`The account with email ${next.email} is already linked to another user of this directory.`);
  // A password set on an address nobody proved may be a squatter's: linking would hand them the organization.
  if (account && account.emailVerifiedAt === null && account.hasPassword) {
    throw new ScimError(
      409,
      `An account with email ${next.email} exists but has not verified its address; the person must verify it (or sign in once by SSO) before it can be provisioned.`,
    );
  }
  const org = loaded.org[0];
  if (next.active && !org?.active) throw inactiveOrg();
  const dir = ctx.dir;
  const db = ctx.db;
  const now = Date.now();
  const id = newId("scimUser");
  const userId = account?.id ?? newId("user");
  // An active user needs a seat unless already a member; the account, the SCIM row and the membership go in together or not at all.
  const seatOk = next.active
    ? sql`(exists (select 1 from members m where m.organization_id = ${dir.organizationId} and m.member_id = ${userId}) or ${seatFreeSql(dir.organizationId, now, ctx.config.freePlanSeats)})`
    : sql`1`;
  const statements: BatchItem<"sqlite">[] = [];
  if (!account) {
    statements.push(
      db
        .insert(users)
        .select(sql`select ${userId}, ${next.email!}, ${next.memberName}, null, ${org?.domainVerified ? now : null}, ${now}, ${now} where ${seatOk}`),
    );
  }
  const inserted = db
    .insert(scimUsers)
    .select(
      sql`select ${id}, ${dir.configId}, ${dir.organizationId}, ${userId}, ${next.userName}, ${next.userNameKey}, ${next.externalId}, ${next.displayName}, ${next.active ? 1 : 0}, ${JSON.stringify(next.attributes)}, 1, ${now}, ${now} where ${seatOk}`,
    )
    .returning({ id: scimUsers.id });
  statements.push(inserted, userCountStep(db, dir, 1));
  const mine = sql`exists (select 1 from scim_users s where s.id = ${id})`;
  const provisionAt = statements.length;
  if (next.active) statements.push(...provision(db, dir, id, userId, next.memberName, mine, now));
  if (account) statements.push(...accountWrites(db, dir, userId, next, mine, now));
  const row: ScimUserRow = {
    id,
    userId,
    userName: next.userName,
    externalId: next.externalId,
    displayName: next.displayName,
    active: next.active,
    attributes: next.attributes,
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
  const entries: AuditEntry[] = [
    { action: "scim.user.created", target: userTarget(id), event: { type: "scim.user.created", data: userEvent(dir, row, next.email) } },
  ];
  // A new SCIM user is in no group yet, so provision() gives the membership the role `user`; an
  // account that is already a member keeps its membership (no member.added).
  if (next.active) entries.push(memberAdded(userId, next.memberName, next.email!, "user", now));
  let results: unknown[];
  try {
    results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      organizationId: dir.organizationId,
      entries,
      ...(next.active ? { after: provisionAt + MEMBERSHIP_MOVED, onlyIf: byAction("member.added", mine) } : { onlyIf: mine }),
    });
  } catch (err) {
    throw uniqueOr(err, next);
  }
  const rows = results[account ? 0 : 1] as { id: string }[];
  if (rows.length === 0) throw seatsFull();
  // A linked account's name or email may have changed with it (only in a verified domain).
  if (account) republishProfile(ctx, userId);
  ctx.note(`created user ${next.userName.slice(0, 80)}${account ? " (linked existing account)" : ""}`);
  return json(201, row, ctx.config, { Location: scimLocation(ctx.config, "User", id) });
}

/**
 * The directory's scim_user_count, right after the statement that inserted or deleted its row:
 * `changes() = 1` ties the step to that statement having written (a gated insert that inserted
 * nothing, a delete that lost a race, leave the counter alone).
 */
export function userCountStep(db: Db, dir: ScimDirectory, delta: 1 | -1) {
  return db
    .update(identityProviderConfigs)
    .set({ scimUserCount: sql`${identityProviderConfigs.scimUserCount} + ${delta}` })
    .where(and(eq(identityProviderConfigs.id, dir.configId), sql`changes() = 1`));
}

function uniqueOr(err: unknown, next: Finished): unknown {
  if (isUniqueViolation(err, "scim_users.config_id, scim_users.user_name_key"))
    return uniqueness(`userName ${next.userName} already exists in this directory.`);
  if (isUniqueViolation(err, "scim_users.config_id, scim_users.user_id"))
    return uniqueness(`The account with email ${next.email} is already linked to another user of this directory.`);
  if (isUniqueViolation(err, "users.email")) return new ScimError(409, "The account changed concurrently; retry.");
  return err;
}

// ---- Replace, modify, delete ------------------------------------------------------------------

const RETRY = Symbol("retry");
const MAX_TRIES = 3;

/**
 * Runs a write against the row the seam loaded and, when a concurrent writer moved its version
 * in between (and the client sent no If-Match), against a fresh read, a few times.
 */
async function withRow(
  ctx: ScimCtx,
  c: Context,
  id: string,
  loaded: WriteRow[] | undefined,
  write: (row: WriteRow, pinned: boolean) => Promise<Response | typeof RETRY>,
) {
  let row = loaded?.[0];
  const pinned = !!c.req.header("if-match")?.trim();
  for (let i = 0; i < MAX_TRIES; i++) {
    if (!row) throw notFound(id);
    checkIfMatch(c, row.version);
    const res = await write(row, pinned);
    if (res !== RETRY) return res;
    if (pinned) throw new ScimError(412, "The resource changed while this request ran; read it again.");
    [row] = (await userForWriteQuery(ctx.db, ctx.dir.configId, id)) as WriteRow[];
  }
  throw new ScimError(409, "The user kept changing concurrently; retry.");
}

export function replaceUser(ctx: ScimCtx, c: Context, id: string, body: Record<string, unknown>, loaded: WriteRow[] | undefined) {
  const doc = docFromBody(body);
  return withRow(ctx, c, id, loaded, (row) => {
    const next = finish(doc, { requireEmail: false });
    return save(ctx, row, next, "replaced");
  });
}

export function patchUser(ctx: ScimCtx, c: Context, id: string, body: Record<string, unknown>, loaded: WriteRow[] | undefined) {
  const ops = operationsOf(body);
  return withRow(ctx, c, id, loaded, (row) => {
    const doc = docOf(row);
    for (const op of ops) applyOperation(doc, op, row.id);
    return save(ctx, row, finish(doc, { requireEmail: false }), "patched");
  });
}

/**
 * One write of a user's new state. The UPDATE of the SCIM row comes first and holds both
 * conditions: `version = <read version>` (so two writers cannot both pass; with If-Match this is
 * the 412) and, when it activates the user, the seat check. Every later statement is gated on the
 * row now being exactly this write's result (`mine`), so they all apply or none does.
 */
async function save(ctx: ScimCtx, row: WriteRow, next: Finished, verb: string): Promise<Response | typeof RETRY> {
  const same =
    next.userName === row.userName &&
    next.externalId === row.externalId &&
    next.displayName === row.displayName &&
    next.active === row.active &&
    JSON.stringify(next.attributes) === JSON.stringify(row.attributes);
  if (same) {
    noChange(ctx);
    ctx.note(`${verb} user ${row.userName.slice(0, 80)} (no change)`);
    return json(200, row, ctx.config);
  }
  const activating = next.active && !row.active;
  const deactivating = !next.active && row.active;
  // An inactive organization is read-only; deprovisioning still goes through.
  if (next.active && !row.orgActive) throw inactiveOrg();
  const db = ctx.db;
  const dir = ctx.dir;
  const now = Math.max(Date.now(), row.updatedAt + 1);
  const version = row.version + 1;
  const seatOk = activating
    ? sql`(exists (select 1 from members m where m.organization_id = ${dir.organizationId} and m.member_id = ${row.userId}) or ${seatFreeSql(dir.organizationId, now, ctx.config.freePlanSeats)})`
    : undefined;
  const update = db
    .update(scimUsers)
    .set({
      userName: next.userName,
      userNameKey: next.userNameKey,
      externalId: next.externalId,
      displayName: next.displayName,
      active: next.active,
      attributes: next.attributes,
      version,
      updatedAt: now,
    })
    .where(and(eq(scimUsers.id, row.id), eq(scimUsers.configId, dir.configId), eq(scimUsers.version, row.version), seatOk))
    .returning({ version: scimUsers.version });
  const mine = sql`exists (select 1 from scim_users s where s.id = ${row.id} and s.version = ${version} and s.updated_at = ${now} and s.active = ${next.active ? 1 : 0})`;
  const statements: BatchItem<"sqlite">[] = [update];
  if (activating) statements.push(...provision(db, dir, row.id, row.userId, next.memberName, mine, now));
  else if (deactivating) statements.push(...deprovision(db, dir, row.userId, mine));
  else if (next.active) statements.push(memberName(db, dir, row.userId, next, mine));
  statements.push(...accountWrites(db, dir, row.userId, next, mine, now));
  const changes = changedFields(row, next);
  const data = userEvent(dir, { ...row, ...next }, row.accountEmail);
  const entries: AuditEntry[] = deactivating
    ? [{ action: "scim.user.deprovisioned", target: userTarget(row.id), changes, event: { type: "scim.user.deprovisioned", data } }, ...memberRemoved(dir, row)]
    : [{ action: "scim.user.updated", target: userTarget(row.id), changes, event: { type: "scim.user.updated", data } }];
  if (activating) entries.push(memberAdded(row.userId, next.memberName, row.accountEmail, row.mappedRole, now));
  let results: unknown[];
  try {
    results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      organizationId: dir.organizationId,
      entries,
      // Statement 0 is the update; provision() or deprovision() follows it.
      ...(activating || deactivating
        ? { after: 1 + MEMBERSHIP_MOVED, onlyIf: byAction(activating ? "member.added" : "member.removed", mine) }
        : { onlyIf: mine }),
    });
  } catch (err) {
    throw uniqueOr(err, next);
  }
  if ((results[0] as unknown[]).length === 0) {
    const [current] = await db
      .select({ version: scimUsers.version })
      .from(scimUsers)
      .where(and(eq(scimUsers.id, row.id), eq(scimUsers.configId, dir.configId)));
    if (!current) throw notFound(row.id);
    if (current.version !== row.version) return RETRY;
    throw seatsFull();
  }
  // The account's name or email may have changed with it (only in a verified domain).
  republishProfile(ctx, row.userId);
  ctx.note(`${deactivating ? "deactivated" : activating ? "reactivated" : verb} user ${next.userName.slice(0, 80)}`);
  return json(200, { ...row, ...next, version, updatedAt: now }, ctx.config);
}

export function deleteUser(ctx: ScimCtx, c: Context, id: string, loaded: WriteRow[] | undefined) {
  return withRow(ctx, c, id, loaded, async (row) => {
    const db = ctx.db;
    const dir = ctx.dir;
    const now = Date.now();
    // The delete comes last: until then the row, and so this gate, cannot change within the batch.
    const gate = sql`exists (select 1 from scim_users s where s.id = ${row.id} and s.version = ${row.version})`;
    const statements: BatchItem<"sqlite">[] = [];
    if (row.active) statements.push(...deprovision(db, dir, row.userId, gate));
    // Group memberships cascade with the row; the groups' maintained counts and versions follow.
    statements.push(
      db
        .update(scimGroups)
        .set({ memberCount: sql`${scimGroups.memberCount} - 1`, version: sql`${scimGroups.version} + 1`, updatedAt: now })
        .where(and(sql`${scimGroups.id} in (select gm.group_id from scim_group_members gm where gm.scim_user_id = ${row.id})`, gate)),
      db
        .delete(scimUsers)
        .where(and(eq(scimUsers.id, row.id), eq(scimUsers.configId, dir.configId), eq(scimUsers.version, row.version)))
        .returning({ id: scimUsers.id }),
      userCountStep(db, dir, -1),
    );
    const entries: AuditEntry[] = [
      { action: "scim.user.deleted", target: userTarget(row.id), event: { type: "scim.user.deleted", data: userEvent(dir, row, row.accountEmail) } },
    ];
    if (row.active) entries.push(...memberRemoved(dir, row));
    // Before the delete the gate still holds exactly when the delete will succeed (one transaction).
    const results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      organizationId: dir.organizationId,
      entries,
      after: row.active ? MEMBERSHIP_MOVED : 0,
      onlyIf: row.active ? byAction("member.removed", gate) : gate,
    });
    if ((results[results.length - 2] as unknown[]).length === 0) return RETRY;
    ctx.note(`deleted user ${row.userName.slice(0, 80)}`);
    return new Response(null, { status: 204 });
  });
}

// ---- PATCH (RFC 7644 §3.5.2) ----------------------------------------------------------------

export interface Operation {
  op: "add" | "replace" | "remove";
  path?: string;
  value?: unknown;
}

export function operationsOf(body: Record<string, unknown>): Operation[] {
  const key = Object.keys(body).find((k) => k.toLowerCase() === "operations");
  const list = key ? body[key] : undefined;
  if (!Array.isArray(list) || list.length === 0) throw new ScimError(400, "Operations must be a non-empty array.", "invalidSyntax");
  if (list.length > MAX_PATCH_OPERATIONS) throw new ScimError(400, `At most ${MAX_PATCH_OPERATIONS} operations per request.`, "tooMany");
  return list.map((raw, i) => {
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ScimError(400, `Operations[${i}] must be an object.`, "invalidSyntax");
    const o = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), v]));
    const op = typeof o.op === "string" ? o.op.toLowerCase() : "";
    if (op !== "add" && op !== "replace" && op !== "remove") throw new ScimError(400, `Operations[${i}].op must be add, replace or remove.`, "invalidSyntax");
    if (o.path !== undefined && o.path !== null && typeof o.path !== "string")
      throw new ScimError(400, `Operations[${i}].path must be a string.`, "invalidPath");
    const path = typeof o.path === "string" && o.path.trim() !== "" ? o.path.trim() : undefined;
    if (op !== "remove" && o.value === undefined) throw new ScimError(400, `Operations[${i}] (${op}) needs a value.`, "invalidValue");
    return { op, path, value: o.value } as Operation;
  });
}

interface Target {
  /** The object the attribute lives in (the document, or its enterprise extension). */
  scope: "core" | "enterprise";
  def: AttrDef;
  /** A value filter on a multi-valued attribute. */
  filter?: FilterNode;
  /** A sub-attribute of a complex attribute, or of the elements of a multi-valued one. */
  sub?: AttrDef;
  text: string;
}

const invalidPath = (path: string, why = "names no attribute of a User") => new ScimError(400, `The path "${path.slice(0, 200)}" ${why}.`, "invalidPath");

/** Resolves a PATCH path, or undefined for what a path-less value object may carry and is ignored. */
function resolvePath(text: string, id: string, value: unknown, lenient: boolean): Target | "ignore" | "whole-enterprise" {
  let rest = text;
  let scope: "core" | "enterprise" = "core";
  const lower = text.toLowerCase();
  if (lower === ENTERPRISE_LOWER) return "whole-enterprise";
  if (lower.startsWith(`${ENTERPRISE_LOWER}:`)) {
    scope = "enterprise";
    rest = text.slice(ENTERPRISE_LOWER.length + 1);
  } else if (lower.startsWith(`${CORE_LOWER}:`)) {
    rest = text.slice(CORE_LOWER.length + 1);
  } else if (lower.startsWith("urn:")) {
    if (lenient) return "ignore";
    throw invalidPath(text, "names a schema this server does not support");
  }
  const m = /^([A-Za-z$][A-Za-z0-9_$-]*)(?:\[(.*)\])?(?:\.([A-Za-z$][A-Za-z0-9_$-]*))?$/s.exec(rest);
  if (!m) throw invalidPath(text, "is not a valid attribute path");
  const [, attr, filterText, subName] = m;
  const a = attr!.toLowerCase();
  if (scope === "core") {
    if (a === "id") {
      if (value === id && lenient) return "ignore";
      throw new ScimError(400, "id is immutable.", "mutability");
    }
    if (READ_ONLY_ATTRS.has(a)) {
      if (lenient) return "ignore";
      throw new ScimError(400, `${attr} is read-only.`, "mutability");
    }
    if (IGNORED_ATTRS.has(a)) return "ignore";
  }
  const def = scope === "core" ? (COLUMN_DEFS[a] ?? CORE_ATTRS[a]) : ENTERPRISE_ATTRS[a];
  if (!def) {
    if (lenient) return "ignore";
    throw invalidPath(text);
  }
  const target: Target = { scope, def, text };
  if (filterText !== undefined) {
    if (def.type !== "multi") throw invalidPath(text, "filters an attribute that is not multi-valued");
    try {
      target.filter = parseScimFilter(filterText);
    } catch (err) {
      throw invalidPath(text, `has an invalid value filter (${err instanceof Error ? err.message : "?"})`);
    }
  }
  if (subName !== undefined) {
    if (def.type === "string" || def.type === "boolean") throw invalidPath(text, "names a sub-attribute of a simple attribute");
    const sub = (def as Extract<AttrDef, { sub: unknown }>).sub[subName.toLowerCase()];
    if (!sub) throw invalidPath(text);
    target.sub = sub;
  }
  return target;
}

function applyOperation(doc: UserDoc, op: Operation, id: string) {
  if (!op.path) {
    if (op.op === "remove") throw new ScimError(400, "A remove operation needs a path.", "noTarget");
    if (!op.value || typeof op.value !== "object" || Array.isArray(op.value))
      throw new ScimError(400, `A path-less ${op.op} needs an object value.`, "invalidValue");
    // Each member is applied as if it were the path (Entra ID sends `{"active": "False"}`, `{"name.givenName": …}`, enterprise URNs).
    for (const [k, v] of Object.entries(op.value as Record<string, unknown>)) {
      const t = resolvePath(k, id, v, true);
      if (t === "ignore") continue;
      if (t === "whole-enterprise") applyEnterprise(doc, op.op, v);
      else applyTarget(doc, op.op, t, v);
    }
    return;
  }
  const t = resolvePath(op.path, id, op.value, false);
  if (t === "ignore") return;
  if (t === "whole-enterprise") return applyEnterprise(doc, op.op, op.value);
  applyTarget(doc, op.op, t, op.value);
}

function applyEnterprise(doc: UserDoc, op: Operation["op"], value: unknown) {
  if (op === "remove") {
    delete doc[ENTERPRISE_SCHEMA];
    return;
  }
  const v = coerce({ name: ENTERPRISE_SCHEMA, type: "complex", sub: ENTERPRISE_ATTRS }, value, ENTERPRISE_SCHEMA) as Record<string, unknown> | undefined;
  if (v) doc[ENTERPRISE_SCHEMA] = { ...((doc[ENTERPRISE_SCHEMA] as object) ?? {}), ...v };
}

function applyTarget(doc: UserDoc, op: Operation["op"], t: Target, value: unknown) {
  const holder: Record<string, unknown> = t.scope === "core" ? doc : ((doc[ENTERPRISE_SCHEMA] as Record<string, unknown>) ?? {});
  const name = t.def.name;
  const path = t.text;
  const def = t.def;
  if (def.type === "string" || def.type === "boolean") {
    if (op === "remove") {
      if (name === "userName" || name === "active") throw new ScimError(400, `${name} cannot be removed.`, "mutability");
      delete holder[name];
    } else {
      const v = coerce(def, value, path);
      if (v === undefined) delete holder[name];
      else holder[name] = v;
    }
  } else if (def.type === "complex") {
    const current = (holder[name] as Record<string, unknown>) ?? {};
    if (t.sub) {
      if (op === "remove") delete current[t.sub.name];
      else {
        const v = coerce(t.sub, value, path);
        if (v === undefined) delete current[t.sub.name];
        else current[t.sub.name] = v;
      }
      holder[name] = current;
    } else if (op === "remove") {
      delete holder[name];
    } else {
      // RFC 7644 §3.5.2.1/3: a complex value's sub-attributes are set, the others left as they were.
      const v = coerce(def, value, path) as Record<string, unknown> | undefined;
      if (v === undefined) delete holder[name];
      else holder[name] = { ...current, ...v };
    }
    if (holder[name] && Object.keys(holder[name] as object).length === 0) delete holder[name];
  } else {
    applyMulti(holder, op, t, value);
  }
  if (t.scope === "enterprise") {
    if (Object.keys(holder).length > 0) doc[ENTERPRISE_SCHEMA] = holder;
    else delete doc[ENTERPRISE_SCHEMA];
  }
}

function applyMulti(holder: Record<string, unknown>, op: Operation["op"], t: Target, value: unknown) {
  const def = t.def as Extract<AttrDef, { type: "multi" }>;
  const name = def.name;
  let list = ((holder[name] as Record<string, unknown>[]) ?? []).map((e) => ({ ...e }));
  const put = (l: Record<string, unknown>[]) => {
    const kept = l.filter((e) => Object.keys(e).length > 0);
    if (kept.length) holder[name] = kept;
    else delete holder[name];
  };
  if (!t.filter) {
    if (t.sub) {
      // `emails.value` without a filter: every element (one is created for an add to an empty list).
      if (op === "remove") list.forEach((e) => delete e[t.sub!.name]);
      else {
        const v = coerce(t.sub, value, t.text);
        if (list.length === 0 && op === "add" && v !== undefined) list = [{ [t.sub.name]: v }];
        else list.forEach((e) => (v === undefined ? delete e[t.sub!.name] : (e[t.sub!.name] = v)));
      }
      return put(list);
    }
    if (op === "remove") return put([]);
    const incoming = (coerce(def, value, t.text) as Record<string, unknown>[] | undefined) ?? [];
    if (op === "replace") return put(onePrimary(incoming));
    const merged = [...list];
    for (const el of incoming) {
      const i = merged.findIndex((e) => sameValue(e, el));
      if (i >= 0) merged[i] = { ...merged[i], ...el };
      else merged.push(el);
      if (el.primary === true) merged.forEach((e) => e !== el && e.primary === true && !sameValue(e, el) && delete e.primary);
    }
    return put(merged);
  }
  const hits = list.map((e, i) => (matches(t.filter!, e) ? i : -1)).filter((i) => i >= 0);
  if (hits.length === 0) {
    if (op !== "add") throw new ScimError(400, `No value of ${name} matches "${t.text.slice(0, 200)}".`, "noTarget");
    // Add through a filter that matches nothing: a new value carrying the filter's equalities (Entra ID's `emails[type eq "work"].value`).
    const base: Record<string, unknown> = {};
    equalities(t.filter, def.sub, base);
    const v = t.sub ? coerce(t.sub, value, t.text) : coerce({ name, type: "complex", sub: def.sub }, value, t.text);
    if (v === undefined) return;
    const el = t.sub ? { ...base, [t.sub.name]: v } : { ...base, ...(v as object) };
    return put(onePrimary([...list, el], el));
  }
  if (op === "remove") {
    if (t.sub) hits.forEach((i) => delete list[i]![t.sub!.name]);
    else list = list.filter((_, i) => !hits.includes(i));
    return put(list);
  }
  if (t.sub) {
    const v = coerce(t.sub, value, t.text);
    hits.forEach((i) => (v === undefined ? delete list[i]![t.sub!.name] : (list[i]![t.sub!.name] = v)));
  } else {
    const v = coerce({ name, type: "complex", sub: def.sub }, value, t.text) as Record<string, unknown> | undefined;
    hits.forEach((i) => (list[i] = op === "replace" ? { ...(v ?? {}) } : { ...list[i], ...(v ?? {}) }));
  }
  put(list);
}

const sameValue = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  typeof a.value === "string" && typeof b.value === "string" && a.value.toLowerCase() === b.value.toLowerCase() && (a.type ?? null) === (b.type ?? null);

/** RFC 7643 §2.4: at most one value is primary; the last one named wins. */
function onePrimary(list: Record<string, unknown>[], winner?: Record<string, unknown>) {
  const w = winner?.primary === true ? winner : [...list].reverse().find((e) => e.primary === true);
  for (const e of list) if (e !== w && e.primary === true) delete e.primary;
  return list;
}

function equalities(node: FilterNode, sub: Record<string, AttrDef>, out: Record<string, unknown>) {
  if (node.kind === "and") {
    equalities(node.left, sub, out);
    equalities(node.right, sub, out);
  } else if (node.kind === "compare" && node.op === "eq" && !node.path.sub) {
    const d = sub[node.path.attr];
    if (d && node.value !== null) out[d.name] = d.type === "boolean" ? toBool(node.value, d.name) : node.value;
  }
}

/** A value filter judged on one element in memory (sub-attributes of multi-valued attributes are caseExact false). */
function matches(node: FilterNode, el: Record<string, unknown>): boolean {
  switch (node.kind) {
    case "and":
      return matches(node.left, el) && matches(node.right, el);
    case "or":
      return matches(node.left, el) || matches(node.right, el);
    case "not":
      return !matches(node.expr, el);
    case "valuePath":
      return false;
    case "present": {
      const v = field(el, node.path.attr);
      return v !== undefined && v !== null && v !== "";
    }
    case "compare": {
      const v = field(el, node.path.attr);
      const want = node.value;
      if (want === null) return node.op === "eq" ? v === undefined || v === null : v !== undefined && v !== null;
      if (v === undefined || v === null) return node.op === "ne";
      if (typeof v === "boolean" || typeof want === "boolean") {
        const b = typeof want === "boolean" ? want : String(want).toLowerCase() === "true";
        const have = typeof v === "boolean" ? v : String(v).toLowerCase() === "true";
        return node.op === "eq" ? have === b : node.op === "ne" ? have !== b : false;
      }
      const a = String(v).toLowerCase();
      const b = String(want).toLowerCase();
      switch (node.op) {
        case "eq":
          return a === b;
        case "ne":
          return a !== b;
        case "co":
          return a.includes(b);
        case "sw":
          return a.startsWith(b);
        case "ew":
          return a.endsWith(b);
        case "gt":
          return a > b;
        case "ge":
          return a >= b;
        case "lt":
          return a < b;
        case "le":
          return a <= b;
      }
    }
  }
}

const field = (el: Record<string, unknown>, key: string) => {
  const k = Object.keys(el).find((x) => x.toLowerCase() === key);
  return k === undefined ? undefined : el[k];
};
