import { createRoute, OpenAPIHono, z, type RouteConfig } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { authorize, describeRule, type AuthRule } from "../middleware/authorize";
import { ERROR_CODES, validationError, zodIssues, type ErrorCode } from "./errors";

export { z };

// A missing field reads "is required" rather than "expected string, received undefined".
z.config({ customError: (issue) => (issue.input === undefined && issue.code === "invalid_type" ? "is required" : undefined) });

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    request_id: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })),
  })
  .openapi("Problem");

/** Every router comes from here, so every validation failure becomes the same problem+json. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(zodIssues(result.error));
    },
  });
}

export type Router = ReturnType<typeof createRouter>;

/** Errors any route may return, by the rule that guards it. */
function implicitErrors(rule: AuthRule, hasBody: boolean): ErrorCode[] {
  const errs: ErrorCode[] = ["rate_limited"];
  if (hasBody) errs.push("validation_failed", "malformed_json", "payload_too_large", "unsupported_media_type");
  if (rule.kind === "public") return errs;
  errs.push("unauthenticated", "forbidden");
  if (rule.kind === "org" || rule.kind === "user") errs.push("insufficient_scope");
  if (rule.kind === "org") errs.push("not_found");
  if (rule.kind === "org" && !rule.allowInactive) errs.push("organization_inactive");
  return errs;
}

function errorResponses(codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      status,
      {
        description: list.map((c) => `\`${c}\``).join(", "),
        content: { "application/problem+json": { schema: ProblemSchema } },
      },
    ]),
  );
}

type RouteInput = Omit<RouteConfig, "middleware"> & { errors?: readonly ErrorCode[] };

/**
 * The only way routes are defined: attaches the authorization middleware for `auth`, documents
 * the rule (`x-authorization`, security, required scope) and the route's errors in OpenAPI.
 */
export function defineRoute<const R extends RouteInput>(auth: AuthRule, config: R) {
  const { errors = [], ...route } = config;
  const hasBody = Boolean(route.request?.body);
  const rule = describeRule(auth);
  const scopeNote =
    "scope" in rule && rule.scope ? `\n\nRequired token scope: \`${rule.scope}\`.` : "";
  const permissionNote = "permission" in rule ? `\n\nRequired permission: \`${rule.permission}\`.` : "";
  return createRoute({
    ...route,
    description: `${route.description ?? ""}${permissionNote}${scopeNote}`.trim() || undefined,
    security: auth.kind === "public" ? [] : [{ bearerAuth: [] }],
    "x-authorization": rule,
    middleware: authorize(auth) as MiddlewareHandler<AppEnv>,
    responses: { ...errorResponses([...implicitErrors(auth, hasBody), ...errors]), ...route.responses },
  } as unknown as Omit<R, "errors"> & { middleware: MiddlewareHandler<AppEnv> }) as unknown as Omit<R, "errors"> & {
    middleware: MiddlewareHandler<AppEnv>;
  };
}

/** JSON request body; required so a missing or non-JSON body is rejected, never read as `{}`. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true as const, description, content: { "application/json": { schema } } };
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export const noContent = { description: "No content" } as const;

/** Path parameters are plain strings: a malformed id is a 404 from the service, never a 400. */
export const pathParam = (name: string) => z.string().openapi({ param: { name, in: "path" } });
