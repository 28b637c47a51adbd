import type { Context } from "hono";
import { is } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { SQLiteSelectBase } from "drizzle-orm/sqlite-core";
import { accessQuery, credentialQuery, isGuarded, orgScope, type AccessRow, type OrgScope, type ReadDb, type ReadQuery } from "../db/authz";
import type { AppEnv, Config } from "../env";
import { callerScopes, memberIdOf, type Caller } from "../lib/actor";
import { ApiError, notFound } from "../lib/errors";
import { isId } from "../lib/ids";
import { rolePermissions, scopeFor, scopesAllow, type OrgAccess, type Permission } from "../lib/permissions";
import { callerFromRow, credentialRef, type Presented } from "./authenticate";

/**
 * A member (or service account) of the path's `{org_id}` holding `permission`, narrowed by a
 * token's scopes. With `selfParam`, a caller whose own id is in that path parameter needs only to
 * be a member (leaving an organization); the scope is still required.
 */
export interface OrgRule {
  permission: Permission;
  /** Writes are refused in an inactive organization unless the route says otherwise. */
  allowInactive?: boolean;
  selfParam?: string;
}

type Statements = Record<string, ReadQuery | undefined> | undefined;
/**
 * One statement, or a record of them. A drizzle statement is itself a promise (awaiting it runs
 * it), so an async load, which would run a returned statement on its own, returns a record.
 */
export type LoadResult = ReadQuery | Statements | Promise<Statements>;
type LoadedRecord<R> = R extends undefined ? undefined : { [K in keyof R]: R[K] extends undefined ? undefined : Awaited<R[K]> };
export type Loaded<L> = L extends ReadQuery ? Awaited<L> : L extends Promise<infer R> ? LoadedRecord<R> : LoadedRecord<L>;

export interface LoadArgs<I> {
  db: ReadDb;
  /** The organization, with the guard every statement must read through. */
  org: OrgScope;
  input: I;
  config: Config;
}
export type Load<I, L extends LoadResult> = (args: LoadArgs<I>) => L;

/** Input as the seam judged it: an invalid one waits until the caller is known to be allowed here. */
export type Judged<I> = { ok: true; value: I } | { ok: false; error: ApiError };

const insufficientScope = (needed: string) =>
  new ApiError("insufficient_scope", `This route needs the \`${needed}\` scope.`, { extra: { required_scope: needed } });

async function loadedStatements(result: LoadResult): Promise<[string | null, ReadQuery][]> {
  if (is(result, SQLiteSelectBase)) return checked([[null, result as ReadQuery]]);
  const record = result instanceof Promise ? await result : (result as Statements);
  if (record === undefined) return [];
  if (Array.isArray(record)) throw new Error("an async load returned rows: it must return a record of statements (awaiting one statement runs it)");
  return checked(Object.entries(record).filter((e): e is [string, ReadQuery] => e[1] !== undefined));
}

function checked(entries: [string | null, ReadQuery][]): [string | null, ReadQuery][] {
  for (const [, q] of entries) {
    if (!is(q, SQLiteSelectBase)) throw new Error("a route's load must return select statements");
    // Unguarded, the statement would read for a caller who turns out not to be allowed here,
    // and Server-Timing would report what it read.
    const { sql } = (q as unknown as { toSQL(): { sql: string } }).toSQL();
    if (!isGuarded(sql)) throw new Error(`a route's load must read through org.guard or org.inOrg: ${sql}`);
  }
  return entries;
}

/**
 * The one authorization check for organization routes. The credential (a PAT or key row), the
 * caller's membership and the route's `load` run in one D1 batch; `load` reads through the guard,
 * so for a caller who may not be here it reads nothing and the refusal costs the same whatever
 * the organization holds. Only after the decision is the input's own error (if any) answered,
 * and only then does anything reach the handler.
 */
export async function authorizeOrg<I, L extends LoadResult>(
  c: Context<AppEnv>,
  presented: Presented,
  rule: OrgRule,
  input: Judged<I>,
  load: Load<I, L> | undefined,
): Promise<{ caller: Caller; access: OrgAccess; loaded: Loaded<L> }> {
  const db = c.var.db;
  const orgId = c.req.param("org_id") ?? "";
  const validOrg = isId("organization", orgId);
  const now = Date.now();
  const cred = credentialRef(presented);
  const statements: BatchItem<"sqlite">[] = [];
  if (presented.kind !== "session") statements.push(credentialQuery(db, { kind: presented.kind, hash: presented.hash }));
  let loaded: [string | null, ReadQuery][] = [];
  let inputError = input.ok ? null : input.error;
  if (validOrg) {
    statements.push(accessQuery(db, orgId, cred, now));
    if (input.ok && load) {
      const selfTarget = rule.selfParam ? c.req.param(rule.selfParam) : undefined;
      const org = orgScope(orgId, cred, { permission: rule.permission, selfTarget }, now);
      try {
        loaded = await loadedStatements(load({ db, org, input: input.value, config: c.var.config }));
      } catch (err) {
        // A bad page token or filter is the input's fault: answered like a validation error.
        if (!(err instanceof ApiError)) throw err;
        inputError = err;
      }
    }
  }
  statements.push(...loaded.map(([, q]) => q as unknown as BatchItem<"sqlite">));
  const results: unknown[] =
    statements.length === 0
      ? []
      : statements.length === 1
        ? [await statements[0]]
        : await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);

  const caller = presented.kind === "session" ? presented.actor : callerFromRow(c, presented, (results.shift() as Parameters<typeof callerFromRow>[2][])[0]);
  const scopes = callerScopes(caller);
  // A token that can never pass here is refused for its scopes, whatever the organization.
  if (scopes && !scopesAllow(scopes, rule.permission)) throw insufficientScope(scopeFor(rule.permission));
  if (!validOrg) throw notFound("organization");
  const row = (results.shift() as AccessRow[])[0];
  // Not a member and no such organization look the same from outside.
  if (!row) throw notFound("organization");
  const access = toOrgAccess(orgId, row, scopes);
  const self = rule.selfParam !== undefined && c.req.param(rule.selfParam) === memberIdOf(caller);
  if (!self && !access.permissions.has(rule.permission)) {
    throw new ApiError("forbidden", `Your role \`${access.role}\` lacks the \`${rule.permission}\` permission.`, {
      extra: { required_permission: rule.permission },
    });
  }
  if (!["GET", "HEAD"].includes(c.req.method) && !access.active && !rule.allowInactive) {
    throw new ApiError("organization_inactive", 'The organization is inactive and read-only; reactivate it with PATCH {"active": true}.');
  }
  if (inputError) throw inputError;
  const values = results;
  const out = loaded.length === 0 ? undefined : loaded[0]![0] === null ? values[0] : Object.fromEntries(loaded.map(([k], i) => [k, values[i]]));
  return { caller, access, loaded: out as Loaded<L> };
}

function toOrgAccess(orgId: string, row: AccessRow, scopes: readonly string[] | null): OrgAccess {
  let custom: string[] | null = null;
  if (row.customPermissions) {
    try {
      custom = JSON.parse(row.customPermissions) as string[];
    } catch {
      custom = [];
    }
  }
  const fromRole = rolePermissions(row.role, custom);
  // What the caller can actually do here: the role's permissions, narrowed by a token's scopes.
  const permissions = scopes ? new Set([...fromRole].filter((p) => scopesAllow(scopes, p))) : fromRole;
  return { id: orgId, active: row.active === 1, role: row.role, memberType: row.memberType, memberName: row.memberName, permissions };
}
