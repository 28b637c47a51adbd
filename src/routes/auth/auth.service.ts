import { and, asc, eq, gte, inArray, isNull, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { ServiceCtx } from "../../env";
import { emailTokens, refreshTokens, sessions, users } from "../../db/schema";
import { dummyPasswordHash, hashPassword, needsRehash, newSecret, sha256Hex, verifyPassword } from "../../lib/crypto";
import { ApiError, isUniqueViolation } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { signAccessToken } from "../../lib/jwt";
import { kvKeys } from "../../lib/kv-keys";
import { DAY_MS } from "../../lib/time";
import { enqueueOutbox, outboxInsert } from "../../queue/outbox";
import { backgroundDb } from "../../db/client";
import { serializeUser, type UserJson } from "../users/users.schemas";
import { samlLoginUrl, ssoBypassSql, verifiedDomainQuery, type VerifiedDomain } from "../domains/domains.service";
import { jitMemberAdded, jitOrganizationOf, jitStatements } from "../domains/jit";
import { commit } from "../../audit/record";
import { outer } from "../../db/schema/columns";

const VERIFY_EMAIL_TTL_MS = 2 * DAY_MS;

export interface TokenPair {
  user: UserJson;
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
}

type UserRow = typeof users.$inferSelect;

/** A session as the tokens need it: its id, first refresh token, and when its sign-in happened. */
export interface OpenedSession {
  sessionId: string;
  refreshToken: string;
  signedInAt: number;
}

/**
 * Statements that open a session (the refresh-token family) with its first refresh token. With
 * `when`, the session is opened only if that SQL condition holds when the batch runs (the first
 * statement's `changes` says whether it did).
 */
export async function openSession(ctx: ServiceCtx, userId: string, when?: SQL): Promise<OpenedSession & { statements: BatchItem<"sqlite">[] }> {
  const now = Date.now();
  const sessionId = newId("session");
  const refreshToken = newSecret("rt");
  const expiresAt = now + ctx.config.refreshTokenTtlDays * DAY_MS;
  const userAgent = ctx.request?.userAgent ?? null;
  const ip = ctx.request?.ip ?? null;
  const tokenHash = await sha256Hex(refreshToken);
  const statements: BatchItem<"sqlite">[] =
    when === undefined
      ? [
          ctx.db.insert(sessions).values({ id: sessionId, userId, createdAt: now, expiresAt, userAgent, ip }),
          ctx.db.insert(refreshTokens).values({ tokenHash, sessionId, createdAt: now, expiresAt }),
        ]
      : [
          // Columns in table order: id, user_id, created_at, expires_at, revoked_at, user_agent, ip.
          ctx.db.insert(sessions).select(sql`select ${sessionId}, ${userId}, ${now}, ${expiresAt}, null, ${userAgent}, ${ip} where ${when}`),
          // token_hash, session_id, created_at, expires_at, used_at: only if the session went in.
          ctx.db.insert(refreshTokens).select(sql`select ${tokenHash}, ${sessionId}, ${now}, ${expiresAt}, null where changes() = 1`),
        ];
  return { sessionId, refreshToken, signedInAt: now, statements };
}

/** The access token carries the account as it is now, for GET /v1/me. */
export async function tokenPair(ctx: ServiceCtx, user: UserRow, session: OpenedSession): Promise<TokenPair> {
  const profile = {
    email: user.email,
    name: user.displayName,
    emailVerified: user.emailVerifiedAt !== null,
    createdAt: user.createdAt,
    updatedAt: user.updatedAt,
  };
  const access = await signAccessToken(ctx.config, { sub: user.id, sid: session.sessionId, authTime: Math.floor(session.signedInAt / 1000), profile });
  return { user: serializeUser(user), access_token: access.token, refresh_token: session.refreshToken, token_type: "Bearer", expires_in: access.expiresIn };
}

/**
 * After any change that moves a user's `updated_at` (name, email, verification, password), in
 * the request that made it: access tokens minted earlier carry the old profile, and GET /v1/me
 * answers from this copy instead until the last of them expires (it wins when its `updated_at`
 * is newer than the token's). Awaited, so the writer's location sees it on the next request.
 * The change has committed by now: a failed write is logged, not turned into an error, and the
 * old profile shows at most until those tokens expire.
 */
export async function publishProfile(ctx: ServiceCtx, user: UserJson): Promise<void> {
  const { key, ttl } = kvKeys.userProfile(user.id, ctx.config.accessTokenTtlSeconds);
  try {
    await ctx.kv.put(key, JSON.stringify(user), { expirationTtl: ttl });
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", request_id: ctx.request?.id ?? null, msg: "publishing the user profile failed", user_id: user.id, error: String(err) }),
    );
  }
}

/**
 * For a change decided inside SQL (a SCIM update that applies only in a verified domain, an
 * emailed link that verifies the address): the account is read back after the response and
 * published as publishProfile does. Off the response's path, so it costs the request nothing;
 * until it lands (milliseconds), an older token's GET /v1/me may show the previous profile.
 */
export function republishProfile(ctx: ServiceCtx, userId: string): void {
  ctx.waitUntil(
    backgroundDb(ctx.env)
      .select({
        id: users.id,
        email: users.email,
        displayName: users.displayName,
        emailVerifiedAt: users.emailVerifiedAt,
        createdAt: users.createdAt,
        updatedAt: users.updatedAt,
      })
      .from(users)
      .where(eq(users.id, userId))
      .limit(1)
      .then(([row]) => (row ? publishProfile(ctx, serializeUser(row)) : undefined))
      .catch((err) => console.error(JSON.stringify({ level: "error", msg: "re-publishing the user profile failed", user_id: userId, error: String(err) }))),
  );
}

/** A verification token and its email, as statements for the caller's batch. */
export async function verificationEmail(ctx: ServiceCtx, user: { id: string; email: string; displayName: string }) {
  const token = newSecret("vfy");
  const now = Date.now();
  const mail = await outboxInsert(ctx.db, ctx.config, {
    template: "verify_email",
    recipient: user.email,
    payload: { display_name: user.displayName },
    secrets: { token },
    subjectId: user.id,
  });
  const statements: BatchItem<"sqlite">[] = [
    ctx.db.insert(emailTokens).values({
      tokenHash: await sha256Hex(token),
      userId: user.id,
      email: user.email,
      purpose: "verify_email",
      createdAt: now,
      expiresAt: now + VERIFY_EMAIL_TTL_MS,
    }),
    mail.statement,
  ];
  return { outboxId: mail.id, statements };
}

export async function signup(ctx: ServiceCtx, input: { email: string; password: string; display_name: string }): Promise<TokenPair> {
  const now = Date.now();
  const user: UserRow = {
    id: newId("user"),
    email: input.email,
    displayName: input.display_name,
    passwordHash: await hashPassword(input.password, ctx.config.passwordHashIterations),
    emailVerifiedAt: null,
    createdAt: now,
    updatedAt: now,
  };
  const session = await openSession(ctx, user.id);
  const verify = await verificationEmail(ctx, user);
  // User, session and the verification email land together or not at all.
  try {
    await ctx.db.batch([ctx.db.insert(users).values(user), ...session.statements, ...verify.statements] as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  } catch (err) {
    if (isUniqueViolation(err, "users.email")) throw new ApiError("email_taken", "An account with this email already exists; sign in instead.");
    throw err;
  }
  await enqueueOutbox(ctx, [verify.outboxId]);
  return tokenPair(ctx, user, session);
}

/**
 * The account for a login, read so that a known and an unknown email cost the same rows: the
 * first email at or after the given one, which a sentinel row (`~`, after every valid address)
 * guarantees exists. An exact lookup would read one row for a known email and none for an
 * unknown one, and Server-Timing would tell them apart. The verified domain of the address is
 * read in the same round trip; it depends on the domain alone, so it reads the same rows for a
 * known and an unknown address.
 */
async function loginCandidate(ctx: ServiceCtx, email: string): Promise<{ user: UserRow | undefined; domain: VerifiedDomain | undefined }> {
  const [[row], [domain]] = await ctx.db.batch([
    ctx.db.select().from(users).where(gte(users.email, email)).orderBy(asc(users.email)).limit(1),
    verifiedDomainQuery(ctx.db, email),
  ]);
  return { user: row?.email === email ? row : undefined, domain };
}

const ssoRequired = (ctx: ServiceCtx, domain: VerifiedDomain) => {
  const loginUrl = domain.configId ? samlLoginUrl(ctx.config, domain.configId) : null;
  return new ApiError(
    "sso_required",
    loginUrl
      ? "This address's organization requires single sign-on: sign in at `login_url`."
      : "This address's organization requires single sign-on, and has no identity provider configured yet: ask its admins.",
    {
      extra: { login_url: loginUrl },
    },
  );
};

export async function login(ctx: ServiceCtx, input: { email: string; password: string }): Promise<TokenPair> {
  const { user, domain } = await loginCandidate(ctx, input.email);
  // Unknown email and wrong password cost the same: both verify against a hash.
  const hash = user?.passwordHash ?? (await dummyPasswordHash(ctx.config.passwordHashIterations));
  const ok = await verifyPassword(input.password, hash);
  if (!user?.passwordHash || !ok) throw new ApiError("invalid_credentials", "The email or password is wrong.");
  // Enforcement is decided only once the password is right: a wrong one is the usual 401 for
  // every address, enforced or not, known or not.
  const enforced = domain?.ssoEnforcement === "required" ? domain : undefined;
  if (enforced && !enforced.adminBypass) throw ssoRequired(ctx, enforced);
  // With the admin bypass on, whether this user is one of the organization's admins is decided
  // inside the statement that opens the session: the membership is read only after the password
  // proved the account, so it never shows in a refused login's Server-Timing.
  const session = await openSession(ctx, user.id, enforced ? ssoBypassSql(enforced.organizationId, user.id) : undefined);
  const statements = [...session.statements];
  if (needsRehash(user.passwordHash, ctx.config.passwordHashIterations)) {
    statements.push(
      ctx.db
        .update(users)
        .set({ passwordHash: await hashPassword(input.password, ctx.config.passwordHashIterations) })
        .where(eq(users.id, user.id)),
    );
  }
  const [opened] = await ctx.db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  if (enforced && (opened as D1Result).meta.changes !== 1) throw ssoRequired(ctx, enforced);
  return tokenPair(ctx, user, session);
}

const refreshFailed = () => new ApiError("unauthenticated", "The refresh token is invalid or expired; sign in again.");

export async function refresh(ctx: ServiceCtx, presented: string): Promise<TokenPair> {
  if (!presented.startsWith("rt_")) throw refreshFailed();
  const hash = await sha256Hex(presented);
  const [row] = await ctx.db
    .select({
      sessionId: refreshTokens.sessionId,
      usedAt: refreshTokens.usedAt,
      tokenExpiresAt: refreshTokens.expiresAt,
      sessionRevokedAt: sessions.revokedAt,
      sessionExpiresAt: sql<number>`${sessions.expiresAt}`.as("session_expires_at"),
      sessionCreatedAt: sql<number>`${sessions.createdAt}`.as("session_created_at"),
      user: users,
    })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(refreshTokens.tokenHash, hash))
    .limit(1);
  const now = Date.now();
  if (!row || row.sessionRevokedAt !== null || row.tokenExpiresAt <= now || row.sessionExpiresAt <= now) throw refreshFailed();
  if (row.usedAt !== null) {
    await revokeSessions(ctx, [row.sessionId]);
    throw new ApiError("refresh_token_reused", "This refresh token was already used; the session has been ended as a precaution.");
  }
  const next = newSecret("rt");
  // Mark-used and mint-next in one transaction; the insert only happens if this request is the
  // one that flipped used_at, so two concurrent refreshes cannot both succeed.
  const [, inserted] = await ctx.db.batch([
    ctx.db
      .update(refreshTokens)
      .set({ usedAt: now })
      .where(and(eq(refreshTokens.tokenHash, hash), isNull(refreshTokens.usedAt))),
    // Columns in table order: token_hash, session_id, created_at, expires_at, used_at.
    ctx.db.insert(refreshTokens).select(sql`select ${await sha256Hex(next)}, ${row.sessionId}, ${now}, ${row.sessionExpiresAt}, null where changes() = 1`),
  ]);
  if ((inserted as D1Result).meta.changes !== 1) {
    await revokeSessions(ctx, [row.sessionId]);
    throw new ApiError("refresh_token_reused", "This refresh token was already used; the session has been ended as a precaution.");
  }
  // The new pair keeps the session's sign-in time: a refresh is not a sign-in.
  return tokenPair(ctx, row.user, { sessionId: row.sessionId, refreshToken: next, signedInAt: row.sessionCreatedAt });
}

/**
 * Ends sessions at once: D1 stops their refresh tokens, KV stops their access tokens on the
 * very next request (the one KV read every authenticated request makes).
 */
export async function revokeSessions(ctx: ServiceCtx, sessionIds: string[]): Promise<void> {
  if (sessionIds.length === 0) return;
  const now = Date.now();
  for (let i = 0; i < sessionIds.length; i += 90) {
    await ctx.db
      .update(sessions)
      .set({ revokedAt: now })
      .where(and(inArray(sessions.id, sessionIds.slice(i, i + 90)), isNull(sessions.revokedAt)));
  }
  await revokeAccessTokens(ctx, sessionIds);
}

/** The KV half of revocation alone, for sessions whose D1 rows are already gone (deleted accounts). */
export async function revokeAccessTokens(ctx: ServiceCtx, sessionIds: string[]): Promise<void> {
  await Promise.all(
    sessionIds.map((sid) => {
      const { key, ttl } = kvKeys.revokedSession(sid, ctx.config.accessTokenTtlSeconds);
      return ctx.kv.put(key, "1", { expirationTtl: ttl });
    }),
  );
}

/** Active sessions of a user, optionally all but one. */
export async function activeSessionIds(ctx: ServiceCtx, userId: string, except?: string): Promise<string[]> {
  const rows = await ctx.db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), sql`${sessions.expiresAt} > ${Date.now()}`));
  return rows.map((r) => r.id).filter((id) => id !== except);
}

/**
 * Uses the token and verifies the address it was sent to, in one batch; when the address
 * becomes verified, JIT provisioning joins it to the organization that verified its domain (in
 * the same batch, within the seat limit). Each statement runs only if the one before it changed
 * its row, so a used token, or an address changed since the token was sent, changes nothing.
 */
export async function verifyEmail(ctx: ServiceCtx, token: string): Promise<void> {
  const invalid = () => new ApiError("invalid_token", "The verification token is invalid, used or expired.");
  if (!token.startsWith("vfy_")) throw invalid();
  const now = Date.now();
  const hash = await sha256Hex(token);
  const live = and(eq(emailTokens.tokenHash, hash), isNull(emailTokens.usedAt), sql`${emailTokens.expiresAt} > ${now}`);
  const [pending] = await ctx.db
    .select({ userId: emailTokens.userId, email: emailTokens.email, displayName: users.displayName, jitOrgId: jitOrganizationOf(outer(emailTokens.email)) })
    .from(emailTokens)
    .innerJoin(users, eq(users.id, emailTokens.userId))
    .where(live)
    .limit(1);
  if (!pending) throw invalid();
  const db = ctx.db;
  const user = { id: pending.userId, displayName: pending.displayName, email: pending.email };
  const statements = [
    db.update(emailTokens).set({ usedAt: now }).where(live).returning({ userId: emailTokens.userId }),
    // Only verifies the address the token was sent to; an email changed since stays unverified.
    db
      .update(users)
      .set({ emailVerifiedAt: now, updatedAt: now })
      .where(and(eq(users.id, pending.userId), eq(users.email, pending.email), sql`changes() = 1`))
      .returning(),
  ] as const;
  // JIT joins the organization read above only (its audit entry needs to know which); a domain
  // that turned JIT on in the milliseconds since joins nobody this time.
  const jitOrgId = pending.jitOrgId;
  const [used, verified] = jitOrgId
    ? await commit(ctx, [...statements, ...jitStatements(db, ctx.config, user, now, jitOrgId, sql`changes() = 1`)], {
        organizationId: jitOrgId,
        // The organization's JIT rule adds the member; following the emailed link only proved the address.
        actor: { type: "system", id: null, credential: "system" },
        onlyIf: sql`changes() = 1`,
        entries: [jitMemberAdded(user, now)],
      })
    : await db.batch(statements);
  if (used.length === 0 || verified.length === 0) throw invalid();
  await publishProfile(ctx, serializeUser(verified[0]!));
}
