import { eq, is, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { SQLiteSelectBase } from "drizzle-orm/sqlite-core";
import type { Context } from "hono";
import type { ReadDb, ReadQuery } from "../db/authz";
import { identityProviderConfigs, scimLogs } from "../db/schema";
import { newAuditTrail, type AppEnv, type ServiceCtx } from "../env";
import { sha256Hex } from "../lib/crypto";
import { newId, SCIM_TOKEN_PREFIX } from "../lib/ids";
import { audited, judgeInput, register, requireAuditDeclaration, type Doc, type InputOf, type RequestSpec, type Router } from "../middleware/route";
import { admit, clientIp } from "../middleware/rate-limit";
import { ScimError, scimErrorResponse, scimErrorResponses, toScimError } from "./errors";

/**
 * The seam of /scim/v2, like orgRoute's for /v1: a SCIM token of one identity provider config is
 * the only credential; the token's row and the route's `load` run in one D1 batch, every load
 * statement reading through `dir.configId` (NULL for a bad or replaced token, so it reads
 * nothing); every authenticated request is logged for `…/scim-logs`. Errors are answered in the
 * SCIM error schema, never as problem+json.
 */

/** What a load reads through: the config the token belongs to, as SQL. */
export interface ScimScope {
  /** `(select id …)` of the token's config, NULL for an unknown token or a config without SCIM. */
  readonly configId: SQL;
}

/** The directory a SCIM token speaks for: one identity provider config of one organization. */
export interface ScimDirectory {
  configId: string;
  organizationId: string;
}

export type ScimCtx = ServiceCtx<null> & {
  dir: ScimDirectory;
  /** As given to the load (ScimLoadEnv.tokenKey). */
  tokenKey: string;
  /** A short, secret-free line for the request log ("created user bob@acme.com"). */
  note(summary: string): void;
};

const GUARD = /\bidentity_provider_configs scim_authz\b/;

type ScimStatements = Record<string, ReadQuery | undefined> | undefined;
/**
 * One statement, or a record of them; an async load (one that reads KV first) returns a record:
 * a drizzle statement is itself a promise, so awaiting one returned bare would run it alone.
 */
type ScimLoadResult = ReadQuery | ScimStatements | Promise<ScimStatements>;
type ScimLoadedRecord<R> = R extends Record<string, unknown> ? { [K in keyof R]: R[K] extends undefined ? undefined : Awaited<R[K]> } : undefined;
type ScimLoaded<L> = L extends ReadQuery ? Awaited<L> : L extends Promise<infer R> ? ScimLoadedRecord<R> : ScimLoadedRecord<L>;

/** What a load may use besides the database: KV, and a key naming the presenting token (not the token nor its stored hash). */
export interface ScimLoadEnv {
  kv: KVNamespace;
  /** Stable per token, changes when the token is replaced: scopes per-client KV state such as page cursors. */
  tokenKey: string;
}

export function scimRoute<const R extends RequestSpec | undefined, L extends ScimLoadResult = undefined>(
  router: Router,
  spec: Doc<R> & {
    load?: (args: { db: ReadDb; dir: ScimScope; input: InputOf<R> } & ScimLoadEnv) => L;
    handle: (args: { ctx: ScimCtx; input: InputOf<R>; loaded: ScimLoaded<L> }, c: Context<AppEnv>) => Response | Promise<Response>;
  },
) {
  if (!spec.path.startsWith("/scim/v2/")) throw new Error(`${spec.path}: SCIM routes live under /scim/v2`);
  requireAuditDeclaration(spec);
  register(router, { kind: "scim" }, { ...spec, responses: { ...scimErrorResponses(Boolean(spec.request?.body)), ...spec.responses } }, async (c) => {
    let summary = "";
    let dir: ScimDirectory | undefined;
    let status = 500;
    try {
      const hash = await tokenHash(c);
      const input = await judgeInput(c, spec.request);
      const scope: ScimScope = {
        configId: sql`(select scim_authz.id from identity_provider_configs scim_authz where scim_authz.scim_token_hash = ${hash} and scim_authz.scim_enabled = 1)`,
      };
      const tokenKey = await sha256Hex(`scim-client:${hash}`);
      const statements = input.ok && spec.load ? await entries(spec.load({ db: c.var.db, dir: scope, input: input.value, kv: c.var.kv, tokenKey })) : [];
      const tokenRow = c.var.db
        .select({
          configId: identityProviderConfigs.id,
          organizationId: identityProviderConfigs.organizationId,
          scimEnabled: identityProviderConfigs.scimEnabled,
        })
        .from(identityProviderConfigs)
        .where(eq(identityProviderConfigs.scimTokenHash, hash))
        .limit(1);
      const batch = [tokenRow, ...statements.map(([, q]) => q)] as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]];
      const results = (batch.length === 1 ? [await batch[0]] : await c.var.db.batch(batch)) as unknown[];
      const row = (results[0] as { configId: string; organizationId: string; scimEnabled: boolean }[])[0];
      if (!row) throw new ScimError(401, "The SCIM token is invalid or was replaced.");
      dir = { configId: row.configId, organizationId: row.organizationId };
      if (!row.scimEnabled) throw new ScimError(403, "SCIM is not enabled for this identity provider config.");
      if (!input.ok) throw input.error;
      const values = results.slice(1);
      const loaded =
        statements.length === 0 ? undefined : statements[0]![0] === null ? values[0] : Object.fromEntries(statements.map(([k], i) => [k, values[i]]));
      const ctx: ScimCtx = {
        db: c.var.db,
        kv: c.var.kv,
        config: c.var.config,
        env: c.env,
        actor: null,
        waitUntil: (p) => c.executionCtx.waitUntil(p),
        request: { id: c.var.requestId, ip: clientIp(c), userAgent: c.req.header("user-agent")?.slice(0, 256) ?? null },
        audit: newAuditTrail(),
        dir,
        tokenKey,
        note: (s) => {
          summary = s.slice(0, 200);
        },
      };
      const res = audited(c, spec, ctx.audit, await spec.handle({ ctx, input: (input as { value: InputOf<R> }).value, loaded: loaded as ScimLoaded<L> }, c));
      status = res.status;
      return res;
    } catch (err) {
      const scimErr = toScimError(err);
      if (scimErr.status >= 500)
        console.error(
          JSON.stringify({ level: "error", request_id: c.var.requestId, path: c.req.routePath, error: err instanceof Error ? err.message : String(err) }),
        );
      status = scimErr.status;
      if (!summary) summary = scimErr.message.slice(0, 200);
      return scimErrorResponse(c, scimErr);
    } finally {
      // Only a request whose token named a config can be logged under it.
      if (dir) logRequest(c, dir, status, summary);
    }
  });
}

async function tokenHash(c: Context<AppEnv>): Promise<string> {
  const token = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
  if (!token) throw new ScimError(401, "Send `Authorization: Bearer <SCIM token>`.");
  if (!token.startsWith(`${SCIM_TOKEN_PREFIX}_`)) throw new ScimError(401, "Only a SCIM token (scim_…) is accepted on /scim/v2.");
  const hash = await sha256Hex(token);
  await admit(c, { bucket: "credential", subject: `scim:${hash}`, limit: c.var.config.credentialRateLimitPerMinute, windowSeconds: 60 });
  return hash;
}

async function entries(result: ScimLoadResult): Promise<[string | null, ReadQuery][]> {
  const record = is(result, SQLiteSelectBase) ? result : result instanceof Promise ? await result : result;
  if (Array.isArray(record)) throw new Error("an async SCIM load returned rows: it must return a record of statements (awaiting one statement runs it)");
  const list: [string | null, ReadQuery][] =
    record === undefined
      ? []
      : is(record, SQLiteSelectBase)
        ? [[null, record as ReadQuery]]
        : Object.entries(record).filter((e): e is [string, ReadQuery] => e[1] !== undefined);
  for (const [, q] of list) {
    if (!is(q, SQLiteSelectBase)) throw new Error("a SCIM route's load must return select statements");
    const text = (q as unknown as { toSQL(): { sql: string } }).toSQL().sql;
    if (!GUARD.test(text)) throw new Error(`a SCIM route's load must read through dir.configId: ${text}`);
  }
  return list;
}

/** After the response: method, path (no query string: filters may carry personal data), status, summary. */
function logRequest(c: Context<AppEnv>, dir: ScimDirectory, status: number, summary: string) {
  const row = {
    id: newId("scimLog"),
    configId: dir.configId,
    organizationId: dir.organizationId,
    method: c.req.method,
    path: new URL(c.req.url).pathname.slice(0, 300),
    status,
    summary: summary || `${status}`,
    createdAt: Date.now(),
  };
  c.executionCtx.waitUntil(
    c.var.db
      .insert(scimLogs)
      .values(row)
      .then(
        () => undefined,
        (err) => console.error(JSON.stringify({ level: "warn", msg: "scim log write failed", error: String(err) })),
      ),
  );
}

/** Anything else under /scim/v2 is a SCIM 404, not a problem+json one. */
export function scimNotFound(router: Router) {
  router.all("/scim/v2/*", (c) => scimErrorResponse(c, new ScimError(404, `No SCIM endpoint ${c.req.method} ${new URL(c.req.url).pathname}.`)));
}
