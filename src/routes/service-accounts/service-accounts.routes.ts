import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { customRolesQuery } from "../roles/roles.service";
import { RotateKeyInput, ServiceAccountCreateInput, ServiceAccountSchema, ServiceAccountWithKeySchema } from "./service-accounts.schemas";
import {
  createServiceAccount,
  deleteServiceAccount,
  getServiceAccountFrom,
  rotateServiceAccountKey,
  serviceAccountListQuery,
  serviceAccountPage,
  serviceAccountQuery,
} from "./service-accounts.service";

export const serviceAccountRoutes = createRouter();

const SaParams = OrgParams.extend({ service_account_id: pathParam("service_account_id") });

orgRoute(serviceAccountRoutes, {
  permission: "service_accounts:write",
  method: "post",
  path: "/v1/organizations/{org_id}/service-accounts",
  audit: ["service_account.created"],
  tags: ["Service accounts"],
  summary: "Create a service account",
  description:
    "A non-human member of this organization only (`type: service_account` in the member list; it takes no seat). Its key `sak_…` is shown once and stored hashed; it acts with the account's role narrowed by its scopes.",
  request: { params: OrgParams, body: jsonBody(ServiceAccountCreateInput) },
  responses: { 201: jsonResponse(ServiceAccountWithKeySchema, "The account and its key, once.") },
  load: ({ db, org, input }) => customRolesQuery(db, org, [input.json.role]),
  handle: async ({ ctx, input, loaded }, c) => c.json(await createServiceAccount(ctx, input.json, loaded), 201),
});

orgRoute(serviceAccountRoutes, {
  permission: "service_accounts:read",
  method: "get",
  path: "/v1/organizations/{org_id}/service-accounts",
  tags: ["Service accounts"],
  summary: "List service accounts",
  description: "In creation order.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(ServiceAccountSchema), "A page of service accounts.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => serviceAccountListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await serviceAccountPage(ctx, input.query, loaded.page), 200),
});

orgRoute(serviceAccountRoutes, {
  permission: "service_accounts:read",
  method: "get",
  path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}",
  tags: ["Service accounts"],
  summary: "Get a service account",
  request: { params: SaParams },
  responses: { 200: jsonResponse(ServiceAccountSchema, "The service account.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => serviceAccountQuery(db, org, input.param.service_account_id),
  handle: ({ loaded }, c) => c.json(getServiceAccountFrom(loaded), 200),
});

orgRoute(serviceAccountRoutes, {
  permission: "service_accounts:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}",
  audit: ["service_account.deleted"],
  tags: ["Service accounts"],
  summary: "Delete a service account",
  description: "Its keys stop working on their very next request. The caller must hold every permission of the account's role (403 otherwise).",
  request: { params: SaParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => serviceAccountQuery(db, org, input.param.service_account_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteServiceAccount(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(serviceAccountRoutes, {
  permission: "service_accounts:write",
  method: "post",
  path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}/rotate-key",
  audit: ["service_account.key_rotated"],
  tags: ["Service accounts"],
  summary: "Rotate the key",
  description:
    "Returns a new key once. The old key stops at once, or after `grace_seconds` (≤ 86400) when given. The caller must hold every permission of the account's role (403 otherwise): the new key carries them.",
  request: { params: SaParams, body: { ...jsonBody(RotateKeyInput), required: false } },
  responses: { 200: jsonResponse(ServiceAccountWithKeySchema, "The account and its new key, once.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => serviceAccountQuery(db, org, input.param.service_account_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await rotateServiceAccountKey(ctx, loaded, input.json.grace_seconds), 200),
});
