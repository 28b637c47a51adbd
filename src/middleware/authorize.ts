import type { Context, MiddlewareHandler } from "hono";
import { and, eq, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Db } from "../db/client";
import type { AppEnv } from "../env";
import { actorScopes, memberIdOf, type Actor } from "../lib/actor";
import { ApiError, notFound } from "../lib/errors";
import { isId } from "../lib/ids";
import { rolePermissions, scopeFor, scopesAllow, type OrgAccess, type Permission, type Scope } from "../lib/permissions";
import { members, organizations, roles, users } from "../db/schema";
import { actorFromCredential, assertSessionLive, authenticate, credentialMemberId, credentialQuery, pendingCredential, verifiedSession } from "./authenticate";

/**
 * Who may call a route. Every route declares one; the tenancy test reads these from the
 * OpenAPI document, so a route without a rule cannot be registered unnoticed.
 */
export type AuthRule =
  /** No credential needed. */
  | { kind: "public" }
  /** Any valid credential, service account keys included. */
  | { kind: "any" }
  /** A user: an access token, or a PAT carrying `scope` when one is named. Service account keys get 403. */
  | { kind: "user"; scope?: Scope }
  /** An interactive session (access token) only: account-level changes no token may make. */
  | { kind: "session" }
  /**
   * A member (or service account) of the path's `{org_id}` holding `permission`, narrowed by
   * scopes. With `selfParam`, a caller whose own id is in that path parameter needs only to be a
   * member (leaving an organization); the scope is still required.
   */
  | OrgRule;

/**
 * With `readInHandler`, the handler's first read joins the authorization read in one D1 round
 * trip (see `authorizedRead`); the middleware only turns anonymous callers away. D1 refuses any
 * statement before that read, and a handler that answers 2xx without calling `authorizedRead`
 * fails loudly instead of serving.
 */
export type OrgRule = { kind: "org"; permission: Permission; allowInactive?: boolean; selfParam?: string; readInHandler?: boolean };

export function describeRule(rule: AuthRule) {
  if (rule.kind === "org") {
    return { kind: rule.kind, permission: rule.permission, scope: scopeFor(rule.permission) };
  }
  if (rule.kind === "user") return { kind: rule.kind, scope: rule.scope ?? null };
  return { kind: rule.kind };
}

/** A token's scopes satisfy `scope` if they name it or its `:write` sibling. */
export function hasScope(scopes: readonly string[], scope: Scope): boolean {
  return scopes.includes(scope) || (scope.endsWith(":read") && scopes.includes(scope.replace(/:read$/, ":write")));
}

const insufficientScope = (needed: string) =>
  new ApiError("insufficient_scope", `This route needs the \`${needed}\` scope.`, { extra: { required_scope: needed } });

export async function requireActor(c: Context<AppEnv>): Promise<Actor> {
  const actor = await authenticate(c);
  if (!actor) {
    throw new ApiError("unauthenticated", "Send `Authorization: Bearer <token>`.", {
      headers: { "WWW-Authenticate": 'Bearer realm="tenancy-api"' },
    });
  }
  return actor;
}

export function authorize(rule: AuthRule): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (rule.kind === "public") return next();
    if (rule.kind === "org" && rule.readInHandler) {
      // Anonymous callers are 401 before validation, as on every other route. (A credential is
      // checked once, in the authorization batch.)
      if (!c.req.header("authorization")) await requireActor(c);
      c.set("deferredOrgRule", rule);
      // Nothing may touch D1 before the authorization batch: a handler that wrote first would
      // write for anyone.
      c.var.dbGate.closedBecause = `${c.req.method} ${c.req.routePath} is authorized by its handler's first read`;
      await next();
      if (c.get("deferredOrgRule")) {
        // The handler stopped before its read (bad input, a malformed id): a caller who may not be
        // here still gets 401/403/404 rather than that answer, as on every other route.
        const failed = c.res.status >= 400;
        c.set("deferredOrgRule", undefined);
        await authorizeOrg(c, rule);
        if (!failed) throw new Error(`${c.req.method} ${c.req.routePath} answered without calling authorizedRead`);
      }
      return;
    }
    if (rule.kind === "org") {
      await authorizeOrg(c, rule);
      return next();
    }
    const actor = await requireActor(c);
    switch (rule.kind) {
      case "any":
        break;
      case "session":
        if (actor.kind !== "session") throw new ApiError("forbidden", "This route needs a signed-in session; tokens and keys cannot use it.");
        break;
      case "user":
        if (actor.kind === "service_account") throw new ApiError("forbidden", "Service account keys cannot use this route.");
        if (actor.kind === "pat" && rule.scope && !hasScope(actor.scopes, rule.scope)) throw insufficientScope(rule.scope);
        break;
    }
    return next();
  };
}

/**
 * Runs a handler's read: on a `readInHandler` route in the same D1 batch as the authorization
 * read (the result is returned only once the caller is authorized), elsewhere on its own.
 */
export async function authorizedRead<Q extends BatchItem<"sqlite">>(c: Context<AppEnv>, query: Q): Promise<Awaited<Q>> {
  const [result] = await authorizedReads(c, [query]);
  return result;
}

/** `authorizedRead` for several statements, all in the one batch. */
export async function authorizedReads<T extends readonly [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]>(c: Context<AppEnv>, queries: T): Promise<{ [K in keyof T]: Awaited<T[K]> }> {
  type Results = { [K in keyof T]: Awaited<T[K]> };
  const rule = c.get("deferredOrgRule");
  const list = [...queries] as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]];
  if (!rule) return (list.length === 1 ? [await list[0]] : await c.var.db.batch(list)) as unknown as Results;
  // Settled here whether it passes or throws: a refusal is not authorized a second time.
  c.set("deferredOrgRule", undefined);
  return (await authorizeOrg(c, rule, list)) as unknown as Results;
}

/** For a `readInHandler` route's path that reads nothing else: authorizes on its own. */
export async function authorizeWithoutRead(c: Context<AppEnv>): Promise<void> {
  const rule = c.get("deferredOrgRule");
  if (!rule) return;
  c.set("deferredOrgRule", undefined);
  await authorizeOrg(c, rule);
}

/** The access read, followed by `extra` statements in the same batch; returns the extras' results. */
async function accessBatch(db: Db, access: ReturnType<typeof accessQuery>, extra: BatchItem<"sqlite">[]): Promise<[AccessRow[], unknown[]]> {
  if (extra.length === 0) return [await access, []];
  const [rows, ...rest] = await db.batch([access, ...extra]);
  return [rows as AccessRow[], rest];
}

async function authorizeOrg(c: Context<AppEnv>, rule: OrgRule, extra: BatchItem<"sqlite">[] = []): Promise<unknown[]> {
  const db = c.var.db;
  // The authorization batch itself opens the gate; what it returns is handed over only if it passes.
  c.var.dbGate.closedBecause = null;
  const orgId = c.req.param("org_id");
  const validOrgId = !!orgId && isId("organization", orgId);
  // The credential is checked alongside the membership read: a PAT or service account key in the
  // same D1 batch (one round trip for both), a session's revocation KV read concurrently with it.
  const pending = validOrgId ? await pendingCredential(c) : null;
  let actor: Actor;
  let rows: AccessRow[] | undefined;
  let extraResults: unknown[] = [];
  if (pending?.kind === "pat" || pending?.kind === "sak") {
    const [credentialRows, accessRows, ...rest] = await db.batch([credentialQuery(db, pending), accessQuery(db, orgId!, credentialMemberId(pending)), ...extra]);
    actor = actorFromCredential(c, pending, credentialRows[0]);
    [rows, extraResults] = [accessRows as AccessRow[], rest];
  } else if (pending?.kind === "access") {
    const session = await verifiedSession(c, pending.token);
    const [, [accessRows, rest]] = await Promise.all([assertSessionLive(c, session), accessBatch(db, accessQuery(db, orgId!, session.userId), extra)]);
    c.set("actor", session);
    [actor, rows, extraResults] = [session, accessRows, rest];
  } else {
    actor = await requireActor(c);
  }
  // Scopes are checked before the database when the actor is known: a token that can never
  // pass costs no further query.
  if (actor.kind !== "session" && !scopesAllow(actor.scopes, rule.permission)) {
    throw insufficientScope(scopeFor(rule.permission));
  }
  if (!validOrgId) throw notFound("organization");
  if (!rows) [rows, extraResults] = await accessBatch(db, accessQuery(db, orgId!, memberIdOf(actor)), extra);
  const row = rows[0];
  // Not a member and no such organization look the same from outside.
  if (!row) throw notFound("organization");
  const access = toOrgAccess(row, actor);
  const self = rule.selfParam !== undefined && c.req.param(rule.selfParam) === memberIdOf(actor);
  if (!self && !access.permissions.has(rule.permission)) {
    throw new ApiError("forbidden", `Your role \`${access.role}\` lacks the \`${rule.permission}\` permission.`, {
      extra: { required_permission: rule.permission },
    });
  }
  const isWrite = !["GET", "HEAD", "OPTIONS"].includes(c.req.method);
  if (isWrite && !access.organization.active && !rule.allowInactive) {
    throw new ApiError("organization_inactive", "The organization is inactive and read-only; reactivate it with PATCH {\"active\": true}.");
  }
  c.set("access", access);
  return extraResults;
}

/**
 * The organization, the caller's membership and role permissions, and the owner, in one
 * round trip. A caller who is not a member gets null, exactly like a missing organization.
 */
function accessQuery(db: Db, orgId: string, memberId: string | SQL) {
  return db
    .select({
      organization: {
        id: organizations.id,
        name: organizations.name,
        slug: organizations.slug,
        description: organizations.description,
        logoDataUri: organizations.logoDataUri,
        active: organizations.active,
        ownerId: organizations.ownerId,
        memberCount: organizations.memberCount,
        supportTeamAccess: organizations.supportTeamAccess,
        ssoAdminBypass: organizations.ssoAdminBypass,
        createdAt: organizations.createdAt,
        updatedAt: organizations.updatedAt,
      },
      role: members.role,
      memberType: members.type,
      // Aliased: the owner's display_name is selected too.
      memberName: sql<string>`${members.displayName}`.as("member_display_name"),
      customPermissions: roles.permissions,
      ownerName: users.displayName,
      ownerEmail: users.email,
    })
    .from(organizations)
    .innerJoin(members, and(eq(members.organizationId, organizations.id), eq(members.memberId, memberId)))
    .leftJoin(roles, and(eq(roles.organizationId, organizations.id), eq(roles.name, members.role)))
    .leftJoin(users, eq(users.id, organizations.ownerId))
    .where(eq(organizations.id, orgId))
    .limit(1);
}

type AccessRow = Awaited<ReturnType<typeof accessQuery>>[number];

function toOrgAccess(row: AccessRow, actor: Actor): OrgAccess {
  const fromRole = rolePermissions(row.role, row.customPermissions);
  const scopes = actorScopes(actor);
  // What the caller can actually do here: the role's permissions, narrowed by a token's scopes.
  const permissions = scopes ? new Set([...fromRole].filter((p) => scopesAllow(scopes, p))) : fromRole;
  return {
    organization: row.organization,
    owner: row.organization.ownerId && row.ownerName && row.ownerEmail ? { id: row.organization.ownerId, displayName: row.ownerName, email: row.ownerEmail } : null,
    role: row.role,
    memberType: row.memberType,
    memberName: row.memberName,
    permissions,
  };
}
