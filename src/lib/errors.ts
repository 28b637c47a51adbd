import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";

/**
 * The closed list of problem codes. Each code has one status and one title, so clients can
 * switch on `code` and the OpenAPI document can list every error a route may return.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, title: "The request is not valid" },
  malformed_json: { status: 400, title: "The request body is not valid JSON" },
  invalid_page_token: { status: 400, title: "The page token is not valid for this request" },
  invalid_filter: { status: 400, title: "The filter expression is not valid" },
  invalid_order_by: { status: 400, title: "The order_by expression is not valid" },
  weak_password: { status: 400, title: "The password is too weak" },
  invalid_token: { status: 400, title: "The token is not valid" },
  unauthenticated: { status: 401, title: "Authentication is required" },
  invalid_credentials: { status: 401, title: "The email or password is wrong" },
  refresh_token_reused: { status: 401, title: "The refresh token was already used" },
  sso_failed: { status: 401, title: "The single sign-on response was refused" },
  forbidden: { status: 403, title: "The caller may not do this" },
  insufficient_scope: { status: 403, title: "The token lacks the scope this route needs" },
  sso_required: { status: 403, title: "This account must sign in with SSO" },
  invitation_email_mismatch: { status: 403, title: "The invitation is for another email" },
  reauthentication_required: { status: 403, title: "Sign in again to do this" },
  license_inactive: { status: 403, title: "The license is revoked or expired" },
  not_found: { status: 404, title: "The resource does not exist" },
  user_not_found: { status: 404, title: "No user has this email" },
  method_not_allowed: { status: 405, title: "The method is not allowed on this resource" },
  conflict: { status: 409, title: "The request conflicts with the current state" },
  email_taken: { status: 409, title: "An account with this email already exists" },
  slug_taken: { status: 409, title: "The slug is taken" },
  already_member: { status: 409, title: "The user is already a member" },
  email_not_verified: { status: 409, title: "The account's email address is not verified" },
  last_admin: { status: 409, title: "An organization must keep at least one admin" },
  seat_limit_reached: { status: 409, title: "The organization has no free seats" },
  organization_inactive: { status: 409, title: "The organization is inactive" },
  role_in_use: { status: 409, title: "The role is assigned to members" },
  invitation_pending: { status: 409, title: "A pending invitation for this email exists" },
  domain_not_verified: { status: 409, title: "The domain is not verified" },
  license_in_use: { status: 409, title: "The license serves another organization" },
  domain_taken: { status: 409, title: "The domain is verified by another organization" },
  invitation_not_pending: { status: 410, title: "The invitation is no longer pending" },
  payload_too_large: { status: 413, title: "The request body is larger than 1 MiB" },
  unsupported_media_type: { status: 415, title: "The request body must be application/json" },
  unprocessable: { status: 422, title: "The request cannot be processed" },
  public_email_domain: { status: 422, title: "Public email domains cannot be claimed" },
  domain_verification_failed: { status: 422, title: "The verification record was not found" },
  rate_limited: { status: 429, title: "Too many requests" },
  internal: { status: 500, title: "Internal error" },
  dns_lookup_failed: { status: 502, title: "The DNS resolver failed or could not be reached" },
  service_unavailable: { status: 503, title: "A dependency is unavailable" },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldError {
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[];
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    detail?: string,
    opts: { errors?: FieldError[]; extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(detail ?? ERROR_CODES[code].title);
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.errors = opts.errors ?? [];
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }
}

/** Shorthands for the errors every route raises. */
export const notFound = (what = "resource") => new ApiError("not_found", `The ${what} does not exist.`);
export const forbidden = (detail?: string) => new ApiError("forbidden", detail);

export function validationError(issues: FieldError[], detail = "One or more fields are invalid.") {
  return new ApiError("validation_failed", detail, { errors: issues });
}

/** Maps every zod issue to `{path, message}` so the client sees each bad field at once. */
export function zodIssues(error: ZodError): FieldError[] {
  const out: FieldError[] = [];
  const wrongType = new Set<string>();
  for (const issue of error.issues) {
    const path = issue.path.map(String).join(".") || "(root)";
    // A value of the wrong type gets one message; checks meant for the right type add only noise.
    if (wrongType.has(path)) continue;
    if (issue.code === "invalid_type") {
      wrongType.add(path);
      for (let i = out.length - 1; i >= 0; i--) if (out[i]!.path === path) out.splice(i, 1);
    }
    out.push({ path, message: issue.message });
  }
  return out;
}

export function problemBody(err: ApiError, requestId: string) {
  return {
    type: `https://docs.tenancy.dev/problems/${err.code}`,
    title: ERROR_CODES[err.code].title,
    status: err.status,
    detail: err.message,
    code: err.code,
    request_id: requestId,
    errors: err.errors,
    ...err.extra,
  };
}

export function problemResponse(c: Context, err: ApiError): Response {
  const requestId = (c.get("requestId") as string | undefined) ?? "";
  const res = c.json(problemBody(err, requestId), err.status as ContentfulStatusCode, {
    "Content-Type": "application/problem+json",
    ...err.headers,
  });
  return res;
}

/**
 * The innermost message of an error chain. Drizzle wraps driver errors as "Failed query: <sql>
 * params: <values>"; the values may be secrets' hashes, so logs and checks use the root cause.
 */
export function rootMessage(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 5 && e instanceof Error && e.cause !== undefined; i++) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** True when a write failed on the unique constraint of `table.column`. */
export function isUniqueViolation(err: unknown, column: string): boolean {
  return rootMessage(err).includes(`UNIQUE constraint failed: ${column}`);
}

/** Turns anything thrown into an ApiError; unknown errors become a 500 that leaks nothing. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 413) return new ApiError("payload_too_large");
    if (err.status === 415) return new ApiError("unsupported_media_type");
    if (err.status === 400 && /json/i.test(err.message)) {
      return new ApiError("malformed_json", "The request body could not be parsed as JSON.");
    }
    if (err.status === 400) return new ApiError("validation_failed", err.message);
    if (err.status === 401) return new ApiError("unauthenticated");
    if (err.status === 404) return new ApiError("not_found");
  }
  return new ApiError("internal", "An unexpected error occurred. Quote the request_id when reporting it.");
}
