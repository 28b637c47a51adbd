import type { Context } from "hono";
import { eq, sql, type SQL } from "drizzle-orm";
import type { AppEnv } from "../env";
import type { Actor } from "../lib/actor";
import { sha256Hex } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { verifyAccessToken } from "../lib/jwt";
import { kvKeys } from "../lib/kv-keys";
import type { Scope } from "../lib/permissions";
import type { Db } from "../db/client";
import { personalAccessTokens, serviceAccountKeys, serviceAccounts } from "../db/schema";
import { backgroundDb } from "../queue/outbox";

/** last_used_at is written at most once a minute per token, never on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

const unauthenticated = (detail: string) =>
  new ApiError("unauthenticated", detail, { headers: { "WWW-Authenticate": 'Bearer realm="tenancy-api"' } });

/** A PAT or service account key whose row has not been read yet. */
export type StoredCredential = { kind: "pat" | "sak"; hash: string };

export type Bearer = { kind: "none" } | { kind: "access"; token: string } | StoredCredential;

async function readBearer(c: Context<AppEnv>): Promise<Bearer> {
  const header = c.req.header("authorization");
  if (!header) return { kind: "none" };
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,4096})$/i.exec(header.trim());
  if (!m) throw unauthenticated("The Authorization header must be `Bearer <token>`.");
  const token = m[1]!;
  if (token.startsWith("pat_")) return { kind: "pat", hash: await sha256Hex(token) };
  if (token.startsWith("sak_")) return { kind: "sak", hash: await sha256Hex(token) };
  if (token.startsWith("scim_")) throw unauthenticated("SCIM tokens are accepted on /scim/v2 only.");
  return { kind: "access", token };
}

/**
 * Resolves the Authorization header to an actor, or null when there is none. A present but
 * invalid credential is always 401: never silently treated as anonymous.
 */
export async function authenticate(c: Context<AppEnv>): Promise<Actor | null> {
  const cached = c.get("actor");
  if (cached !== undefined) return cached;
  const bearer = await readBearer(c);
  let actor: Actor | null;
  if (bearer.kind === "none") actor = null;
  else if (bearer.kind === "access") actor = await authenticateAccessToken(c, bearer.token);
  else {
    const rows = await credentialQuery(c.var.db, bearer);
    actor = actorFromCredential(c, bearer, rows[0]);
  }
  c.set("actor", actor);
  return actor;
}

/**
 * The credential in the header, not yet checked, when the actor is not known yet: organization
 * routes check it alongside the membership read (a PAT or key in the same D1 batch, a session's
 * revocation read concurrently with it), saving a round trip.
 */
export async function pendingCredential(c: Context<AppEnv>): Promise<Bearer | null> {
  if (c.get("actor") !== undefined) return null;
  return readBearer(c);
}

/** The member id a stored credential acts as, as SQL, for joining before the row is read. */
export function credentialMemberId(credential: StoredCredential): SQL {
  return credential.kind === "pat"
    ? sql`(select ${personalAccessTokens.userId} from ${personalAccessTokens} where ${personalAccessTokens.tokenHash} = ${credential.hash})`
    : sql`(select ${serviceAccountKeys.serviceAccountId} from ${serviceAccountKeys} where ${serviceAccountKeys.keyHash} = ${credential.hash})`;
}

type CredentialRow = {
  id: string;
  memberId: string;
  organizationId: string | null;
  scopes: string[];
  expiresAt: number | null;
  lastUsedAt: number | null;
};

export function credentialQuery(db: Db, credential: StoredCredential) {
  if (credential.kind === "pat") {
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
      .where(eq(personalAccessTokens.tokenHash, credential.hash))
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
    .where(eq(serviceAccountKeys.keyHash, credential.hash))
    .limit(1);
}

/** Validates a credential row read by `credentialQuery`, records the actor, and returns it. */
export function actorFromCredential(c: Context<AppEnv>, credential: StoredCredential, row: CredentialRow | undefined): Actor {
  const now = Date.now();
  // A rotated-out key works until the end of its grace period, not a moment longer.
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) {
    throw unauthenticated(
      credential.kind === "pat" ? "The personal access token is invalid, revoked or expired." : "The service account key is invalid, rotated or revoked.",
    );
  }
  if (row.lastUsedAt === null || now - row.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
    // After the response and off the request's cost report: bookkeeping, not the caller's work.
    const db = backgroundDb(c.env);
    const write =
      credential.kind === "pat"
        ? db.update(personalAccessTokens).set({ lastUsedAt: now }).where(eq(personalAccessTokens.id, row.id))
        : db.update(serviceAccounts).set({ lastUsedAt: now }).where(eq(serviceAccounts.id, row.memberId));
    c.executionCtx.waitUntil(
      write.then(
        () => undefined,
        () => undefined,
      ),
    );
  }
  const actor: Actor =
    credential.kind === "pat"
      ? { kind: "pat", userId: row.memberId, tokenId: row.id, scopes: row.scopes as Scope[] }
      : { kind: "service_account", serviceAccountId: row.memberId, organizationId: row.organizationId!, keyId: row.id, scopes: row.scopes as Scope[] };
  c.set("actor", actor);
  return actor;
}

async function authenticateAccessToken(c: Context<AppEnv>, token: string): Promise<Actor> {
  const actor = await verifiedSession(c, token);
  await assertSessionLive(c, actor);
  return actor;
}

/** The session an access token names, from its signature alone (no I/O). */
export async function verifiedSession(c: Context<AppEnv>, token: string): Promise<Extract<Actor, { kind: "session" }>> {
  const claims = await verifyAccessToken(c.var.config.jwtSigningKeys, token);
  if (!claims) throw unauthenticated("The access token is invalid or expired.");
  return { kind: "session", userId: claims.sub, sessionId: claims.sid, tokenExp: claims.exp };
}

/**
 * The one KV read of an authenticated request: logout, password change and account deletion
 * revoke the session here, effective on the very next request.
 */
export async function assertSessionLive(c: Context<AppEnv>, actor: Extract<Actor, { kind: "session" }>): Promise<void> {
  const revoked = await c.var.kv.get(kvKeys.revokedSession(actor.sessionId, c.var.config.accessTokenTtlSeconds).key);
  if (revoked !== null) throw unauthenticated("The session has ended.");
}
