import { jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { callerRoute, createRouter } from "../../middleware/route";
import { OrganizationListQuery } from "../me/me.routes";
import { MyOrganizationSchema } from "../organizations/organizations.schemas";
import { listUserOrganizations } from "../organizations/organizations.service";
import { serializeUser, UserSchema, UserUpdateInput } from "./users.schemas";
import { deleteUser, resolveUserTarget, updateUser } from "./users.service";

export const userRoutes = createRouter();

const UserParams = z.object({ user_id: pathParam("user_id") });
const ADMIN_NOTE = "Platform administrators (verified emails in `PLATFORM_ADMIN_EMAILS`) may call this for any user; anyone may call it on themself.";

callerRoute(userRoutes, {
  auth: "user",
  method: "get",
  path: "/v1/users/{user_id}",
  tags: ["Users"],
  summary: "Get a user",
  description: ADMIN_NOTE,
  request: { params: UserParams },
  responses: { 200: jsonResponse(UserSchema, "The user.") },
  errors: ["not_found"],
  handle: async ({ ctx, actor, input }, c) => {
    const { target } = await resolveUserTarget(ctx, actor, input.param.user_id);
    return c.json(serializeUser(target), 200);
  },
});

callerRoute(userRoutes, {
  auth: "session",
  method: "patch",
  path: "/v1/users/{user_id}",
  tags: ["Users"],
  summary: "Update a user",
  description: `${ADMIN_NOTE} An administrator needs no \`old_password\`; setting \`new_password\` ends all of that user's sessions.`,
  request: { params: UserParams, body: jsonBody(UserUpdateInput) },
  responses: { 200: jsonResponse(UserSchema, "The updated user.") },
  errors: ["not_found", "email_taken"],
  handle: async ({ ctx, actor, input }, c) => {
    const { target, byAdmin } = await resolveUserTarget(ctx, actor, input.param.user_id);
    return c.json(await updateUser(ctx, { target, byAdmin, currentSessionId: actor.sessionId, input: input.json }), 200);
  },
});

callerRoute(userRoutes, {
  auth: "session",
  method: "delete",
  path: "/v1/users/{user_id}",
  audit: ["member.removed"],
  tags: ["Users"],
  summary: "Delete a user",
  description: `${ADMIN_NOTE} Same rules as \`DELETE /v1/me\`.`,
  request: { params: UserParams },
  responses: { 204: noContent },
  errors: ["not_found", "last_admin"],
  handle: async ({ ctx, actor, input }, c) => {
    const { target } = await resolveUserTarget(ctx, actor, input.param.user_id);
    await deleteUser(ctx, target.id);
    return c.body(null, 204);
  },
});

callerRoute(userRoutes, {
  auth: "user",
  scope: "organization:read",
  method: "get",
  path: "/v1/users/{user_id}/organizations",
  tags: ["Users"],
  summary: "Organizations a user belongs to",
  description: ADMIN_NOTE,
  request: { params: UserParams, query: OrganizationListQuery },
  responses: { 200: jsonResponse(pageOf(MyOrganizationSchema), "A page of memberships.") },
  errors: ["not_found", "invalid_filter", "invalid_page_token"],
  handle: async ({ ctx, actor, input }, c) => {
    const { target } = await resolveUserTarget(ctx, actor, input.param.user_id);
    return c.json(await listUserOrganizations(ctx, target.id, input.query), 200);
  },
});
