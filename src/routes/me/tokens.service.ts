import { and, count, desc, eq, sql } from "drizzle-orm";
import type { ServiceCtx } from "../../env";
import { personalAccessTokens } from "../../db/schema";
import type { SessionActor } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import type { Scope } from "../../lib/permissions";
import { DAY_MS } from "../../lib/time";
import { DEFAULT_TOKEN_DAYS, serializeToken } from "./tokens.schemas";

/** Tokens per user: enough for every automation, small enough to keep the list and the table bounded. */
export const MAX_TOKENS_PER_USER = 100;

/**
 * Minting a token turns a short-lived session into a long-lived credential, so it needs a recent
 * sign-in (the session's `auth_time`): an access token stolen later in a session's life, or kept
 * alive by refreshes, cannot mint one.
 */
export const RECENT_SIGN_IN_SECONDS = 15 * 60;

export async function createToken(ctx: ServiceCtx<SessionActor>, input: { name: string; scopes: Scope[]; expires_in_days?: number }) {
  const userId = ctx.actor.userId;
  if (Date.now() / 1000 - ctx.actor.authTime > RECENT_SIGN_IN_SECONDS) {
    throw new ApiError(
      "reauthentication_required",
      `Creating a token needs a sign-in within the last ${RECENT_SIGN_IN_SECONDS / 60} minutes; sign in again (POST /v1/auth/login) and retry with the new access token.`,
    );
  }
  const [{ n } = { n: 0 }] = await ctx.db.select({ n: count() }).from(personalAccessTokens).where(eq(personalAccessTokens.userId, userId));
  if (n >= MAX_TOKENS_PER_USER) throw new ApiError("conflict", `A user may hold at most ${MAX_TOKENS_PER_USER} tokens; delete unused ones first.`);
  const token = newSecret("pat");
  const now = Date.now();
  const row = {
    id: newId("token"),
    userId,
    name: input.name,
    tokenHash: await sha256Hex(token),
    tokenPrefix: token.slice(0, 8),
    scopes: input.scopes,
    expiresAt: now + (input.expires_in_days ?? DEFAULT_TOKEN_DAYS) * DAY_MS,
    lastUsedAt: null,
    createdAt: now,
  };
  await ctx.db.insert(personalAccessTokens).values(row);
  return { ...serializeToken(row), token };
}

export async function listTokens(ctx: ServiceCtx, userId: string, q: { page_size: number; page_token?: string }) {
  const fingerprint = `tokens|${userId}`;
  const conds = [eq(personalAccessTokens.userId, userId)];
  if (q.page_token) {
    const [after] = await decodePageToken(ctx.config.hmacSecret, fingerprint, q.page_token, 1);
    conds.push(sql`${personalAccessTokens.id} < ${after}`);
  }
  const rows = await ctx.db
    .select()
    .from(personalAccessTokens)
    .where(and(...conds))
    .orderBy(desc(personalAccessTokens.id))
    .limit(q.page_size + 1);
  const page = await finishPage(ctx.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeToken), next_page_token: page.nextPageToken };
}

/** Deleting the row revokes the token on its next use: PATs are looked up in D1 on every request. */
export async function deleteToken(ctx: ServiceCtx, userId: string, tokenId: string) {
  if (!isId("token", tokenId)) throw notFound("token");
  const deleted = await ctx.db
    .delete(personalAccessTokens)
    .where(and(eq(personalAccessTokens.id, tokenId), eq(personalAccessTokens.userId, userId)))
    .returning({ id: personalAccessTokens.id });
  if (deleted.length === 0) throw notFound("token");
}
