/**
 * The alternative the bench compares against: Better Auth with its organization plugin, on the same
 * runtime and the same kind of local D1 as the tenancy API.
 *
 * D1 setup: Better Auth 1.7 takes the D1 binding itself as `database` — its Kysely adapter
 * recognises an object with `prepare`, `batch` and `exec` and runs it on its own Kysely D1 dialect
 * (`D1SqliteDialect` in @better-auth/kysely-adapter), without transactions (D1 has none).
 */
import { betterAuth, type BetterAuthOptions } from "better-auth";
import { organization } from "better-auth/plugins/organization";

/** What Better Auth needs of a D1 binding (its own structural type, `D1Database` in @better-auth/core). */
export interface D1Like {
  prepare(query: string): D1StatementLike;
  batch(statements: D1StatementLike[]): Promise<D1ResultLike[]>;
  exec(query: string): Promise<unknown>;
}
export interface D1StatementLike {
  bind(...values: unknown[]): D1StatementLike;
  all<T = Record<string, unknown>>(): Promise<D1ResultLike<T>>;
}
export interface D1ResultLike<T = unknown> {
  results: T[];
  meta: { changes: number; last_row_id: number; rows_read?: number; rows_written?: number };
}

export interface PeerEnv {
  DB: D1Like;
  BETTER_AUTH_SECRET: string;
  /** The origin the bench serves this worker on, e.g. http://127.0.0.1:40123. */
  BETTER_AUTH_URL: string;
}

export const BASE_PATH = "/api/auth";

/**
 * Defaults everywhere except where the bench would otherwise measure a limit instead of the work:
 * - rate limiting off (the tenancy API's limits are raised for the bench likewise);
 * - at most 100 pending invitations per organization by default: raised, since the bench creates
 *   thousands (the membership limit only applies to accepting and adding, which the bench skips);
 * - no email sender (the tenancy API is driven with `send_email: false`);
 * - telemetry off (no network here).
 * Password hashing stays Better Auth's default (scrypt, N=16384, r=16, p=1).
 */
export function authOptions(db: D1Like, env: Pick<PeerEnv, "BETTER_AUTH_SECRET" | "BETTER_AUTH_URL">) {
  return {
    database: db,
    secret: env.BETTER_AUTH_SECRET,
    baseURL: env.BETTER_AUTH_URL,
    basePath: BASE_PATH,
    trustedOrigins: [env.BETTER_AUTH_URL],
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    plugins: [organization({ invitationLimit: 1_000_000_000 })],
  } satisfies BetterAuthOptions;
}

export const createAuth = (db: D1Like, env: PeerEnv) => betterAuth(authOptions(db, env));
