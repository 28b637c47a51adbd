import { createRouter, defineRoute, jsonBody, jsonResponse } from "../../lib/openapi";
import { OrgParams } from "../organizations/organizations.routes";
import { SettingsPutInput, SettingsSchema } from "./settings.schemas";
import { getSettings, putSettings } from "./settings.service";

export const settingsRoutes = createRouter();

settingsRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/settings",
    tags: ["Settings"],
    summary: "Get organization settings",
    description: "Secrets read back only as `{set, updated_at}`.",
    request: { params: OrgParams },
    responses: { 200: jsonResponse(SettingsSchema, "Settings and the names of stored secrets.") },
  }),
  async (c) => c.json(await getSettings(c, c.req.valid("param").org_id), 200),
);

settingsRoutes.openapi(
  defineRoute({ kind: "org", permission: "organization:write" }, {
    method: "put",
    path: "/v1/organizations/{org_id}/settings",
    tags: ["Settings"],
    summary: "Replace settings and set or delete secrets",
    description: "Secrets are encrypted at rest with AES-GCM; a `null` value deletes one.",
    request: { params: OrgParams, body: jsonBody(SettingsPutInput) },
    responses: { 200: jsonResponse(SettingsSchema, "The stored settings.") },
  }),
  async (c) => c.json(await putSettings(c, c.var.access.organization.id, c.req.valid("json")), 200),
);
