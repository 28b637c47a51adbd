import type { Context } from "hono";
import type { AppEnv } from "../env";
import { ApiError } from "../lib/errors";

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
