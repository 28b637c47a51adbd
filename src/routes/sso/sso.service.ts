import { and, eq, isNull, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { domains, identityProviderConfigs, members, refreshTokens, sessions, users } from "../../db/schema";
import type { Config, ServiceCtx } from "../../env";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { kvKeys } from "../../lib/kv-keys";
import { authnRequestRedirect, newRequestId, REQUEST_ID } from "../../sso/saml-request";
import { SamlError, verifySamlResponse, type VerifiedAssertion } from "../../sso/saml-response";
import { spUrls } from "../../sso/metadata";
import { openSession, publishProfile, revokeAccessTokens, tokenPair, type TokenPair } from "../auth/auth.service";
import { serializeUser } from "../users/users.schemas";
import { emailDomain, jitMemberAdded, jitStatements } from "../domains/jit";
import { commit, type AuditEntry } from "../../audit/record";

const t = identityProviderConfigs;

const ssoFailed = (detail: string) => new ApiError("sso_failed", detail);

/** The config a login or ACS names; 404 for a malformed or unknown id (nothing read for the former). */
async function loadConfig(ctx: ServiceCtx, idpId: string) {
  if (!isId("identityProvider", idpId)) throw notFound("identity provider config");
  const [row] = await ctx.db
    .select({
      id: t.id,
      organizationId: t.organizationId,
      samlEntityId: t.samlEntityId,
      samlSsoUrl: t.samlSsoUrl,
      samlX509Cert: t.samlX509Cert,
      samlX509CertSecondary: t.samlX509CertSecondary,
      allowIdpInitiated: t.allowIdpInitiated,
      allowSha1: t.allowSha1,
    })
    .from(t)
    .where(eq(t.id, idpId))
    .limit(1);
  if (!row) throw notFound("identity provider config");
  return row;
}

// ---- RelayState -----------------------------------------------------------------------------

export const MAX_RELAY_STATE = 1024;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\\]/;

/**
 * Where the app should land after sign-in: a path of the app (`/dashboard?tab=1`) or an absolute
 * URL on APP_BASE_URL's origin. Anything else would make our login an open redirect.
 */
export function safeRelayState(config: Config, value: string): boolean {
  if (value.length > MAX_RELAY_STATE || CONTROL.test(value)) return false;
  const app = new URL(config.appBaseUrl);
  try {
    if (value.startsWith("/")) {
      // `//host` and `/\host` are scheme-relative: another origin.
      if (value.startsWith("//")) return false;
      return new URL(value, app).origin === app.origin;
    }
    const url = new URL(value);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === app.origin && url.username === "" && url.password === "";
  } catch {
    return false;
  }
}

// ---- Login ------------------------------------------------------------------------------------

/** SP-initiated login: the IdP URL carrying our AuthnRequest; its ID is kept for InResponseTo. */
export async function startLogin(ctx: ServiceCtx, idpId: string, relayState: string | undefined): Promise<string> {
  const cfg = await loadConfig(ctx, idpId);
  if (!cfg.samlSsoUrl)
    throw new ApiError(
      "conflict",
      "This identity provider config has no saml_sso_url yet: an admin must set the IdP's SSO URL before anyone can sign in with it.",
    );
  if (!cfg.samlX509Cert)
    throw new ApiError(
      "conflict",
      "This identity provider config has no signing certificate yet: an admin must set saml_x509_cert before anyone can sign in with it.",
    );
  const urls = spUrls(ctx.config, cfg.id);
  const id = newRequestId();
  const now = Date.now();
  const { key, ttl } = kvKeys.samlRequest(cfg.id, id);
  // The relay state travels with the request too: for an SP-initiated login, what the ACS uses is
  // what we stored, not what comes back through the browser.
  await ctx.kv.put(key, JSON.stringify({ relay_state: relayState ?? null }), { expirationTtl: ttl });
  return authnRequestRedirect({ id, now, ssoUrl: cfg.samlSsoUrl, acsUrl: urls.acs_url, spEntityId: urls.sp_entity_id, relayState });
}

// ---- ACS --------------------------------------------------------------------------------------

interface CodePayload {
  user_id: string;
  session_id: string;
  /** SHA-256 of the session's first refresh token, which no one ever sees: the exchange rotates it. */
  seed_hash: string;
  signed_in_at: number;
  user: { id: string; email: string; displayName: string; emailVerifiedAt: number | null; createdAt: number; updatedAt: number };
}

const DISPLAY_NAME_MAX = 100;
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function displayNameFor(asserted: string | null, email: string): string {
  const cleaned = (asserted ?? "").replace(CONTROL_CHARS, " ").replace(/\s+/g, " ").trim().slice(0, DISPLAY_NAME_MAX).trim();
  return cleaned || email.slice(0, email.indexOf("@")).slice(0, DISPLAY_NAME_MAX);
}

/**
 * The assertion consumer service: verify, spend the request and the assertion, find or provision
 * the user, open a session, and hand the app a single-use code. Three D1 round trips: the config,
 * the account/domain/membership lookup, and one batch of writes.
 */
export async function consumeAssertion(ctx: ServiceCtx, idpId: string, form: { SAMLResponse: string; RelayState?: string }): Promise<string> {
  const cfg = await loadConfig(ctx, idpId); // round trip 1
  if (!cfg.samlX509Cert) throw new ApiError("conflict", "This identity provider config has no signing certificate yet: an admin must set saml_x509_cert.");
  const urls = spUrls(ctx.config, cfg.id);
  const now = Date.now();

  let verified: VerifiedAssertion;
  try {
    verified = await verifySamlResponse(form.SAMLResponse, {
      idpEntityId: cfg.samlEntityId,
      spEntityId: urls.sp_entity_id,
      acsUrl: urls.acs_url,
      certificates: [cfg.samlX509Cert, cfg.samlX509CertSecondary].filter((c): c is string => !!c),
      allowSha1: cfg.allowSha1,
      now,
    });
  } catch (err) {
    if (err instanceof SamlError) throw ssoFailed(`The SAML response was refused: ${err.message}.`);
    throw err;
  }

  // InResponseTo: a request we issued for this config, spent on first use.
  let relayState: string | null = null;
  if (verified.inResponseTo !== null) {
    const unknown = () =>
      ssoFailed(
        "The SAML response was refused: its InResponseTo does not match a login request this config issued (unknown, expired or already used); start the sign-in again.",
      );
    if (!REQUEST_ID.test(verified.inResponseTo)) throw unknown();
    const { key } = kvKeys.samlRequest(cfg.id, verified.inResponseTo);
    const stored = await ctx.kv.get(key);
    if (stored === null) throw unknown();
    await ctx.kv.delete(key);
    relayState = (JSON.parse(stored) as { relay_state: string | null }).relay_state;
  } else {
    if (!cfg.allowIdpInitiated)
      throw ssoFailed("The SAML response was refused: it answers no login request (IdP-initiated), and this config does not allow IdP-initiated sign-in.");
    // Unsolicited: the RelayState is whatever the IdP sends; used only when it is one of ours.
    if (form.RelayState && safeRelayState(ctx.config, form.RelayState)) relayState = form.RelayState;
  }

  // The assertion ID is spent until the assertion could no longer be accepted anyway.
  const spent = kvKeys.samlAssertion(cfg.id, await sha256Hex(verified.assertionId), (verified.expiresAt - now) / 1000);
  if ((await ctx.kv.get(spent.key)) !== null) throw ssoFailed("The SAML response was refused: this assertion was already used.");
  await ctx.kv.put(spent.key, "1", { expirationTtl: spent.ttl });

  const email = verified.email;
  if (!email) throw ssoFailed("The SAML response was refused: it asserts no email address (send NameID in the emailAddress format, or an `email` attribute).");
  const orgId = cfg.organizationId;

  // Round trip 2: the account, the organization's verified domain, and the membership.
  const db = ctx.db;
  const [[user], [domain], [member]] = await db.batch([
    db.select().from(users).where(eq(users.email, email)).limit(1),
    db
      .select({ jit: domains.jitProvisioningEnabled, configId: domains.identityProviderConfigId })
      .from(domains)
      .where(and(eq(domains.organizationId, orgId), eq(domains.domain, emailDomain(email)), sql`${domains.verifiedAt} is not null`))
      .limit(1),
    db
      .select({ role: members.role })
      .from(members)
      .where(and(eq(members.organizationId, orgId), sql`${members.memberId} = (select u.id from users u where u.email = ${email})`))
      .limit(1),
  ]);
  if (!domain) throw ssoFailed("The SAML response was refused: the asserted email address is not in a verified domain of this organization.");
  if (domain.configId !== null && domain.configId !== cfg.id)
    throw ssoFailed(
      "The SAML response was refused: the asserted email address's domain signs in through another identity provider config of this organization.",
    );
  if (!member && !domain.jit) {
    throw new ApiError(
      "forbidden",
      "You are not a member of this organization, and its domain does not provision members automatically (JIT is off): ask an admin to invite you.",
    );
  }

  // Round trip 3: one batch of writes.
  const statements: BatchItem<"sqlite">[] = [];
  let row: CodePayload["user"];
  let revokedIndex = -1;
  if (!user) {
    // The IdP vouched for an address in a domain the organization proved it owns: verified, and
    // no password (this account signs in by SSO until its owner sets one).
    row = { id: newId("user"), email, displayName: displayNameFor(verified.displayName, email), emailVerifiedAt: now, createdAt: now, updatedAt: now };
    statements.push(db.insert(users).values({ ...row, passwordHash: null }));
  } else {
    row = {
      id: user.id,
      email: user.email,
      displayName: user.displayName,
      emailVerifiedAt: user.emailVerifiedAt ?? now,
      createdAt: user.createdAt,
      updatedAt: user.emailVerifiedAt === null ? now : user.updatedAt,
    };
    if (user.emailVerifiedAt === null) {
      // An unverified account with this address was opened by someone who never proved it: the
      // password they chose and their sessions must not survive the owner's first SSO sign-in.
      statements.push(
        db
          .update(users)
          .set({ emailVerifiedAt: now, passwordHash: null, updatedAt: now })
          .where(and(eq(users.id, user.id), isNull(users.emailVerifiedAt))),
      );
      revokedIndex = statements.length;
      statements.push(
        db
          .update(sessions)
          .set({ revokedAt: now })
          .where(and(eq(sessions.userId, user.id), isNull(sessions.revokedAt)))
          .returning({ id: sessions.id }),
      );
    }
  }
  if (!member) statements.push(...jitStatements(db, ctx.config, row, now, orgId));
  const isMember = sql`exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${row.id})`;
  const session = await openSession(ctx, row.id, isMember);
  const sessionIndex = statements.length;
  statements.push(...session.statements);
  // A new account that could not join (seats, an inactive organization) is not left behind.
  if (!user) statements.push(db.delete(users).where(and(eq(users.id, row.id), sql`not exists (select 1 from sessions s where s.user_id = ${row.id})`)));
  // The login is recorded here, where the session opens; the code exchange only hands over its
  // tokens. The login's entry holds on the session's own condition (membership, which nothing
  // after the JIT statements changes). A JIT join's entry holds if its counter update changed a
  // row, so both go right after that update, before the session's statements.
  const login: AuditEntry = {
    action: "sso.login",
    target: { type: "user", id: row.id },
    event: {
      type: "sso.login",
      data: { user: { id: row.id, email: row.email, display_name: row.displayName }, identity_provider_config_id: cfg.id, new_account: !user },
    },
  };
  const results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
    organizationId: orgId,
    actor: { type: "user", id: row.id, credential: "saml" },
    ...(member
      ? { entries: [login], onlyIf: isMember }
      : {
          entries: [jitMemberAdded(row, now), login],
          after: sessionIndex - 1,
          onlyIf: sql`case audit_row.action when 'member.added' then changes() = 1 else ${isMember} end`,
        }),
  });

  if (revokedIndex >= 0) {
    const revoked = (results[revokedIndex] as { id: string }[]).map((r) => r.id);
    if (revoked.length > 0) await revokeAccessTokens(ctx, revoked);
    // Verified by this sign-in: the account's other tokens must not show it unverified.
    if ((results[revokedIndex - 1] as D1Result).meta.changes === 1) await publishProfile(ctx, serializeUser(row));
  }
  if ((results[sessionIndex] as D1Result).meta.changes !== 1) {
    throw new ApiError("forbidden", "You could not be added to this organization (it has no free seat, or it is inactive): ask an admin.");
  }

  const code = newSecret("ssoc");
  const payload: CodePayload = {
    user_id: row.id,
    session_id: session.sessionId,
    seed_hash: await sha256Hex(session.refreshToken),
    signed_in_at: session.signedInAt,
    user: row,
  };
  const { key, ttl } = kvKeys.ssoCode(await sha256Hex(code));
  await ctx.kv.put(key, JSON.stringify(payload), { expirationTtl: ttl });

  const target = new URL("/sso/callback", ctx.config.appBaseUrl);
  target.searchParams.set("code", code);
  if (relayState) target.searchParams.set("state", relayState);
  return target.toString();
}

// ---- Exchange ---------------------------------------------------------------------------------

/**
 * The code becomes the session's tokens. Single use is decided by D1, not KV (eventually
 * consistent): the session's unseen first refresh token is rotated exactly as a refresh does, and
 * only the request that flipped it gets the new pair. The KV entry is deleted as well.
 */
export async function exchangeCode(ctx: ServiceCtx, code: string): Promise<TokenPair> {
  const invalid = () => new ApiError("invalid_token", "The SSO code is invalid, used or expired: sign in again.");
  if (!/^ssoc_[A-Za-z0-9_-]{43}$/.test(code)) throw invalid();
  const { key } = kvKeys.ssoCode(await sha256Hex(code));
  const stored = await ctx.kv.get(key);
  if (stored === null) throw invalid();
  await ctx.kv.delete(key);
  const p = JSON.parse(stored) as CodePayload;
  const now = Date.now();
  const next = newSecret("rt");
  const db = ctx.db;
  const [, inserted] = await db.batch([
    db
      .update(refreshTokens)
      .set({ usedAt: now })
      .where(and(eq(refreshTokens.tokenHash, p.seed_hash), isNull(refreshTokens.usedAt))),
    // token_hash, session_id, created_at, expires_at, used_at: only if this request spent the seed.
    db
      .insert(refreshTokens)
      .select(
        sql`select ${await sha256Hex(next)}, s.id, ${now}, s.expires_at, null from sessions s where s.id = ${p.session_id} and s.revoked_at is null and s.expires_at > ${now} and changes() = 1`,
      ),
  ]);
  if ((inserted as D1Result).meta.changes !== 1) throw invalid();
  return tokenPair(ctx, { ...p.user, passwordHash: null }, { sessionId: p.session_id, refreshToken: next, signedInAt: p.signed_in_at });
}
