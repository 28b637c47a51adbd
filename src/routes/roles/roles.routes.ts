import { createRouter, defineRoute, jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { PageQuery, pageOf } from "../../lib/pagination";
import { OrgParams } from "../organizations/organizations.routes";
import { RoleCreateInput, RoleSchema, RoleUpdateInput } from "./roles.schemas";
import { createRole, deleteRole, getRole, listRoles, updateRole } from "./roles.service";

export const roleRoutes = createRouter();

const RoleParams = OrgParams.extend({ role_id: pathParam("role_id") });
const ESCALATION = "A caller can only create, change or delete roles whose permissions it holds itself.";

roleRoutes.openapi(
  defineRoute({ kind: "org", permission: "roles:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/roles",
    tags: ["Roles"],
    summary: "List roles",
    description: "Built-in roles (`admin`, `user`, `service_account`) first, then custom roles in creation order.",
    request: { params: OrgParams, query: PageQuery },
    responses: { 200: jsonResponse(pageOf(RoleSchema), "A page of roles.") },
    errors: ["invalid_page_token"],
  }),
  async (c) => c.json(await listRoles(c, c.req.valid("param").org_id, c.req.valid("query")), 200),
);

roleRoutes.openapi(
  defineRoute({ kind: "org", permission: "roles:write" }, {
    method: "post",
    path: "/v1/organizations/{org_id}/roles",
    tags: ["Roles"],
    summary: "Create a custom role",
    description: `Names match \`^[a-z][a-z0-9_-]{1,39}$\`; built-in names are reserved (409). ${ESCALATION}`,
    request: { params: OrgParams, body: jsonBody(RoleCreateInput) },
    responses: { 201: jsonResponse(RoleSchema, "The new role.") },
    errors: ["conflict"],
  }),
  async (c) => c.json(await createRole(c, c.var.access.organization.id, c.var.access.permissions, c.req.valid("json")), 201),
);

roleRoutes.openapi(
  defineRoute({ kind: "org", permission: "roles:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/roles/{role_id}",
    tags: ["Roles"],
    summary: "Get a role",
    request: { params: RoleParams },
    responses: { 200: jsonResponse(RoleSchema, "The role.") },
    errors: ["not_found"],
  }),
  async (c) => c.json(await getRole(c, c.req.valid("param").org_id, c.req.valid("param").role_id), 200),
);

roleRoutes.openapi(
  defineRoute({ kind: "org", permission: "roles:write", readInHandler: true }, {
    method: "patch",
    path: "/v1/organizations/{org_id}/roles/{role_id}",
    tags: ["Roles"],
    summary: "Update a custom role",
    description: `A rename moves its members along. Built-in roles cannot change (409). ${ESCALATION}`,
    request: { params: RoleParams, body: jsonBody(RoleUpdateInput) },
    responses: { 200: jsonResponse(RoleSchema, "The updated role.") },
    errors: ["not_found", "conflict"],
  }),
  async (c) => c.json(await updateRole(c, c.req.valid("param").org_id, c.req.valid("param").role_id, c.req.valid("json")), 200),
);

roleRoutes.openapi(
  defineRoute({ kind: "org", permission: "roles:write", readInHandler: true }, {
    method: "delete",
    path: "/v1/organizations/{org_id}/roles/{role_id}",
    tags: ["Roles"],
    summary: "Delete a custom role",
    description: "A role still assigned to a member is not deleted: 409 `role_in_use`.",
    request: { params: RoleParams },
    responses: { 204: noContent },
    errors: ["not_found", "role_in_use", "conflict"],
  }),
  async (c) => {
    await deleteRole(c, c.req.valid("param").org_id, c.req.valid("param").role_id);
    return c.body(null, 204);
  },
);

