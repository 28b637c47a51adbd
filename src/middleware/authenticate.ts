import type { Context } from "hono";
import { eq } from "drizzle-orm";
import type { AppEnv } from "../env";
import type { Actor } from "../lib/actor";
import { sha256Hex } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { verifyAccessToken } from "../lib/jwt";
import { kvKeys } from "../lib/kv-keys";
import type { Scope } from "../lib/permissions";
import { personalAccessTokens, serviceAccountKeys, serviceAccounts } from "../db/schema";
import { backgroundDb } from "../queue/outbox";

/** last_used_at is written at most once a minute per token, never on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

const unauthenticated = (detail: string) =>
  new ApiError("unauthenticated", detail, { headers: { "WWW-Authenticate": 'Bearer realm="tenancy-api"' } });

/**
 * Resolves the Authorization header to an actor, or null when there is none. A present but
 * invalid credential is always 401: never silently treated as anonymous.
 */
export async function authenticate(c: Context<AppEnv>): Promise<Actor | null> {
  const cached = c.get("actor");
  if (cached !== undefined) return cached;
  const header = c.req.header("authorization");
  if (!header) {
    c.set("actor", null);
    return null;
  }
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,4096})$/i.exec(header.trim());
  if (!m) throw unauthenticated("The Authorization header must be `Bearer <token>`.");
  const token = m[1]!;
  let actor: Actor;
  if (token.startsWith("pat_")) actor = await authenticatePat(c, token);
  else if (token.startsWith("scim_")) throw unauthenticated("SCIM tokens are accepted on /scim/v2 only.");
  else if (token.startsWith("sak_")) actor = await authenticateServiceAccountKey(c, token);
  else actor = await authenticateAccessToken(c, token);
  c.set("actor", actor);
  return actor;
}

async function authenticateAccessToken(c: Context<AppEnv>, token: string): Promise<Actor> {
  const config = c.var.config;
  const claims = await verifyAccessToken(config.jwtSigningKeys, token);
  if (!claims) throw unauthenticated("The access token is invalid or expired.");
  // The one KV read of an authenticated request: logout, password change and account deletion
  // revoke the session here, effective on the very next request.
  const revoked = await c.var.kv.get(kvKeys.revokedSession(claims.sid, config.accessTokenTtlSeconds).key);
  if (revoked !== null) throw unauthenticated("The session has ended.");
  return { kind: "session", userId: claims.sub, sessionId: claims.sid, tokenExp: claims.exp };
}

async function authenticatePat(c: Context<AppEnv>, token: string): Promise<Actor> {
  const hash = await sha256Hex(token);
  const [row] = await c.var.db
    .select({
      id: personalAccessTokens.id,
      userId: personalAccessTokens.userId,
      scopes: personalAccessTokens.scopes,
      expiresAt: personalAccessTokens.expiresAt,
      lastUsedAt: personalAccessTokens.lastUsedAt,
    })
    .from(personalAccessTokens)
    .where(eq(personalAccessTokens.tokenHash, hash))
    .limit(1);
  const now = Date.now();
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) {
    throw unauthenticated("The personal access token is invalid, revoked or expired.");
  }
  if (row.lastUsedAt === null || now - row.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
    // After the response and off the request's cost report: bookkeeping, not the caller's work.
    c.executionCtx.waitUntil(
      backgroundDb(c.env)
        .update(personalAccessTokens)
        .set({ lastUsedAt: now })
        .where(eq(personalAccessTokens.id, row.id))
        .then(
          () => undefined,
          () => undefined,
        ),
    );
  }
  return { kind: "pat", userId: row.userId, tokenId: row.id, scopes: row.scopes as Scope[] };
}

async function authenticateServiceAccountKey(c: Context<AppEnv>, token: string): Promise<Actor> {
  const hash = await sha256Hex(token);
  const [row] = await c.var.db
    .select({
      keyId: serviceAccountKeys.id,
      expiresAt: serviceAccountKeys.expiresAt,
      serviceAccountId: serviceAccounts.id,
      organizationId: serviceAccounts.organizationId,
      scopes: serviceAccounts.scopes,
      lastUsedAt: serviceAccounts.lastUsedAt,
    })
    .from(serviceAccountKeys)
    .innerJoin(serviceAccounts, eq(serviceAccounts.id, serviceAccountKeys.serviceAccountId))
    .where(eq(serviceAccountKeys.keyHash, hash))
    .limit(1);
  const now = Date.now();
  // A rotated-out key works until the end of its grace period, not a moment longer.
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) throw unauthenticated("The service account key is invalid, rotated or revoked.");
  if (row.lastUsedAt === null || now - row.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
    c.executionCtx.waitUntil(
      backgroundDb(c.env)
        .update(serviceAccounts)
        .set({ lastUsedAt: now })
        .where(eq(serviceAccounts.id, row.serviceAccountId))
        .then(
          () => undefined,
          () => undefined,
        ),
    );
  }
  return { kind: "service_account", serviceAccountId: row.serviceAccountId, organizationId: row.organizationId, keyId: row.keyId, scopes: row.scopes as Scope[] };
}
