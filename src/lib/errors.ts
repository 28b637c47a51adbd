import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ZodError } from "zod";

/**
 * The closed list of problem codes. Each code has one status and one title, so clients can
 * switch on `code` and the OpenAPI document can list every error a route may return; `action`
 * tells the caller what to do, on the catalogue page each problem's `type` points at.
 */
export const ERROR_CODES = {
  validation_failed: {
    status: 400,
    title: "The request is not valid",
    action: "Fix each field listed in `errors` (its `path` and `message`) and send the request again.",
  },
  malformed_json: {
    status: 400,
    title: "The request body is not valid JSON",
    action: "Send a valid UTF-8 JSON body; strings must not hold unpaired surrogate escapes.",
  },
  invalid_page_token: {
    status: 400,
    title: "The page token is not valid for this request",
    action: "Use `next_page_token` exactly as returned, with the same `filter` and `order_by` as the request that produced it; or start again without a token.",
  },
  invalid_filter: {
    status: 400,
    title: "The filter expression is not valid",
    action:
      'Correct the `filter` expression: use the fields the list documents and the AIP-160 subset (`field = "v"`, `field != "v"`, `field:"v"`, joined with `AND`).',
  },
  invalid_order_by: {
    status: 400,
    title: "The order_by expression is not valid",
    action: "Correct `order_by`: comma-separated sortable fields the list documents, each optionally followed by ` desc`.",
  },
  weak_password: { status: 400, title: "The password is too weak", action: "Choose a longer password that is not a common one." },
  invalid_token: {
    status: 400,
    title: "The token is not valid",
    action: "The link or code is invalid, used or expired: ask for a new one (a new email, a new invitation or a new sign-in).",
  },
  unauthenticated: {
    status: 401,
    title: "Authentication is required",
    action: "Send `Authorization: Bearer <token>` with a valid access token, personal access token or service account key; refresh an expired access token.",
  },
  invalid_credentials: {
    status: 401,
    title: "The email or password is wrong",
    action: "Check the email and password and try again; repeated failures are rate limited.",
  },
  refresh_token_reused: {
    status: 401,
    title: "The refresh token was already used",
    action: "The session was ended as a precaution: sign in again, and keep only the newest refresh token.",
  },
  sso_failed: {
    status: 401,
    title: "The single sign-on response was refused",
    action: "Sign in again through the identity provider; if it keeps failing, an admin should check the identity provider configuration.",
  },
  forbidden: { status: 403, title: "The caller may not do this", action: "Ask an organization admin for a role that holds the permission this route names." },
  insufficient_scope: {
    status: 403,
    title: "The token lacks the scope this route needs",
    action: "Use a token that carries the scope named in `required_scope`, or an access token from a sign-in.",
  },
  sso_required: {
    status: 403,
    title: "This account must sign in with SSO",
    action: "Sign in through your organization's identity provider (single sign-on) instead of with a password.",
  },
  invitation_email_mismatch: {
    status: 403,
    title: "The invitation is for another email",
    action: "Sign in with the account whose email the invitation was sent to.",
  },
  reauthentication_required: {
    status: 403,
    title: "Sign in again to do this",
    action: "Sign in again (POST /v1/auth/login) and retry with the new access token.",
  },
  license_inactive: {
    status: 403,
    title: "The license is revoked or expired",
    action: "Renew or replace the license; `license_status` says whether it is revoked or expired.",
  },
  not_found: {
    status: 404,
    title: "The resource does not exist",
    action: "Check the id and the path; a resource of an organization you do not belong to is also reported as not found.",
  },
  user_not_found: { status: 404, title: "No user has this email", action: "No account has this email: send an invitation instead." },
  method_not_allowed: { status: 405, title: "The method is not allowed on this resource", action: "Use one of the methods listed in the `Allow` header." },
  conflict: {
    status: 409,
    title: "The request conflicts with the current state",
    action: "Read the resource again and retry, or resolve what `detail` names first.",
  },
  email_taken: { status: 409, title: "An account with this email already exists", action: "Sign in with that email instead of signing up again." },
  slug_taken: { status: 409, title: "The slug is taken", action: "Choose another slug." },
  already_member: {
    status: 409,
    title: "The user is already a member",
    action: "Nothing to do: the user is already a member; change their role instead if needed.",
  },
  email_not_verified: {
    status: 409,
    title: "The account's email address is not verified",
    action: "The account must verify its email first; send an invitation instead.",
  },
  last_admin: { status: 409, title: "An organization must keep at least one admin", action: "Make another member an admin first." },
  seat_limit_reached: {
    status: 409,
    title: "The organization has no free seats",
    action: "Free a seat (remove a member or revoke a pending invitation) or move to a plan with more seats.",
  },
  organization_inactive: {
    status: 409,
    title: "The organization is inactive",
    action: 'Reactivate the organization (PATCH it with `{"active": true}`); until then it is read-only.',
  },
  role_in_use: { status: 409, title: "The role is assigned to members", action: "Move the members holding this role to another role first." },
  invitation_pending: {
    status: 409,
    title: "A pending invitation for this email exists",
    action: "Resend or revoke the pending invitation instead of creating another.",
  },
  domain_not_verified: { status: 409, title: "The domain is not verified", action: "Verify the domain first (publish its TXT record and call verify)." },
  license_in_use: {
    status: 409,
    title: "The license serves another organization",
    action: "Unassign the license from the organization it serves, or use another license.",
  },
  domain_taken: {
    status: 409,
    title: "The domain is verified by another organization",
    action: "Another organization has verified this domain; it must remove the domain before you can claim it.",
  },
  invitation_not_pending: {
    status: 410,
    title: "The invitation is no longer pending",
    action: "The invitation was accepted, revoked or has expired: ask for a new one.",
  },
  payload_too_large: { status: 413, title: "The request body is larger than 1 MiB", action: "Send a body of at most 1 MiB." },
  unsupported_media_type: {
    status: 415,
    title: "The request body must be application/json",
    action: "Send the body as JSON with `Content-Type: application/json`.",
  },
  unprocessable: {
    status: 422,
    title: "The request cannot be processed",
    action: "Correct the values `detail` names (for example ids that must belong to this organization).",
  },
  public_email_domain: {
    status: 422,
    title: "Public email domains cannot be claimed",
    action: "Claim a domain your organization owns; public email providers' domains cannot be claimed.",
  },
  domain_verification_failed: {
    status: 422,
    title: "The verification record was not found",
    action: "Publish the TXT record exactly as given, wait for DNS to propagate, and verify again.",
  },
  rate_limited: { status: 429, title: "Too many requests", action: "Wait for the seconds in `Retry-After`, then retry." },
  internal: { status: 500, title: "Internal error", action: "Retry later; if it persists, report it quoting the `request_id`." },
  dns_lookup_failed: {
    status: 502,
    title: "The DNS resolver failed or could not be reached",
    action: "Retry later: the DNS resolver failed or could not be reached.",
  },
  service_unavailable: { status: 503, title: "A dependency is unavailable", action: "Retry later, with backoff." },
} as const satisfies Record<string, { status: number; title: string; action: string }>;

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

  constructor(code: ErrorCode, detail?: string, opts: { errors?: FieldError[]; extra?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
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

/**
 * A problem's `type`: the code's entry in the catalogue the API serves itself (GET /docs/problems),
 * so the URI is dereferenceable on any deployment and never points at a domain we do not own.
 */
export const problemTypeUri = (apiBaseUrl: string, code: ErrorCode) => `${apiBaseUrl.replace(/\/+$/, "")}/docs/problems#${code}`;

export function problemBody(err: ApiError, requestId: string, apiBaseUrl: string) {
  return {
    type: problemTypeUri(apiBaseUrl, err.code),
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
  // A worker whose configuration failed to load still answers with a resolvable type: its own origin.
  const apiBaseUrl = (c.get("config") as { apiBaseUrl: string } | undefined)?.apiBaseUrl ?? new URL(c.req.url).origin;
  const res = c.json(problemBody(err, requestId, apiBaseUrl), err.status as ContentfulStatusCode, {
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
