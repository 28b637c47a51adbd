import { jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { unauthenticated } from "../../middleware/authenticate";
import { callerRoute, createRouter, orgRoute, publicRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import {
  DeploymentInput,
  DeploymentSchema,
  LicenseAssignInput,
  LicenseCreateInput,
  LicenseListQuery,
  LicenseSchema,
  LicenseWithKeySchema,
  OrganizationLicenseSchema,
} from "./licenses.schemas";
import {
  assignableLicenseQuery,
  assignLicense,
  createLicense,
  deploymentListQuery,
  deploymentPage,
  getLicense,
  licenseForKey,
  listLicenses,
  organizationLicenseQuery,
  organizationLicenseView,
  recordDeployment,
  revokeLicense,
  unassignLicense,
} from "./licenses.service";

export const licenseRoutes = createRouter();

const LicenseParams = z.object({ license_id: pathParam("license_id") });

/*
 * Platform routes take a signed-in session only (`auth: "session"`): license management is
 * platform administration, which no token scope covers (scopes are about one organization), so
 * a PAT or service account key must not reach it. The caller must also be a platform
 * administrator: a verified email listed in PLATFORM_ADMIN_EMAILS (403 otherwise).
 */
const PLATFORM_NOTE =
  "Platform administrators only: a signed-in session (no token or key) whose verified email is listed in `PLATFORM_ADMIN_EMAILS`; anyone else gets 403 `forbidden`.";

callerRoute(licenseRoutes, {
  auth: "session",
  method: "post",
  path: "/v1/licenses",
  tags: ["Licenses"],
  summary: "Create a license",
  description: `${PLATFORM_NOTE} The license key \`lk_…\` is returned once, here; only its hash and a short prefix are stored. With \`organization_id\` the license is assigned at once: 404 for an unknown organization, 409 \`license_in_use\` if it already holds a license (replace that one with \`PUT …/license\`).`,
  request: { body: jsonBody(LicenseCreateInput) },
  responses: { 201: jsonResponse(LicenseWithKeySchema, "The license and its key, once.") },
  errors: ["not_found", "license_in_use"],
  handle: async ({ ctx, input }, c) => c.json(await createLicense(ctx, input.json), 201),
});

callerRoute(licenseRoutes, {
  auth: "session",
  method: "get",
  path: "/v1/licenses",
  tags: ["Licenses"],
  summary: "List licenses",
  description: `${PLATFORM_NOTE} In creation order; one D1 round trip, about page_size rows.`,
  request: { query: LicenseListQuery },
  responses: { 200: jsonResponse(pageOf(LicenseSchema), "A page of licenses.") },
  errors: ["invalid_filter", "invalid_page_token"],
  handle: async ({ ctx, input }, c) => c.json(await listLicenses(ctx, input.query), 200),
});

callerRoute(licenseRoutes, {
  auth: "session",
  method: "get",
  path: "/v1/licenses/{license_id}",
  tags: ["Licenses"],
  summary: "Get a license",
  description: `${PLATFORM_NOTE} The key itself is never shown again.`,
  request: { params: LicenseParams },
  responses: { 200: jsonResponse(LicenseSchema, "The license.") },
  errors: ["not_found"],
  handle: async ({ ctx, input }, c) => c.json(await getLicense(ctx, input.param.license_id), 200),
});

callerRoute(licenseRoutes, {
  auth: "session",
  method: "post",
  path: "/v1/licenses/{license_id}/revoke",
  audit: ["license.revoked"],
  tags: ["Licenses"],
  summary: "Revoke a license",
  description: `${PLATFORM_NOTE} Final and idempotent. The organization it serves keeps it (\`status: "revoked"\`) but falls back to the free plan's seats and features at once, and its deployments are refused from their next heartbeat. Recorded as \`license.revoked\` in the audit log of the organization the license serves (a license that serves none is recorded nowhere).`,
  request: { params: LicenseParams },
  responses: { 200: jsonResponse(LicenseSchema, "The revoked license.") },
  errors: ["not_found", "conflict"],
  handle: async ({ ctx, input }, c) => c.json(await revokeLicense(ctx, input.param.license_id), 200),
});

const FALLBACK_NOTE = `With no license, or an expired or revoked one, the organization is on the free plan: \`FREE_PLAN_SEATS\` seats (default 10) and no features; \`license_id\` and \`status\` still name an expired or revoked license.`;

orgRoute(licenseRoutes, {
  permission: "billing:read",
  method: "get",
  path: "/v1/organizations/{org_id}/license",
  tags: ["Licenses"],
  summary: "Get the organization's license",
  description: `${FALLBACK_NOTE} \`seats_used\` counts human members plus pending invitations (service accounts take no seat).`,
  request: { params: OrgParams },
  responses: { 200: jsonResponse(OrganizationLicenseSchema, "The plan in force.") },
  load: ({ db, org }) => organizationLicenseQuery(db, org),
  handle: ({ ctx, loaded }, c) => c.json(organizationLicenseView(ctx, loaded), 200),
});

orgRoute(licenseRoutes, {
  permission: "billing:write",
  method: "put",
  path: "/v1/organizations/{org_id}/license",
  audit: ["license.assigned"],
  tags: ["Licenses"],
  summary: "Assign a license",
  description:
    "Replaces the organization's license in one step (the previous one is freed and becomes assignable). A license serves one organization: one serving another is 409 `license_in_use` (of two organizations racing for one license, exactly one gets it); an unknown id is 404; a revoked or expired one is 403 `license_inactive`. Assigning fewer seats than are in use is allowed: nobody is removed, but adding members and inviting are refused (409 `seat_limit_reached`) until usage is below the new limit.",
  request: { params: OrgParams, body: jsonBody(LicenseAssignInput) },
  responses: { 200: jsonResponse(OrganizationLicenseSchema, "The plan now in force.") },
  errors: ["not_found", "license_in_use", "license_inactive"],
  load: ({ db, org, input }) => ({ license: assignableLicenseQuery(db, org, input.json.license_id), usage: organizationLicenseQuery(db, org).usage }),
  handle: async ({ ctx, input, loaded }, c) => c.json(await assignLicense(ctx, input.json.license_id, loaded), 200),
});

orgRoute(licenseRoutes, {
  permission: "billing:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/license",
  audit: ["license.unassigned"],
  tags: ["Licenses"],
  summary: "Remove the organization's license",
  description:
    "Back to the free plan (idempotent: 204 with no license too); the license becomes assignable to any organization again. Members beyond the free seats stay, but no seat is taken until usage is below the limit.",
  request: { params: OrgParams },
  responses: { 204: noContent },
  load: ({ db, org }) => organizationLicenseQuery(db, org).license,
  handle: async ({ ctx, loaded }, c) => {
    await unassignLicense(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(licenseRoutes, {
  permission: "billing:read",
  method: "get",
  path: "/v1/organizations/{org_id}/deployments",
  tags: ["Licenses"],
  summary: "List the organization's deployments",
  description:
    "Self-hosted deployments registered with the organization's current license (whatever its status), in registration order; empty with no license.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(DeploymentSchema), "A page of deployments.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => deploymentListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await deploymentPage(ctx, input.query, loaded.page), 200),
});

const LICENSE_KEY = /^Bearer\s+([A-Za-z0-9._~+/=-]{1,4096})$/i;

publicRoute(licenseRoutes, {
  method: "post",
  path: "/v1/licenses/{license_id}/deployments",
  tags: ["Licenses"],
  summary: "Register or heartbeat a deployment",
  description:
    "Called by a self-hosted deployment with `Authorization: Bearer <license_key>` (the key of this very license; anything else is 401). The first call for a `name` registers it (201); later calls with the same name update `region`, `version` and `last_seen_at` (200). A revoked or expired license is refused with 403 `license_inactive`. Rate-limited per client.",
  request: { params: LicenseParams, body: jsonBody(DeploymentInput) },
  responses: { 201: jsonResponse(DeploymentSchema, "Registered."), 200: jsonResponse(DeploymentSchema, "Heartbeat recorded.") },
  errors: ["unauthenticated", "license_inactive"],
  handle: async ({ ctx, input }, c) => {
    const header = c.req.header("authorization");
    const key = header ? (LICENSE_KEY.exec(header.trim())?.[1] ?? null) : null;
    const license = await licenseForKey(ctx, input.param.license_id, key);
    if (!license) throw unauthenticated(header ? "The license key is not valid for this license." : "Send `Authorization: Bearer <license_key>`.");
    const { created, deployment } = await recordDeployment(ctx, license, input.json);
    return c.json(deployment, created ? 201 : 200);
  },
});
