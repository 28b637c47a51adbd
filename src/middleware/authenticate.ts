import { hasSecretPrefix, ID_PREFIXES, idKindOf } from "../lib/ids";
import type { Context } from "hono";
import { eq } from "drizzle-orm";
import { credentialQuery, type CredentialRef, type CredentialRow, type StoredCredential } from "../db/authz";
import { backgroundDb } from "../db/client";
import { personalAccessTokens, serviceAccounts } from "../db/schema";
import type { AppEnv } from "../env";
import type { Caller, SessionActor } from "../lib/actor";
import { sha256Hex } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { verifyAccessToken, type AccessClaims } from "../lib/jwt";
import { iso } from "../lib/time";
import type { SessionUser } from "../lib/jwt";
import { kvKeys } from "../lib/kv-keys";
import type { Scope } from "../lib/permissions";
import { clientSubject } from "../lib/rate-limit";
import { admit, clientIp, countHit, rateLimited, readCounters, report, type Reading } from "./rate-limit";

/** last_used_at is written at most once a minute per token, never on every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

export const unauthenticated = (detail: string) => new ApiError("unauthenticated", detail, { headers: { "WWW-Authenticate": 'Bearer realm="tenancy-api"' } });

/**
 * The credential a request presents, checked as far as it can be without D1: an access token's
 * signature, expiry and revocation; a PAT's or key's hash, whose row the seam reads in its batch.
 */
export type Presented = { kind: "session"; actor: SessionActor } | (StoredCredential & { invalidFromClient: Reading });

/** The credential as the authorization SQL names it. */
export const credentialRef = (p: Presented): CredentialRef =>
  p.kind === "session" ? { kind: "session", userId: p.actor.userId } : { kind: p.kind, hash: p.hash };

/**
 * Reads the Authorization header. Absent: null. Present but malformed, forged, expired or
 * revoked: 401, never treated as anonymous. Every credential draws on its own rate limit, and a
 * session's revocation entry is read in the same KV call: one KV read per request. `profile`:
 * the route answers with the signed-in user (GET /v1/me), so the profile a change published since
 * the token was minted is read in that call too; KV bills every key, so no other route reads it.
 */
export async function presentedCredential(c: Context<AppEnv>, { profile = false }: { profile?: boolean } = {}): Promise<Presented | null> {
  const header = c.req.header("authorization");
  if (!header) return null;
  const m = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,4096})$/i.exec(header.trim());
  if (!m) throw unauthenticated("The Authorization header must be `Bearer <token>`.");
  const token = m[1]!;
  if (hasSecretPrefix("scimToken", token)) throw unauthenticated("SCIM tokens are accepted on /scim/v2 only.");
  const pastedId = idKindOf(token);
  if (pastedId)
    throw unauthenticated(
      `\`${ID_PREFIXES[pastedId]}_…\` is an id, not a credential: send an access token, a personal access token (pat_…) or a service account key (sak_…).`,
    );
  const kind = hasSecretPrefix("personalAccessToken", token) ? "pat" : hasSecretPrefix("serviceAccountKey", token) ? "sak" : null;
  if (kind) {
    const hash = await sha256Hex(token);
    // Its own budget, and (in the same KV call) the client's budget of tokens that turned out not
    // to exist: every made-up token would otherwise have a fresh budget and cost a D1 read.
    const { readings } = await readCounters(c, [
      { bucket: "credential", subject: `${kind}:${hash}`, limit: c.var.config.credentialRateLimitPerMinute, windowSeconds: 60 },
      { bucket: "invalid-credential", subject: clientSubject(clientIp(c)), limit: c.var.config.clientRateLimitPerMinute, windowSeconds: 60 },
    ]);
    const [own, invalid] = readings as [Reading, Reading];
    for (const r of [own, invalid]) {
      report(c, r);
      if (r.exceeded) throw rateLimited(r.state);
    }
    countHit(c, own);
    return { kind, hash, invalidFromClient: invalid };
  }
  const claims = await verifyAccessToken(c.var.config, token);
  if (!claims) throw unauthenticated("The access token is invalid or expired.");
  const actor: SessionActor = { kind: "session", userId: claims.sub, sessionId: claims.sid, tokenExp: claims.exp, authTime: claims.authTime };
  // Logout, password change and account deletion revoke the session here, effective on the very
  // next request.
  const ttl = c.var.config.accessTokenTtlSeconds;
  const revocation = kvKeys.revokedSession(actor.sessionId, ttl).key;
  const published = profile ? kvKeys.userProfile(actor.userId, ttl).key : null;
  await admit(
    c,
    { bucket: "credential", subject: `ses:${actor.sessionId}`, limit: c.var.config.credentialRateLimitPerMinute, windowSeconds: 60 },
    published ? [revocation, published] : [revocation],
    (also) => {
      if (also.get(revocation) != null) throw unauthenticated("The session has ended.");
      if (published) c.set("sessionUser", currentProfile(claims, also.get(published) ?? null));
    },
  );
  return { kind: "session", actor };
}

/** The user as of now: the token's claims, unless a profile published since is newer (publishProfile). */
function currentProfile(claims: AccessClaims, published: string | null): SessionUser {
  const p = claims.profile;
  const fromToken: SessionUser = {
    id: claims.sub,
    email: p.email,
    display_name: p.name,
    email_verified: p.emailVerified,
    created_at: iso(p.createdAt),
    updated_at: iso(p.updatedAt),
  };
  if (published === null) return fromToken;
  let stored: SessionUser;
  try {
    stored = JSON.parse(published) as SessionUser;
  } catch {
    return fromToken;
  }
  // By `updated_at`, not by which was written last: a refresh that read the row just before a
  // change mints a token older than the published copy, whatever order the two finish in.
  return stored.id === claims.sub && Date.parse(stored.updated_at) > p.updatedAt ? stored : fromToken;
}

/**
 * Turns a PAT or key row read in the seam's batch into the caller, or 401. A rotated-out key
 * works until the end of its grace period, not a moment longer.
 */
export function callerFromRow(c: Context<AppEnv>, presented: Exclude<Presented, { kind: "session" }>, row: CredentialRow | undefined): Caller {
  const now = Date.now();
  if (!row || (row.expiresAt !== null && row.expiresAt <= now)) {
    countHit(c, presented.invalidFromClient);
    throw unauthenticated(
      presented.kind === "pat" ? "The personal access token is invalid, revoked or expired." : "The service account key is invalid, rotated or revoked.",
    );
  }
  if (row.lastUsedAt === null || now - row.lastUsedAt >= LAST_USED_RESOLUTION_MS) {
    // After the response and off the request's cost report: bookkeeping, not the caller's work.
    const db = backgroundDb(c.env);
    const write =
      presented.kind === "pat"
        ? db.update(personalAccessTokens).set({ lastUsedAt: now }).where(eq(personalAccessTokens.id, row.id))
        : db.update(serviceAccounts).set({ lastUsedAt: now }).where(eq(serviceAccounts.id, row.memberId));
    c.executionCtx.waitUntil(
      write.then(
        () => undefined,
        () => undefined,
      ),
    );
  }
  return presented.kind === "pat"
    ? { kind: "pat", userId: row.memberId, tokenId: row.id, scopes: row.scopes as Scope[] }
    : { kind: "service_account", serviceAccountId: row.memberId, organizationId: row.organizationId!, keyId: row.id, scopes: row.scopes as Scope[] };
}

/** The caller behind a presented credential, for routes outside an organization: a PAT or key costs its one D1 read. */
export async function callerOf(c: Context<AppEnv>, presented: Presented): Promise<Caller> {
  if (presented.kind === "session") return presented.actor;
  const [row] = await credentialQuery(c.var.db, { kind: presented.kind, hash: presented.hash });
  return callerFromRow(c, presented, row);
}
