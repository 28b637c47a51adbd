import { z } from "zod";
import type { Actor, Caller } from "./lib/actor";
import { backgroundDb, type Db, type DbStats } from "./db/client";
import type { KvStats } from "./lib/kv";
import type { OrgAccess } from "./lib/permissions";
import type { RateLimitState } from "./lib/rate-limit";
import type { SessionUser } from "./lib/jwt";

/**
 * The worker's env: what wrangler.toml declares, as `npm run types:generate` writes it
 * (worker-configuration.d.ts; CI fails when it is stale), and what wrangler.toml cannot declare.
 * Those are optional because the code has a default or a clear error for each: tuning vars and
 * secrets set with `wrangler secret put` or `.dev.vars` (which the generator ignores: it would
 * type whatever one machine's `.dev.vars` holds as always present), and the optional
 * `[[send_email]]` binding of the `cloudflare` email provider.
 */
export interface Bindings extends Env {
  SEND_EMAIL?: SendEmail;

  PASSWORD_HASH_ITERATIONS?: string;
  ACCESS_TOKEN_TTL_SECONDS?: string;
  REFRESH_TOKEN_TTL_DAYS?: string;
  AUTH_RATE_LIMIT_PER_MINUTE?: string;
  CREDENTIAL_RATE_LIMIT_PER_MINUTE?: string;
  LOGIN_RATE_LIMIT_PER_EMAIL?: string;
  LOGIN_FAILURES_PER_CLIENT?: string;
  BUILD_VERSION?: string;
  DOH_RESOLVER_URL?: string;
  AUDIT_LOG_RETENTION_DAYS?: string;
  JWT_AUDIENCE?: string;

  JWT_SIGNING_KEYS?: string;
  ENCRYPTION_KEY?: string;
  HMAC_SECRET?: string;
  RESEND_API_KEY?: string;
}

/**
 * What a request wrote to the audit log, kept on its ServiceCtx: commit() (src/audit/record.ts)
 * counts into it and the seam checks it after a mutating route answered 2xx.
 */
export interface AuditTrail {
  written: number;
  unchanged: boolean;
}
export const newAuditTrail = (): AuditTrail => ({ written: 0, unchanged: false });

/** What request-context builds once per request; handlers receive what they need as a ServiceCtx. */
export interface Variables {
  requestId: string;
  config: Config;
  db: Db;
  /** The request's D1 session bookmark so far (src/middleware/request-context.ts d1Session). */
  d1Bookmark: () => string | null;
  dbStats: DbStats;
  kvStats: KvStats;
  kv: KVNamespace;
  /** The tightest rate limit met so far, reported in RateLimit-* headers. */
  rateLimit: RateLimitState | undefined;
  /** For an access token: the signed-in user as of now (token claims, or the newer KV copy). */
  sessionUser: SessionUser | undefined;
}

export type AppEnv = { Bindings: Bindings; Variables: Variables };

const csv = (v: string | undefined) =>
  (v ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

const intFrom = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const ConfigSchema = z.object({
  environment: z.enum(["development", "test", "production"]),
  appBaseUrl: z.url(),
  apiBaseUrl: z.url(),
  /** Access tokens' `iss`: the API's base URL without a trailing slash, so `{iss}/.well-known/jwks.json` is the key set. */
  jwtIssuer: z.url(),
  /** Access tokens' `aud` (JWT_AUDIENCE; the issuer when unset). */
  jwtAudience: z.string().min(1),
  platformAdminEmails: z.array(z.string()),
  emailProvider: z.enum(["outbox", "resend", "cloudflare"]),
  emailFrom: z.string().min(3),
  freePlanSeats: intFrom(10, 1, 1_000_000),
  corsOrigins: z.array(z.string()),
  // 100,000 is the PBKDF2 ceiling on Workers; tests lower it (the count is stored per hash).
  passwordHashIterations: intFrom(100_000, 1_000, 100_000),
  accessTokenTtlSeconds: intFrom(900, 60, 3600),
  refreshTokenTtlDays: intFrom(30, 1, 365),
  clientRateLimitPerMinute: intFrom(60, 1, 100_000),
  credentialRateLimitPerMinute: intFrom(600, 1, 100_000),
  loginRateLimitPerEmail: intFrom(10, 1, 100_000),
  loginFailuresPerClient: intFrom(5, 1, 100_000),
  buildVersion: z.string(),
  /** DNS-over-HTTPS JSON endpoint for domain verification (`?name=…&type=TXT`). */
  dohResolverUrl: z.url(),
  /** Audit entries older than this are pruned by the cron. */
  auditLogRetentionDays: intFrom(365, 1, 3650),
  jwtSigningKeys: z.string().min(1, "JWT_SIGNING_KEYS is not set (npm run dev generates .dev.vars)"),
  encryptionKey: z.string().min(1, "ENCRYPTION_KEY is not set (npm run dev generates .dev.vars)"),
  hmacSecret: z.string().min(16, "HMAC_SECRET is not set (npm run dev generates .dev.vars)"),
  resendApiKey: z.string().optional(),
});

export type Config = z.infer<typeof ConfigSchema>;

// Parsed once per isolate: env objects are stable for an isolate's lifetime.
const cache = new WeakMap<object, Config>();

export function loadConfig(env: Bindings): Config {
  const hit = cache.get(env);
  if (hit) return hit;
  const apiBaseUrl = env.API_BASE_URL ?? "http://127.0.0.1:8787";
  const jwtIssuer = apiBaseUrl.replace(/\/+$/, "");
  const parsed = ConfigSchema.safeParse({
    environment: env.ENVIRONMENT ?? "production",
    appBaseUrl: env.APP_BASE_URL ?? "http://127.0.0.1:8787",
    apiBaseUrl,
    jwtIssuer,
    jwtAudience: env.JWT_AUDIENCE?.trim() || jwtIssuer,
    platformAdminEmails: csv(env.PLATFORM_ADMIN_EMAILS),
    emailProvider: env.EMAIL_PROVIDER ?? "outbox",
    emailFrom: env.EMAIL_FROM ?? "Tenancy <no-reply@example.com>",
    freePlanSeats: env.FREE_PLAN_SEATS,
    corsOrigins: csv(env.CORS_ORIGINS),
    passwordHashIterations: env.PASSWORD_HASH_ITERATIONS,
    accessTokenTtlSeconds: env.ACCESS_TOKEN_TTL_SECONDS,
    refreshTokenTtlDays: env.REFRESH_TOKEN_TTL_DAYS,
    clientRateLimitPerMinute: env.AUTH_RATE_LIMIT_PER_MINUTE,
    credentialRateLimitPerMinute: env.CREDENTIAL_RATE_LIMIT_PER_MINUTE,
    loginRateLimitPerEmail: env.LOGIN_RATE_LIMIT_PER_EMAIL,
    loginFailuresPerClient: env.LOGIN_FAILURES_PER_CLIENT,
    buildVersion: env.BUILD_VERSION ?? "dev",
    dohResolverUrl: env.DOH_RESOLVER_URL || "https://cloudflare-dns.com/dns-query",
    auditLogRetentionDays: env.AUDIT_LOG_RETENTION_DAYS,
    jwtSigningKeys: env.JWT_SIGNING_KEYS ?? "",
    encryptionKey: env.ENCRYPTION_KEY ?? "",
    hmacSecret: env.HMAC_SECRET ?? "",
    resendApiKey: env.RESEND_API_KEY || undefined,
  });
  if (!parsed.success) {
    // Fail loudly at the first request rather than limp along with a half-configured worker.
    const fields = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`Invalid worker configuration: ${fields}`);
  }
  if (parsed.data.emailProvider === "resend" && !parsed.data.resendApiKey) {
    throw new Error("Invalid worker configuration: EMAIL_PROVIDER=resend needs RESEND_API_KEY");
  }
  if (parsed.data.emailProvider === "outbox" && parsed.data.environment === "production") {
    // The outbox provider sends nothing: in production every invitation and verification email
    // would vanish while reading `sent`.
    throw new Error(
      "Invalid worker configuration: EMAIL_PROVIDER=outbox keeps email in D1 and is for development and tests; production needs resend or cloudflare",
    );
  }
  cache.set(env, parsed.data);
  return parsed.data;
}

/** Where a request came from, for the sessions it opens (and, later, the audit log). */
export interface RequestInfo {
  id: string;
  ip: string;
  userAgent: string | null;
}

/**
 * What a service verb receives: a plain object, not Hono's Context, so the cron and the queue
 * consumer call the same verbs. Built once per request by the route seam, after authorization.
 */
export interface ServiceCtx<A extends Actor | null = Actor | null> {
  db: Db;
  kv: KVNamespace;
  config: Config;
  /** The bindings a verb may need beyond D1 and KV (the email queue, the send_email binding). */
  env: Bindings;
  actor: A;
  waitUntil(promise: Promise<unknown>): void;
  /** Null outside a request (cron, queue). */
  request: RequestInfo | null;
  /** What this request wrote to the audit log (src/audit/record.ts); the seam checks it. */
  audit: AuditTrail;
}

/** A verb acting in one organization for an authorized caller. */
export interface OrgCtx<A extends Caller = Caller> extends ServiceCtx<A> {
  org: OrgAccess;
}

/** The context of the cron and the queue consumer: no caller, no request, nothing on a cost report. */
export function systemCtx(env: Bindings, execution: { waitUntil(p: Promise<unknown>): void }): ServiceCtx<{ kind: "system" }> {
  return {
    db: backgroundDb(env),
    kv: env.KV,
    config: loadConfig(env),
    env,
    actor: { kind: "system" },
    waitUntil: (p) => execution.waitUntil(p),
    request: null,
    audit: newAuditTrail(),
  };
}
