import { ApiError, notFound } from "../../lib/errors";
import { jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import { callerRoute, createRouter, orgRoute } from "../../middleware/route";
import { OrganizationCreateInput, OrganizationSchema, OrganizationUpdateInput, PreferencesSchema, PreferencesUpdateInput } from "./organizations.schemas";
import {
  createOrganization,
  deleteOrganization,
  organizationQuery,
  preferencesQuery,
  serializeOrganizationRow,
  serializePreferences,
  updateOrganization,
  updatePreferences,
} from "./organizations.service";

export const organizationRoutes = createRouter();

export const OrgParams = z.object({ org_id: pathParam("org_id") });

callerRoute(organizationRoutes, {
  auth: "user",
  scope: "organization:write",
  method: "post",
  path: "/v1/organizations",
  audit: ["organization.created"],
  tags: ["Organizations"],
  summary: "Create an organization",
  description:
    "The caller becomes its first `admin`. `slug` is derived from the name unless given (a derived slug that is taken gets a random suffix; a given one that is taken is 409).",
  request: { body: jsonBody(OrganizationCreateInput) },
  responses: { 201: jsonResponse(OrganizationSchema, "The new organization.") },
  errors: ["slug_taken"],
  handle: async ({ ctx, actor, input }, c) => c.json(await createOrganization(ctx, actor.userId, input.json), 201),
});

orgRoute(organizationRoutes, {
  permission: "organization:read",
  method: "get",
  path: "/v1/organizations/{org_id}",
  tags: ["Organizations"],
  summary: "Get an organization",
  request: { params: OrgParams },
  responses: { 200: jsonResponse(OrganizationSchema, "The organization.") },
  load: ({ db, org }) => organizationQuery(db, org),
  handle: ({ loaded: [row] }, c) => {
    // Deleted between the membership read and this one: the same batch makes that near impossible.
    if (!row) throw notFound("organization");
    return c.json(serializeOrganizationRow(row), 200);
  },
});

orgRoute(organizationRoutes, {
  permission: "organization:write",
  allowInactive: true,
  method: "patch",
  path: "/v1/organizations/{org_id}",
  audit: ["organization.updated"],
  tags: ["Organizations"],
  summary: "Update an organization",
  description: "`active: false` makes the organization read-only (writes answer 409 `organization_inactive`) until it is patched back with `active: true`.",
  request: { params: OrgParams, body: jsonBody(OrganizationUpdateInput) },
  responses: { 200: jsonResponse(OrganizationSchema, "The updated organization.") },
  errors: ["slug_taken", "organization_inactive"],
  load: ({ db, org }) => organizationQuery(db, org),
  handle: async ({ ctx, loaded: [current], input }, c) => {
    if (!current) throw notFound("organization");
    return c.json(await updateOrganization(ctx, current, input.json), 200);
  },
});

orgRoute(organizationRoutes, {
  permission: "organization:delete",
  allowInactive: true,
  method: "delete",
  path: "/v1/organizations/{org_id}",
  audit: ["organization.deleted"],
  tags: ["Organizations"],
  summary: "Delete an organization",
  description: "Everything of the organization goes with it; its members' accounts and other organizations are untouched.",
  request: { params: OrgParams },
  responses: { 204: noContent },
  handle: async ({ ctx }, c) => {
    await deleteOrganization(ctx);
    return c.body(null, 204);
  },
});

orgRoute(organizationRoutes, {
  permission: "organization:read",
  method: "get",
  path: "/v1/organizations/{org_id}/preferences",
  tags: ["Organizations"],
  summary: "Get organization preferences",
  request: { params: OrgParams },
  responses: { 200: jsonResponse(PreferencesSchema, "The preferences.") },
  load: ({ db, org }) => preferencesQuery(db, org),
  handle: ({ loaded: [row] }, c) => {
    if (!row) throw new ApiError("not_found", "The organization does not exist.");
    return c.json(serializePreferences(row), 200);
  },
});

orgRoute(organizationRoutes, {
  permission: "organization:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/preferences",
  audit: ["organization.preferences_updated"],
  tags: ["Organizations"],
  summary: "Update organization preferences",
  request: { params: OrgParams, body: jsonBody(PreferencesUpdateInput) },
  responses: { 200: jsonResponse(PreferencesSchema, "The updated preferences.") },
  load: ({ db, org }) => preferencesQuery(db, org),
  handle: async ({ ctx, input, loaded: [current] }, c) => c.json(await updatePreferences(ctx, current, input.json), 200),
});
