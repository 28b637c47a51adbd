import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { RoleCreateInput, RoleSchema, RoleUpdateInput } from "./roles.schemas";
import { createRole, customRoleQuery, deleteRole, getRole, rolesPage, rolesPageQuery, updateRole } from "./roles.service";

export const roleRoutes = createRouter();

const RoleParams = OrgParams.extend({ role_id: pathParam("role_id") });
const ESCALATION = "A caller can only create, change or delete roles whose permissions it holds itself.";

orgRoute(roleRoutes, {
  permission: "roles:read",
  method: "get",
  path: "/v1/organizations/{org_id}/roles",
  tags: ["Roles"],
  summary: "List roles",
  description: "Built-in roles (`admin`, `user`, `service_account`) first, then custom roles in creation order.",
  request: { params: OrgParams, query: plainListQuery("created_at", "Built-in roles come first, then custom roles in creation order.") },
  responses: { 200: jsonResponse(pageOf(RoleSchema), "A page of roles.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => rolesPageQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await rolesPage(ctx, input.query, loaded?.custom), 200),
});

orgRoute(roleRoutes, {
  permission: "roles:write",
  method: "post",
  path: "/v1/organizations/{org_id}/roles",
  audit: ["role.created"],
  tags: ["Roles"],
  summary: "Create a custom role",
  description: `Names match \`^[a-z][a-z0-9_-]{1,39}$\`; built-in names are reserved (409). ${ESCALATION}`,
  request: { params: OrgParams, body: jsonBody(RoleCreateInput) },
  responses: { 201: jsonResponse(RoleSchema, "The new role.") },
  errors: ["conflict"],
  handle: async ({ ctx, input }, c) => c.json(await createRole(ctx, input.json), 201),
});

orgRoute(roleRoutes, {
  permission: "roles:read",
  method: "get",
  path: "/v1/organizations/{org_id}/roles/{role_id}",
  tags: ["Roles"],
  summary: "Get a role",
  request: { params: RoleParams },
  responses: { 200: jsonResponse(RoleSchema, "The role.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => customRoleQuery(db, org, input.param.role_id),
  handle: ({ input, loaded }, c) => c.json(getRole(input.param.role_id, loaded), 200),
});

orgRoute(roleRoutes, {
  permission: "roles:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/roles/{role_id}",
  audit: ["role.updated"],
  tags: ["Roles"],
  summary: "Update a custom role",
  description: `A rename moves its members along. Built-in roles cannot change (409). ${ESCALATION}`,
  request: { params: RoleParams, body: jsonBody(RoleUpdateInput) },
  responses: { 200: jsonResponse(RoleSchema, "The updated role.") },
  errors: ["not_found", "conflict"],
  load: ({ db, org, input }) => customRoleQuery(db, org, input.param.role_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateRole(ctx, input.param.role_id, loaded, input.json), 200),
});

orgRoute(roleRoutes, {
  permission: "roles:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/roles/{role_id}",
  audit: ["role.deleted"],
  tags: ["Roles"],
  summary: "Delete a custom role",
  description: "A role still assigned to a member is not deleted: 409 `role_in_use`.",
  request: { params: RoleParams },
  responses: { 204: noContent },
  errors: ["not_found", "role_in_use", "conflict"],
  load: ({ db, org, input }) => customRoleQuery(db, org, input.param.role_id),
  handle: async ({ ctx, input, loaded }, c) => {
    await deleteRole(ctx, input.param.role_id, loaded);
    return c.body(null, 204);
  },
});
