import { and, eq, sql, type SQL } from "drizzle-orm";
import { outer } from "./schema/columns";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { builtInRolesGranting, scopesGranting, type Permission } from "../lib/permissions";
import type { Db } from "./client";
import { members, personalAccessTokens, serviceAccountKeys, serviceAccounts } from "./schema";

/**
 * The SQL side of authorization: who a credential is, what it may do in an organization, and the
 * guard that keeps a route's read from reading anything for a caller who may not be there. The
 * route seam (middleware/authorize.ts) runs these in one D1 batch; nothing else builds them.
 */

// Only names from code's own constant lists are inlined; anything else is a bug.
const literal = (values: readonly string[]) => {
  for (const v of values) if (!/^[a-z_:]+$/.test(v)) throw new Error(`not a safe SQL literal: ${v}`);
  return sql.raw(values.length ? values.map((v) => `'${v}'`).join(", ") : "null");
};

/** A PAT or service account key as presented, hashed, before its row is read. */
export type StoredCredential = { kind: "pat" | "sak"; hash: string };

/** The caller as SQL can name it before the batch runs: a session's user id is already known. */
export type CredentialRef = { kind: "session"; userId: string } | StoredCredential;

/**
 * The member id the credential acts as: a literal, or a subquery that is NULL for an unknown or
 * expired token, and, when `scopes` are given, for a token holding none of them.
 */
function memberIdSql(cred: CredentialRef, now: number, scopes?: readonly string[]): SQL | string {
  if (cred.kind === "session") return cred.userId;
  const scoped = (column: SQL) => (scopes ? sql` and exists (select 1 from json_each(${column}) authz_s where authz_s.value in (${literal(scopes)}))` : sql``);
  if (cred.kind === "pat") {
    return sql`(select p.user_id from personal_access_tokens p where p.token_hash = ${cred.hash} and (p.expires_at is null or p.expires_at > ${now})${scoped(sql`p.scopes`)})`;
  }
  const account = scopes ? sql` join service_accounts s on s.id = k.service_account_id` : sql``;
  return sql`(select k.service_account_id from service_account_keys k${account} where k.key_hash = ${cred.hash} and (k.expires_at is null or k.expires_at > ${now})${scoped(sql`s.scopes`)})`;
}

/** The stored PAT or key row: who it is, its scopes and its expiry. */
export function credentialQuery(db: Db, cred: StoredCredential) {
  if (cred.kind === "pat") {
    return db
      .select({
        id: personalAccessTokens.id,
        memberId: personalAccessTokens.userId,
        organizationId: sql<string | null>`null`.as("organization_id"),
        scopes: personalAccessTokens.scopes,
        expiresAt: personalAccessTokens.expiresAt,
        lastUsedAt: personalAccessTokens.lastUsedAt,
      })
      .from(personalAccessTokens)
      .where(eq(personalAccessTokens.tokenHash, cred.hash))
      .limit(1);
  }
  return db
    .select({
      id: serviceAccountKeys.id,
      memberId: serviceAccountKeys.serviceAccountId,
      organizationId: serviceAccounts.organizationId,
      scopes: serviceAccounts.scopes,
      expiresAt: serviceAccountKeys.expiresAt,
      lastUsedAt: serviceAccounts.lastUsedAt,
    })
    .from(serviceAccountKeys)
    .innerJoin(serviceAccounts, eq(serviceAccounts.id, serviceAccountKeys.serviceAccountId))
    .where(eq(serviceAccountKeys.keyHash, cred.hash))
    .limit(1);
}

export type CredentialRow = Awaited<ReturnType<typeof credentialQuery>>[number];

/**
 * The caller's membership in one organization: role, its stored permissions (custom roles), and
 * whether the organization is active. Driven by the members primary key alone, so a caller who
 * is not a member reads no row at all, whether or not the organization exists.
 */
export function accessQuery(db: Db, orgId: string, cred: CredentialRef, now: number) {
  return db
    .select({
      role: members.role,
      memberType: members.type,
      memberName: members.displayName,
      active: sql<number>`(select o.active from organizations o where o.id = ${outer(members.organizationId)})`,
      customPermissions: sql<
        string | null
      >`(select r.permissions from roles r where r.organization_id = ${outer(members.organizationId)} and r.name = ${outer(members.role)})`,
    })
    .from(members)
    .where(and(eq(members.organizationId, orgId), eq(members.memberId, memberIdSql(cred, now))))
    .limit(1);
}

export type AccessRow = Awaited<ReturnType<typeof accessQuery>>[number];

/** Only what reads: a route's load is handed this, so it cannot insert, update or delete. */
export type ReadDb = Pick<Db, "select" | "selectDistinct">;

/**
 * A select statement (or a compound of selects): what a load may return. Typed by what only
 * select builders carry (`selectMode`), so an insert, update or delete, with or without
 * `returning`, does not fit; the seam checks the class at run time too.
 */
export type ReadQuery = PromiseLike<unknown> & { readonly _: { readonly selectMode: unknown; readonly result: unknown } };

/** The alias every guard reads the caller's membership under; the seam looks for it in each load. */
export const GUARD_ALIAS = "authz";
const GUARD_MARK = /\bmembers authz\b/;

/** True when a statement's SQL carries the guard. */
export const isGuarded = (statementSql: string) => GUARD_MARK.test(statementSql);

/**
 * What a route's `load` reads through: the organization, and a guard that lets its statements
 * read only for an authorized caller.
 *
 * Why a value and not a WHERE condition: SQLite evaluates an `exists (…)` condition row by row,
 * after the index has been walked, so the rows are read (and reported in Server-Timing) even
 * when the answer is no. A scalar subquery used as the value of an indexed equality is computed
 * once, before the walk; for a caller who may not act here it is NULL, and `col = NULL` walks
 * nothing. Put the guard on the leading column of the index the statement uses.
 */
export interface OrgScope {
  readonly id: string;
  /** `value` if the caller may act here, else NULL. */
  guard(value: string): SQL;
  /** `column = <this organization's id>` for an authorized caller; matches nothing otherwise. */
  inOrg(column: SQLiteColumn): SQL;
  /**
   * True when the caller also holds `permission` here (its token scopes included): for rules a
   * route applies inside its query, such as which private projects a caller sees. Use it in a
   * WHERE clause next to an indexed guard, never as the only condition.
   */
  holds(permission: Permission): SQL;
  /** The caller's member id (`usr_…` or `sa_…`) as SQL; NULL for an unknown or expired token. */
  readonly callerId: SQL;
}

/** The caller's role grants `permission` (built-in list inline, custom roles by their stored list). */
function permittedSql(alias: string, permission: Permission): SQL {
  const a = sql.raw(alias);
  return sql`(${a}.role in (${literal(builtInRolesGranting(permission))}) or exists (
      select 1 from roles ${sql.raw(`${alias}_r`)}, json_each(${sql.raw(`${alias}_r`)}.permissions) ${sql.raw(`${alias}_p`)}
      where ${sql.raw(`${alias}_r`)}.organization_id = ${a}.organization_id and ${sql.raw(`${alias}_r`)}.name = ${a}.role and ${sql.raw(`${alias}_p`)}.value = ${literal([permission])}))`;
}

export function orgScope(orgId: string, cred: CredentialRef, rule: { permission: Permission; selfTarget?: string }, now: number): OrgScope {
  // A token reads only if it is live and holds a scope that grants the permission.
  const memberId = memberIdSql(cred, now, scopesGranting(rule.permission));
  const self = rule.selfTarget === undefined ? sql`` : sql`authz.member_id = ${rule.selfTarget} or `;
  const permitted = sql`(${self}${permittedSql("authz", rule.permission)})`;
  const guard = (value: string) =>
    sql`(select ${value} from members authz where authz.organization_id = ${orgId} and authz.member_id = ${memberId} and ${permitted})`;
  const holds = (permission: Permission) =>
    sql`exists (select 1 from members authz_h where authz_h.organization_id = ${orgId} and authz_h.member_id = ${memberIdSql(cred, now, scopesGranting(permission))} and ${permittedSql("authz_h", permission)})`;
  const caller = memberIdSql(cred, now);
  const callerId = typeof caller === "string" ? sql`${caller}` : caller;
  return { id: orgId, guard, inOrg: (column) => sql`${column} = ${guard(orgId)}`, holds, callerId };
}
