import { jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import { orderByParam, pageOf, PageQuery, plainListQuery } from "../../lib/pagination";
import { callerRoute, createRouter } from "../../middleware/route";
import { MyOrganizationSchema } from "../organizations/organizations.schemas";
import { listUserOrganizations } from "../organizations/organizations.service";
import { ServiceAccountSchema } from "../service-accounts/service-accounts.schemas";
import { getServiceAccount } from "../service-accounts/service-accounts.service";
import { UserSchema, UserUpdateInput } from "../users/users.schemas";
import { deleteUser, getSelf, getUserRow, updateUser } from "../users/users.service";
import { ApiError } from "../../lib/errors";
import { CreatedTokenSchema, TokenCreateInput, TokenSchema } from "./tokens.schemas";
import { createToken, deleteToken, listTokens, RECENT_SIGN_IN_SECONDS } from "./tokens.service";

export const meRoutes = createRouter();

export const OrganizationListQuery = PageQuery.extend({
  active_only: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .openapi({ param: { name: "active_only", in: "query" }, type: "boolean", description: "Hide inactive organizations." }),
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description: 'AIP-160 subset over `name` (=, !=, : prefix) and `role` (=, !=), e.g. `name:"ac" AND role = "admin"`.',
    }),
  order_by: orderByParam({ fields: ["organization.created_at"], default: "organization.created_at", only: true }),
});

callerRoute(meRoutes, {
  auth: "any",
  sessionProfile: true,
  method: "get",
  path: "/v1/me",
  tags: ["Me"],
  summary: "The caller",
  description:
    "The user behind an access token or PAT; for a service account key, the service account (its id starts `sa_`). With an access token the answer comes from the token's claims, or from the copy a change of the account published since (read with the session check): no database read. A change made in another region can take up to a minute to show there; refreshing the token shows it at once.",
  responses: { 200: jsonResponse(z.union([UserSchema, ServiceAccountSchema]), "The caller's account.") },
  handle: async ({ ctx, actor }, c) => {
    if (actor.kind === "service_account") return c.json(await getServiceAccount(ctx, actor.organizationId, actor.serviceAccountId), 200);
    const sessionUser = actor.kind === "session" ? c.var.sessionUser : undefined;
    return c.json(sessionUser ?? (await getSelf(ctx, actor.userId)), 200);
  },
});

callerRoute(meRoutes, {
  auth: "session",
  method: "patch",
  path: "/v1/me",
  tags: ["Me"],
  summary: "Update the signed-in user",
  description:
    "Changing the password or the email needs `old_password`. A new email starts unverified and gets a verification email. A password change ends every other session at once.",
  request: { body: jsonBody(UserUpdateInput) },
  responses: { 200: jsonResponse(UserSchema, "The updated account.") },
  errors: ["email_taken"],
  handle: async ({ ctx, actor, input }, c) => {
    const target = await getUserRow(ctx, actor.userId);
    if (!target) throw new ApiError("unauthenticated", "The account no longer exists.");
    return c.json(await updateUser(ctx, { target, byAdmin: false, currentSessionId: actor.sessionId, input: input.json }), 200);
  },
});

callerRoute(meRoutes, {
  auth: "session",
  method: "delete",
  path: "/v1/me",
  audit: ["member.removed"],
  tags: ["Me"],
  summary: "Delete the signed-in user's account",
  description:
    "Organizations where the account is the only member are deleted with it. If it is the last human admin of an organization with other members: 409 `last_admin`.",
  responses: { 204: noContent },
  errors: ["last_admin"],
  handle: async ({ ctx, actor }, c) => {
    await deleteUser(ctx, actor.userId);
    return c.body(null, 204);
  },
});

callerRoute(meRoutes, {
  auth: "user",
  scope: "organization:read",
  method: "get",
  path: "/v1/me/organizations",
  tags: ["Me"],
  summary: "Organizations the caller belongs to",
  description: "Ordered by organization creation (oldest first).",
  request: { query: OrganizationListQuery },
  responses: { 200: jsonResponse(pageOf(MyOrganizationSchema), "A page of memberships.") },
  errors: ["invalid_filter", "invalid_page_token"],
  handle: async ({ ctx, actor, input }, c) => c.json(await listUserOrganizations(ctx, actor.userId, input.query), 200),
});

callerRoute(meRoutes, {
  auth: "session",
  method: "post",
  path: "/v1/me/tokens",
  tags: ["Me"],
  summary: "Create a personal access token",
  description: `The token acts with the user's permissions narrowed to its scopes. It is shown once, and it expires (default 90 days, at most 365). Minting one needs a sign-in within the last ${RECENT_SIGN_IN_SECONDS / 60} minutes (403 \`reauthentication_required\` otherwise): a refreshed session must sign in again. Tokens and keys cannot mint tokens.`,
  request: { body: jsonBody(TokenCreateInput) },
  responses: { 201: jsonResponse(CreatedTokenSchema, "The token record and the secret, once.") },
  errors: ["conflict", "reauthentication_required"],
  handle: async ({ ctx, input }, c) => c.json(await createToken(ctx, input.json), 201),
});

callerRoute(meRoutes, {
  auth: "session",
  method: "get",
  path: "/v1/me/tokens",
  tags: ["Me"],
  summary: "List personal access tokens",
  description: "Newest first. Secrets are never shown again; `token_prefix` identifies each.",
  request: { query: plainListQuery("created_at desc") },
  responses: { 200: jsonResponse(pageOf(TokenSchema), "A page of tokens.") },
  errors: ["invalid_page_token"],
  handle: async ({ ctx, actor, input }, c) => c.json(await listTokens(ctx, actor.userId, input.query), 200),
});

callerRoute(meRoutes, {
  auth: "session",
  method: "delete",
  path: "/v1/me/tokens/{token_id}",
  tags: ["Me"],
  summary: "Revoke a personal access token",
  description: "Takes effect on the token's very next request.",
  request: { params: z.object({ token_id: pathParam("token_id") }) },
  responses: { 204: noContent },
  errors: ["not_found"],
  handle: async ({ ctx, actor, input }, c) => {
    await deleteToken(ctx, actor.userId, input.param.token_id);
    return c.body(null, 204);
  },
});
