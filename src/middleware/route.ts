import { OpenAPIHono, type RouteConfig, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { newAuditTrail, type AppEnv, type AuditTrail, type OrgCtx, type ServiceCtx } from "../env";
import type { Caller, PatActor, SessionActor } from "../lib/actor";
import { ApiError, validationError, zodIssues, type ErrorCode, type FieldError } from "../lib/errors";
import { errorResponses } from "../lib/openapi";
import { scopeFor, type OrgAccess, type Scope } from "../lib/permissions";
import { callerOf, presentedCredential, unauthenticated, type Presented } from "./authenticate";
import { authorizeOrg, type Judged, type Load, type Loaded, type LoadResult, type OrgRule } from "./authorize";
import { admitClient, clientIp } from "./rate-limit";
import type { AuditAction } from "../audit/catalogue";

/**
 * The seam every route goes through. A route declares who may call it and, for organization
 * routes, what it reads (`load`); the seam authenticates, rate-limits, judges the input, settles
 * authorization (running `load` in the same D1 round trip), and only then calls `handle` with
 * typed results and a plain ServiceCtx. Handlers never authorize, and services never reach back
 * up here.
 */

export function createRouter() {
  return new OpenAPIHono<AppEnv>();
}
export type Router = ReturnType<typeof createRouter>;

/** Who may call a route; published per route as `x-authorization` in the OpenAPI document. */
export type AuthRule =
  | { kind: "public" }
  /** Any valid credential, service account keys included. */
  | { kind: "any" }
  /** A user: an access token, or a PAT carrying `scope` when one is named. Service account keys get 403. */
  | { kind: "user"; scope?: Scope }
  /** An interactive session (access token) only: account-level changes no token may make. */
  | { kind: "session" }
  | ({ kind: "org" } & OrgRule)
  /** A SCIM token of one identity provider config, on /scim/v2 only (src/scim/route.ts). */
  | { kind: "scim" };

type JsonBody = { content: { "application/json": { schema: z.ZodType } }; required?: boolean; description?: string };
export type { Doc };
export interface RequestSpec {
  params?: z.ZodType;
  query?: z.ZodType;
  body?: JsonBody;
}

type Out<T> = T extends z.ZodType ? z.output<T> : Record<string, never>;
export interface InputOf<R> {
  param: R extends { params: infer P } ? Out<P> : Record<string, never>;
  query: R extends { query: infer Q } ? Out<Q> : Record<string, never>;
  json: R extends { body: { content: { "application/json": { schema: infer B } } } } ? Out<B> : undefined;
}

/** What a route says about itself in OpenAPI (listed field by field: RouteConfig's index signature would swallow `load` and `handle`). */
type Doc<R> = {
  method: "get" | "post" | "put" | "patch" | "delete";
  path: string;
  tags?: string[];
  summary?: string;
  description?: string;
  deprecated?: boolean;
  request?: R;
  responses: RouteConfig["responses"];
  /** Errors the route may answer beyond those its rule implies; listed in OpenAPI. */
  errors?: readonly ErrorCode[];
  /**
   * The audit actions a successful call records (published as `x-audit-actions`). Required on every
   * mutating organization and SCIM route; the seam checks after a 2xx that an entry was written
   * in the change's batch (or that the service said nothing changed).
   */
  audit?: readonly AuditAction[];
};

type Handler<A> = (args: A, c: Context<AppEnv>) => Response | Promise<Response>;

type CallerFor<K extends "any" | "user" | "session"> = K extends "session" ? SessionActor : K extends "user" ? SessionActor | PatActor : Caller;

export function publicRoute<const R extends RequestSpec | undefined = undefined>(
  router: Router,
  spec: Doc<R> & {
    /** `optional`: a credential, when sent, is authenticated (401 if bad) and handed over as `actor`. */
    caller?: "optional";
    handle: Handler<{ ctx: ServiceCtx<null>; actor: Caller | null; input: InputOf<R> }>;
  },
) {
  register(router, { kind: "public" }, spec, async (c) => {
    // Unauthenticated work is budgeted per client; /healthz and the key set are not API calls.
    if (c.req.path.startsWith("/v1/")) await admitClient(c);
    const presented = spec.caller === "optional" ? await presentedCredential(c) : null;
    const input = await judgeInput(c, spec.request);
    const actor = presented ? await callerOf(c, presented) : null;
    if (!input.ok) throw input.error;
    const ctx = serviceCtx(c, null);
    return audited(c, spec, ctx.audit, await spec.handle({ ctx, actor, input: input.value }, c));
  });
}

export function callerRoute<const R extends RequestSpec | undefined = undefined, const K extends "any" | "user" | "session" = "any">(
  router: Router,
  spec: Doc<R> & {
    auth: K;
    scope?: Scope;
    /** The route answers with the signed-in user: `c.var.sessionUser` is set for an access token (see presentedCredential). */
    sessionProfile?: true;
    handle: Handler<{ ctx: ServiceCtx<CallerFor<K>>; actor: CallerFor<K>; input: InputOf<R> }>;
  },
) {
  const rule: AuthRule = spec.auth === "user" ? { kind: "user", scope: spec.scope } : { kind: spec.auth };
  register(router, rule, spec, async (c) => {
    const presented = await requireCredential(c, { profile: spec.sessionProfile === true });
    const input = await judgeInput(c, spec.request);
    const caller = await callerOf(c, presented);
    assertCallerRule(rule, caller);
    if (!input.ok) throw input.error;
    const actor = caller as CallerFor<K>;
    const ctx = serviceCtx(c, actor);
    return audited(c, spec, ctx.audit, await spec.handle({ ctx, actor, input: input.value }, c));
  });
}

export function orgRoute<const R extends RequestSpec | undefined, L extends LoadResult = undefined>(
  router: Router,
  spec: Doc<R> &
    OrgRule & {
      load?: Load<InputOf<R>, L>;
      handle: Handler<{ ctx: OrgCtx; actor: Caller; access: OrgAccess; input: InputOf<R>; loaded: Loaded<L> }>;
    },
) {
  if (!spec.path.includes("{org_id}")) throw new Error(`${spec.path}: an organization route needs {org_id}`);
  requireAuditDeclaration(spec);
  const rule: OrgRule = { permission: spec.permission, allowInactive: spec.allowInactive, selfParam: spec.selfParam };
  register(router, { kind: "org", ...rule }, spec, async (c) => {
    const presented = await requireCredential(c);
    const input = await judgeInput(c, spec.request);
    const { caller, access, loaded } = await authorizeOrg(c, presented, rule, input, spec.load);
    const ctx: OrgCtx = { ...serviceCtx(c, caller), org: access };
    return audited(c, spec, ctx.audit, await spec.handle({ ctx, actor: caller, access, input: (input as { value: InputOf<R> }).value, loaded }, c));
  });
}

/** A mutating organization or SCIM route declares what it records; a route that changes nothing is a GET. */
export function requireAuditDeclaration(spec: { method: string; path: string; audit?: readonly AuditAction[] }) {
  if (spec.method !== "get" && !spec.audit?.length)
    throw new Error(`${spec.method.toUpperCase()} ${spec.path}: a mutating route must declare its audit actions`);
}

/**
 * After a route that declares audit actions answered 2xx: the change's batch wrote an entry, or
 * the service said nothing changed. Outside production a miss is a 500, so every success-path
 * test checks it; in production the change has happened, so it is logged, not failed.
 */
export function audited(
  c: Context<AppEnv>,
  spec: { method: string; path: string; audit?: readonly AuditAction[] },
  trail: AuditTrail,
  res: Response,
): Response {
  if (!spec.audit?.length || res.status >= 300 || trail.written > 0 || trail.unchanged) return res;
  const msg = `${spec.method.toUpperCase()} ${spec.path} answered ${res.status} without writing an audit entry`;
  if (c.var.config.environment === "production") {
    console.error(JSON.stringify({ level: "error", request_id: c.var.requestId, msg }));
    return res;
  }
  throw new Error(msg);
}

/** The plain context a service verb receives. */
function serviceCtx<A extends Caller | null>(c: Context<AppEnv>, actor: A): ServiceCtx<A> {
  return {
    db: c.var.db,
    kv: c.var.kv,
    config: c.var.config,
    env: c.env,
    actor,
    waitUntil: (p) => c.executionCtx.waitUntil(p),
    request: { id: c.var.requestId, ip: clientIp(c), userAgent: c.req.header("user-agent")?.slice(0, 256) ?? null },
    audit: newAuditTrail(),
  };
}

async function requireCredential(c: Context<AppEnv>, opts?: { profile?: boolean }): Promise<Presented> {
  const presented = await presentedCredential(c, opts);
  if (!presented) throw unauthenticated("Send `Authorization: Bearer <token>`.");
  return presented;
}

const insufficientScope = (needed: string) =>
  new ApiError("insufficient_scope", `This route needs the \`${needed}\` scope.`, { extra: { required_scope: needed } });

/** A token's scopes satisfy `scope` if they name it or its `:write` sibling. */
export function hasScope(scopes: readonly string[], scope: Scope): boolean {
  return scopes.includes(scope) || (scope.endsWith(":read") && scopes.includes(scope.replace(/:read$/, ":write")));
}

function assertCallerRule(rule: AuthRule, caller: Caller) {
  if (rule.kind === "session" && caller.kind !== "session")
    throw new ApiError("forbidden", "This route needs a signed-in session; tokens and keys cannot use it.");
  if (rule.kind === "user") {
    if (caller.kind === "service_account") throw new ApiError("forbidden", "Service account keys cannot use this route.");
    if (caller.kind === "pat" && rule.scope && !hasScope(caller.scopes, rule.scope)) throw insufficientScope(rule.scope);
  }
}

// ---- Input ----------------------------------------------------------------------------------

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;.*)?$/i;
// A `\ud800` escape decodes to half a character, which D1 would store as U+FFFD.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Parses the body strictly: bytes that are not UTF-8, or strings with lone surrogates, are malformed, not repaired. */
async function readJson(c: Context<AppEnv>, body: JsonBody): Promise<unknown> {
  const type = c.req.header("content-type");
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (!type) {
    if (bytes.length > 0) throw new ApiError("unsupported_media_type", "Send the body as application/json.");
    return {};
  }
  if (!JSON_TYPE.test(type)) throw new ApiError("unsupported_media_type", "Send the body as application/json.");
  if (bytes.length === 0 && !body.required) return {};
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ApiError("malformed_json", "The request body is not valid UTF-8.");
  }
  try {
    return JSON.parse(text, (key, value) => {
      if (LONE_SURROGATE.test(key) || (typeof value === "string" && LONE_SURROGATE.test(value))) throw new SyntaxError("lone surrogate");
      return value;
    });
  } catch {
    throw new ApiError("malformed_json", "The request body could not be parsed as JSON (or holds an unpaired \\u surrogate).");
  }
}

function queryObject(c: Context<AppEnv>): Record<string, string | string[]> {
  return Object.fromEntries(Object.entries(c.req.queries()).map(([k, v]) => [k, v.length === 1 ? v[0]! : v]));
}

/** The parameter names a query schema declares (its object shape, through any transform). */
function declaredQueryNames(schema: z.ZodType | undefined): Set<string> {
  let s = schema as unknown as { shape?: Record<string, unknown>; def?: { in?: unknown } } | undefined;
  while (s && !s.shape && s.def?.in) s = s.def.in as typeof s;
  return new Set(Object.keys(s?.shape ?? {}));
}

/**
 * Only `/v1` judges the query string strictly. SCIM keeps RFC 7644's leniency, since identity
 * providers send parameters a resource does not use; so do `/healthz` and `/.well-known/*`, which
 * monitors and key-set fetchers may call with a cache-buster.
 */
const strictQuery = (path: string) => path.startsWith("/v1/");

/**
 * A query parameter a `/v1` route does not declare is refused, never ignored: a misspelt `fliter`
 * would otherwise return an unfiltered list that looks like an answer.
 */
function unknownQueryParams(c: Context<AppEnv>, schema: z.ZodType | undefined): FieldError[] {
  if (!strictQuery(c.req.path)) return [];
  const declared = declaredQueryNames(schema);
  return Object.keys(c.req.queries())
    .filter((name) => !declared.has(name))
    .map((name) => ({ path: name, message: "unknown query parameter" }));
}

/** Validates params, query and body together: every bad field is listed at once. */
export async function judgeInput<R extends RequestSpec | undefined>(c: Context<AppEnv>, request: R): Promise<Judged<InputOf<R>>> {
  const issues: FieldError[] = unknownQueryParams(c, request?.query);
  const value: Record<string, unknown> = { param: {}, query: {}, json: undefined };
  try {
    const parts: ["param" | "query" | "json", z.ZodType | undefined, () => unknown | Promise<unknown>][] = [
      ["param", request?.params, () => c.req.param()],
      ["query", request?.query, () => queryObject(c)],
      ["json", request?.body?.content["application/json"].schema, () => readJson(c, request!.body!)],
    ];
    for (const [target, schema, raw] of parts) {
      if (!schema) continue;
      const parsed = schema.safeParse(await raw());
      if (parsed.success) value[target] = parsed.data;
      else issues.push(...zodIssues(parsed.error));
    }
  } catch (err) {
    if (err instanceof ApiError) return { ok: false, error: err };
    throw err;
  }
  if (issues.length > 0) return { ok: false, error: validationError(issues) };
  return { ok: true, value: value as unknown as InputOf<R> };
}

// ---- OpenAPI ----------------------------------------------------------------------------------

function describeRule(rule: AuthRule) {
  if (rule.kind === "org") return { kind: rule.kind, permission: rule.permission, scope: scopeFor(rule.permission) };
  if (rule.kind === "user") return { kind: rule.kind, scope: rule.scope ?? null };
  return { kind: rule.kind };
}

/** Errors any route may return, by the rule that guards it. */
function implicitErrors(rule: AuthRule, path: string, hasBody: boolean): ErrorCode[] {
  const errs: ErrorCode[] = [];
  if (rule.kind !== "public" || path.startsWith("/v1/")) errs.push("rate_limited");
  // Every /v1 route judges its query string (an undeclared parameter is 400), body or not.
  if (hasBody || strictQuery(path)) errs.push("validation_failed");
  if (hasBody) errs.push("malformed_json", "payload_too_large", "unsupported_media_type");
  if (rule.kind === "public") return errs;
  errs.push("unauthenticated", "forbidden");
  if (rule.kind === "org" || rule.kind === "user") errs.push("insufficient_scope");
  if (rule.kind === "org") errs.push("not_found");
  if (rule.kind === "org" && !rule.allowInactive) errs.push("organization_inactive");
  return errs;
}

export function register<R extends RequestSpec | undefined>(router: Router, rule: AuthRule, spec: Doc<R>, handler: (c: Context<AppEnv>) => Promise<Response>) {
  const { errors = [], method, path, request, description, responses } = spec;
  const documented = describeRule(rule);
  const notes = [
    "permission" in documented ? `Required permission: \`${documented.permission}\`.` : "",
    "scope" in documented && documented.scope ? `Required token scope: \`${documented.scope}\`.` : "",
  ].filter(Boolean);
  const doc = { ...spec } as Record<string, unknown>;
  for (const k of ["errors", "handle", "load", "permission", "allowInactive", "selfParam", "auth", "scope", "audit", "sessionProfile"]) delete doc[k];
  router.openAPIRegistry.registerPath({
    ...(doc as unknown as RouteConfig),
    method,
    path,
    request: request as RouteConfig["request"],
    description: [description ?? "", ...notes].filter(Boolean).join("\n\n") || undefined,
    security: rule.kind === "public" ? [] : [{ bearerAuth: [] }],
    "x-authorization": documented,
    ...(spec.audit?.length ? { "x-audit-actions": spec.audit } : {}),
    // SCIM routes document their own errors (RFC 7644's schema and media type; scimRoute adds them).
    responses: { ...(rule.kind === "scim" ? {} : errorResponses([...implicitErrors(rule, path, Boolean(request?.body)), ...errors])), ...responses },
  } as RouteConfig);
  router.on(method.toUpperCase(), path.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1"), handler);
}
