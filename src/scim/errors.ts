import type { Context } from "hono";
import type { AppEnv } from "../env";
import { ApiError } from "../lib/errors";
import { z } from "../lib/openapi";

/** RFC 7644 §3.12 scimType values this server uses. */
export type ScimType =
  | "uniqueness"
  | "invalidFilter"
  | "invalidPath"
  | "invalidValue"
  | "invalidSyntax"
  | "mutability"
  | "noTarget"
  | "tooMany"
  | "invalidVers";

export const SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
export const SCIM_CONTENT_TYPE = "application/scim+json";

/** An error on /scim/v2: answered in the SCIM error schema, never as problem+json. */
export class ScimError extends Error {
  constructor(
    readonly status: number,
    detail: string,
    readonly scimType?: ScimType,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

/** What the rest of the API throws, said the SCIM way (validation, not found, limits, bad JSON). */
export function toScimError(err: unknown): ScimError {
  if (err instanceof ScimError) return err;
  if (err instanceof ApiError) {
    const type: ScimType | undefined =
      err.code === "malformed_json"
        ? "invalidSyntax"
        : err.code === "validation_failed"
          ? "invalidValue"
          : err.code === "unsupported_media_type"
            ? "invalidSyntax"
            : undefined;
    const detail = err.errors.length ? `${err.message} ${err.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}` : err.message;
    return new ScimError(err.status, detail, type, err.headers);
  }
  return new ScimError(500, "Internal error.");
}

export function scimErrorResponse(_c: Context<AppEnv>, err: ScimError): Response {
  const body = { schemas: [SCIM_ERROR_SCHEMA], status: String(err.status), ...(err.scimType ? { scimType: err.scimType } : {}), detail: err.message };
  return new Response(JSON.stringify(body), {
    status: err.status,
    headers: { "Content-Type": SCIM_CONTENT_TYPE, ...err.headers, ...(err.status === 401 ? { "WWW-Authenticate": 'Bearer realm="scim"' } : {}) },
  });
}

export const scimJson = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": SCIM_CONTENT_TYPE, ...headers } });

/** A documented SCIM response: the media type every /scim/v2 answer carries. */
export const scimContent = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { [SCIM_CONTENT_TYPE]: { schema } } });

/** RFC 7644 §3.12: how /scim/v2 answers every error (never problem+json). */
export const ScimErrorSchema = z
  .object({
    schemas: z.array(z.string()).openapi({ example: [SCIM_ERROR_SCHEMA] }),
    status: z.string().openapi({ description: "The HTTP status, as a string.", example: "400" }),
    scimType: z.string().optional().openapi({ description: "RFC 7644 §3.12's detail error keyword (`uniqueness`, `invalidFilter`, …), when one applies." }),
    detail: z.string(),
  })
  .openapi("ScimError");

const SCIM_ERRORS: Record<number, string> = {
  400: "Bad request: `invalidFilter`, `invalidPath`, `invalidValue`, `invalidSyntax`, `mutability`, `noTarget`, `tooMany` or `invalidVers`.",
  401: "The SCIM token is missing, invalid or was replaced.",
  403: "SCIM is not enabled for this identity provider config.",
  404: "No such resource in this directory.",
  409: "`uniqueness`: the userName, externalId or displayName is taken.",
  412: "`If-Match` names a version that is no longer current.",
  413: "The request body is larger than 1 MiB.",
  415: "The body is not JSON (`application/scim+json` or `application/json`).",
  429: "Too many requests; see `Retry-After`.",
};

/** The errors a /scim/v2 route may answer, for its OpenAPI entry (scimRoute adds them). */
export function scimErrorResponses(hasBody: boolean) {
  const statuses = hasBody ? [400, 401, 403, 404, 409, 412, 413, 415, 429] : [400, 401, 403, 404, 412, 429];
  return Object.fromEntries(statuses.map((status) => [status, scimContent(ScimErrorSchema, SCIM_ERRORS[status]!)]));
}
