import { createRouter, defineRoute, jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { PageQuery, pageOf } from "../../lib/pagination";
import { OrgParams } from "../organizations/organizations.routes";
import { RotateKeyInput, ServiceAccountCreateInput, ServiceAccountSchema, ServiceAccountWithKeySchema } from "./service-accounts.schemas";
import { createServiceAccount, deleteServiceAccount, getServiceAccount, listServiceAccounts, rotateServiceAccountKey } from "./service-accounts.service";

export const serviceAccountRoutes = createRouter();

const SaParams = OrgParams.extend({ service_account_id: pathParam("service_account_id") });

serviceAccountRoutes.openapi(
  defineRoute({ kind: "org", permission: "service_accounts:write" }, {
    method: "post",
    path: "/v1/organizations/{org_id}/service-accounts",
    tags: ["Service accounts"],
    summary: "Create a service account",
    description:
      "A non-human member of this organization only (`type: service_account` in the member list; it takes no seat). Its key `sak_…` is shown once and stored hashed; it acts with the account's role narrowed by its scopes.",
    request: { params: OrgParams, body: jsonBody(ServiceAccountCreateInput) },
    responses: { 201: jsonResponse(ServiceAccountWithKeySchema, "The account and its key, once.") },
  }),
  async (c) => c.json(await createServiceAccount(c, c.var.access, c.req.valid("json")), 201),
);

serviceAccountRoutes.openapi(
  defineRoute({ kind: "org", permission: "service_accounts:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/service-accounts",
    tags: ["Service accounts"],
    summary: "List service accounts",
    description: "In creation order.",
    request: { params: OrgParams, query: PageQuery },
    responses: { 200: jsonResponse(pageOf(ServiceAccountSchema), "A page of service accounts.") },
    errors: ["invalid_page_token"],
  }),
  async (c) => c.json(await listServiceAccounts(c, c.req.valid("param").org_id, c.req.valid("query")), 200),
);

serviceAccountRoutes.openapi(
  defineRoute({ kind: "org", permission: "service_accounts:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}",
    tags: ["Service accounts"],
    summary: "Get a service account",
    request: { params: SaParams },
    responses: { 200: jsonResponse(ServiceAccountSchema, "The service account.") },
    errors: ["not_found"],
  }),
  async (c) => c.json(await getServiceAccount(c, c.req.valid("param").org_id, c.req.valid("param").service_account_id), 200),
);

serviceAccountRoutes.openapi(
  defineRoute({ kind: "org", permission: "service_accounts:write", readInHandler: true }, {
    method: "delete",
    path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}",
    tags: ["Service accounts"],
    summary: "Delete a service account",
    description: "Its keys stop working on their very next request. The caller must hold every permission of the account's role (403 otherwise).",
    request: { params: SaParams },
    responses: { 204: noContent },
    errors: ["not_found", "last_admin"],
  }),
  async (c) => {
    await deleteServiceAccount(c, c.req.valid("param").org_id, c.req.valid("param").service_account_id);
    return c.body(null, 204);
  },
);

serviceAccountRoutes.openapi(
  defineRoute({ kind: "org", permission: "service_accounts:write", readInHandler: true }, {
    method: "post",
    path: "/v1/organizations/{org_id}/service-accounts/{service_account_id}/rotate-key",
    tags: ["Service accounts"],
    summary: "Rotate the key",
    description:
      "Returns a new key once. The old key stops at once, or after `grace_seconds` (≤ 86400) when given. The caller must hold every permission of the account's role (403 otherwise): the new key carries them.",
    request: { params: SaParams, body: { ...jsonBody(RotateKeyInput), required: false } },
    responses: { 200: jsonResponse(ServiceAccountWithKeySchema, "The account and its new key, once.") },
    errors: ["not_found"],
  }),
  async (c) => {
    const { grace_seconds } = c.req.valid("json");
    return c.json(await rotateServiceAccountKey(c, c.req.valid("param").org_id, c.req.valid("param").service_account_id, grace_seconds), 200);
  },
);
