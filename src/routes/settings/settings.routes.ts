import { jsonBody, jsonResponse } from "../../lib/openapi";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { SettingsPutInput, SettingsSchema } from "./settings.schemas";
import { putSettings, settingsQueries, shape } from "./settings.service";

export const settingsRoutes = createRouter();

orgRoute(settingsRoutes, {
  permission: "organization:read",
  method: "get",
  path: "/v1/organizations/{org_id}/settings",
  tags: ["Settings"],
  summary: "Get organization settings",
  description: "Secrets read back only as `{set, updated_at}`.",
  request: { params: OrgParams },
  responses: { 200: jsonResponse(SettingsSchema, "Settings and the names of stored secrets.") },
  load: ({ db, org }) => settingsQueries(db, org),
  handle: ({ loaded }, c) => c.json(shape(loaded.settings, loaded.secrets), 200),
});

orgRoute(settingsRoutes, {
  permission: "organization:write",
  method: "put",
  path: "/v1/organizations/{org_id}/settings",
  audit: ["organization.settings_updated"],
  tags: ["Settings"],
  summary: "Replace settings and set or delete secrets",
  description: "Secrets are encrypted at rest with AES-GCM; a `null` value deletes one.",
  request: { params: OrgParams, body: jsonBody(SettingsPutInput) },
  responses: { 200: jsonResponse(SettingsSchema, "The stored settings.") },
  load: ({ db, org }) => settingsQueries(db, org),
  handle: async ({ ctx, input, loaded }, c) => c.json(await putSettings(ctx, loaded, input.json), 200),
});
