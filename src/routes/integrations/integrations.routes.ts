import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { EnvironmentMappingInput, IntegrationCreateInput, IntegrationListQuery, IntegrationSchema } from "./integrations.schemas";
import {
  createIntegration,
  deleteIntegration,
  getIntegrationFrom,
  integrationListQuery,
  integrationPage,
  integrationQuery,
  mappedProjectsQuery,
  patchEnvironmentMapping,
} from "./integrations.service";

export const integrationRoutes = createRouter();

const IntegrationParams = OrgParams.extend({ integration_id: pathParam("integration_id") });
const TAGS = ["Integrations"];

orgRoute(integrationRoutes, {
  permission: "integrations:write",
  method: "post",
  path: "/v1/organizations/{org_id}/integrations",
  audit: ["integration.created"],
  tags: TAGS,
  summary: "Install an integration",
  description:
    "An organization-level integration (Vercel, AWS Marketplace, GitHub, …). An organization may install several of one kind. `secrets` are write-only: sealed together with AES-GCM and read back only as `{set, updated_at}`.",
  request: { params: OrgParams, body: jsonBody(IntegrationCreateInput) },
  responses: { 201: jsonResponse(IntegrationSchema, "The installed integration.") },
  handle: async ({ ctx, input }, c) => c.json(await createIntegration(ctx, input.json), 201),
});

orgRoute(integrationRoutes, {
  permission: "integrations:read",
  method: "get",
  path: "/v1/organizations/{org_id}/integrations",
  tags: TAGS,
  summary: "List integrations",
  description:
    'In creation order. `filter=kind = "vercel"` lists one kind. Each page reads about page_size rows plus their environment mappings (at most 100 each).',
  request: { params: OrgParams, query: IntegrationListQuery },
  responses: { 200: jsonResponse(pageOf(IntegrationSchema), "A page of integrations.") },
  errors: ["invalid_filter", "invalid_page_token"],
  load: ({ db, org, config, input }) => integrationListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await integrationPage(ctx, input.query, loaded.page), 200),
});

orgRoute(integrationRoutes, {
  permission: "integrations:read",
  method: "get",
  path: "/v1/organizations/{org_id}/integrations/{integration_id}",
  tags: TAGS,
  summary: "Get an integration",
  request: { params: IntegrationParams },
  responses: { 200: jsonResponse(IntegrationSchema, "The integration.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => integrationQuery(db, org, input.param.integration_id),
  handle: ({ loaded }, c) => c.json(getIntegrationFrom(loaded), 200),
});

orgRoute(integrationRoutes, {
  permission: "integrations:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/integrations/{integration_id}",
  audit: ["integration.deleted"],
  tags: TAGS,
  summary: "Uninstall an integration",
  description: "Its secrets and environment mapping go with it.",
  request: { params: IntegrationParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => integrationQuery(db, org, input.param.integration_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteIntegration(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(integrationRoutes, {
  permission: "integrations:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/integrations/{integration_id}/environment-mapping",
  audit: ["integration.updated"],
  tags: TAGS,
  summary: "Map external environments to projects",
  description:
    "Merges into the current mapping: an environment given a project id is set, one given `null` is removed, others are kept. Every value must be a project id of this organization, else 422 `unprocessable` naming each offending environment in `errors`; the request is applied whole or not at all. A deleted project drops out of every mapping.",
  request: { params: IntegrationParams, body: jsonBody(EnvironmentMappingInput) },
  responses: { 200: jsonResponse(IntegrationSchema, "The integration with its new mapping.") },
  errors: ["not_found", "unprocessable", "conflict"],
  load: ({ db, org, input }) => {
    const integration = integrationQuery(db, org, input.param.integration_id);
    return integration ? { integration, projects: mappedProjectsQuery(db, org, input.json.mapping) } : undefined;
  },
  handle: async ({ ctx, input, loaded }, c) =>
    c.json(
      await patchEnvironmentMapping(ctx, loaded ? { integration: loaded.integration, projects: loaded.projects ?? [] } : undefined, input.json.mapping),
      200,
    ),
});
