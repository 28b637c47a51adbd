import { eq } from "drizzle-orm";
import { organizations } from "../../db/schema";
import { ApiError } from "../../lib/errors";
import { createRouter, defineRoute, jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import {
  OrganizationCreateInput,
  OrganizationSchema,
  OrganizationUpdateInput,
  PreferencesSchema,
  PreferencesUpdateInput,
  serializeOrganization,
} from "./organizations.schemas";
import { createOrganization, deleteOrganization, updateOrganization } from "./organizations.service";

export const organizationRoutes = createRouter();

export const OrgParams = z.object({ org_id: pathParam("org_id") });

organizationRoutes.openapi(
  defineRoute({ kind: "user", scope: "organization:write" }, {
    method: "post",
    path: "/v1/organizations",
    tags: ["Organizations"],
    summary: "Create an organization",
    description: "The caller becomes its first `admin`. `slug` is derived from the name unless given (a derived slug that is taken gets a random suffix; a given one that is taken is 409).",
    request: { body: jsonBody(OrganizationCreateInput) },
    responses: { 201: jsonResponse(OrganizationSchema, "The new organization.") },
    errors: ["slug_taken"],
  }),
  async (c) => {
    const actor = c.var.actor!;
    if (actor.kind === "service_account") throw new ApiError("forbidden");
    return c.json(await createOrganization(c, actor.userId, c.req.valid("json")), 201);
  },
);

organizationRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:read" }, {
    method: "get",
    path: "/v1/organizations/{org_id}",
    tags: ["Organizations"],
    summary: "Get an organization",
    request: { params: OrgParams },
    responses: { 200: jsonResponse(OrganizationSchema, "The organization.") },
  }),
  // Served from the authorization read itself: no further query.
  (c) => c.json(serializeOrganization(c.var.access.organization, c.var.access.owner), 200),
);

organizationRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:write", allowInactive: true }, {
    method: "patch",
    path: "/v1/organizations/{org_id}",
    tags: ["Organizations"],
    summary: "Update an organization",
    description: "`active: false` makes the organization read-only (writes answer 409 `organization_inactive`) until it is patched back with `active: true`.",
    request: { params: OrgParams, body: jsonBody(OrganizationUpdateInput) },
    responses: { 200: jsonResponse(OrganizationSchema, "The updated organization.") },
    errors: ["slug_taken", "organization_inactive"],
  }),
  async (c) => c.json(await updateOrganization(c, c.var.access, c.req.valid("json")), 200),
);

organizationRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:delete", allowInactive: true }, {
    method: "delete",
    path: "/v1/organizations/{org_id}",
    tags: ["Organizations"],
    summary: "Delete an organization",
    description: "Everything of the organization goes with it; its members' accounts and other organizations are untouched.",
    request: { params: OrgParams },
    responses: { 204: noContent },
  }),
  async (c) => {
    await deleteOrganization(c, c.var.access.organization.id);
    return c.body(null, 204);
  },
);

const serializePreferences = (o: { supportTeamAccess: boolean; ssoAdminBypass: boolean }) => ({
  support_team_access: o.supportTeamAccess,
  sso_admin_bypass: o.ssoAdminBypass,
});

organizationRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:read" }, {
    method: "get",
    path: "/v1/organizations/{org_id}/preferences",
    tags: ["Organizations"],
    summary: "Get organization preferences",
    request: { params: OrgParams },
    responses: { 200: jsonResponse(PreferencesSchema, "The preferences.") },
  }),
  (c) => c.json(serializePreferences(c.var.access.organization), 200),
);

organizationRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:write" }, {
    method: "patch",
    path: "/v1/organizations/{org_id}/preferences",
    tags: ["Organizations"],
    summary: "Update organization preferences",
    request: { params: OrgParams, body: jsonBody(PreferencesUpdateInput) },
    responses: { 200: jsonResponse(PreferencesSchema, "The updated preferences.") },
  }),
  async (c) => {
    const input = c.req.valid("json");
    const patch: Partial<typeof organizations.$inferInsert> = { updatedAt: Date.now() };
    if (input.support_team_access !== undefined) patch.supportTeamAccess = input.support_team_access;
    if (input.sso_admin_bypass !== undefined) patch.ssoAdminBypass = input.sso_admin_bypass;
    const [row] = await c.var.db
      .update(organizations)
      .set(patch)
      .where(eq(organizations.id, c.var.access.organization.id))
      .returning({ supportTeamAccess: organizations.supportTeamAccess, ssoAdminBypass: organizations.ssoAdminBypass });
    if (!row) throw new ApiError("not_found");
    return c.json(serializePreferences(row), 200);
  },
);
