import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { DeliverySchema, RotateSecretInput, WebhookCreateInput, WebhookSchema, WebhookUpdateInput, WebhookWithSecretSchema } from "./webhooks.schemas";
import {
  createWebhook,
  deleteWebhook,
  deliveryListQuery,
  deliveryPage,
  deliveryQuery,
  getWebhookFrom,
  retryDelivery,
  rotateWebhookSecret,
  updateWebhook,
  webhookListQuery,
  webhookPage,
  webhookQuery,
} from "./webhooks.service";

export const webhookRoutes = createRouter();

const WebhookParams = OrgParams.extend({ webhook_id: pathParam("webhook_id") });
const DeliveryParams = WebhookParams.extend({ delivery_id: pathParam("delivery_id") });
const TAGS = ["Webhooks"];

orgRoute(webhookRoutes, {
  permission: "webhooks:write",
  method: "post",
  path: "/v1/organizations/{org_id}/webhooks",
  audit: ["webhook.created"],
  tags: TAGS,
  summary: "Create a webhook endpoint",
  description:
    "Returns the signing `secret` (`whsec_…`, Standard Webhooks) once, here; it is stored encrypted and never shown again (rotate it to get a new one). At most 20 endpoints per organization (409 `conflict` beyond).",
  request: { params: OrgParams, body: jsonBody(WebhookCreateInput) },
  responses: { 201: jsonResponse(WebhookWithSecretSchema, "The new endpoint and its signing secret.") },
  errors: ["conflict"],
  handle: async ({ ctx, input }, c) => c.json(await createWebhook(ctx, input.json), 201),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:read",
  method: "get",
  path: "/v1/organizations/{org_id}/webhooks",
  tags: TAGS,
  summary: "List webhook endpoints",
  description: "In creation order.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(WebhookSchema), "A page of endpoints.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => webhookListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await webhookPage(ctx, input.query, loaded.page), 200),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:read",
  method: "get",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}",
  tags: TAGS,
  summary: "Get a webhook endpoint",
  request: { params: WebhookParams },
  responses: { 200: jsonResponse(WebhookSchema, "The endpoint.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => webhookQuery(db, org, input.param.webhook_id),
  handle: ({ loaded }, c) => c.json(getWebhookFrom(loaded), 200),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}",
  audit: ["webhook.updated"],
  tags: TAGS,
  summary: "Update a webhook endpoint",
  description:
    "Fields omitted are unchanged. `enabled: true` re-enables an endpoint the system disabled (and clears `failing_since`); deliveries skipped while it was disabled can be retried one by one.",
  request: { params: WebhookParams, body: jsonBody(WebhookUpdateInput) },
  responses: { 200: jsonResponse(WebhookSchema, "The updated endpoint.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => webhookQuery(db, org, input.param.webhook_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateWebhook(ctx, loaded, input.json), 200),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}",
  audit: ["webhook.deleted"],
  tags: TAGS,
  summary: "Delete a webhook endpoint",
  description: "Its deliveries and their attempts are deleted with it; messages still queued for it are dropped by the consumer.",
  request: { params: WebhookParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  handle: async ({ ctx, input }, c) => {
    await deleteWebhook(ctx, input.param.webhook_id);
    return c.body(null, 204);
  },
});

orgRoute(webhookRoutes, {
  permission: "webhooks:write",
  method: "post",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}/rotate-secret",
  audit: ["webhook.updated"],
  tags: TAGS,
  summary: "Rotate the signing secret",
  description:
    "Returns the new `secret` once. For `grace_seconds` (default 86400, at most 604800) every delivery carries two signatures in `webhook-signature`, the new secret's and the previous one's, so receivers can switch over without missing one.",
  request: { params: WebhookParams, body: jsonBody(RotateSecretInput) },
  responses: { 200: jsonResponse(WebhookWithSecretSchema, "The endpoint and its new signing secret.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => webhookQuery(db, org, input.param.webhook_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await rotateWebhookSecret(ctx, loaded, input.json), 200),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:read",
  method: "get",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}/deliveries",
  tags: TAGS,
  summary: "List an endpoint's deliveries",
  description: "Newest first; each delivery carries its last 10 attempts (status code, duration, error), newest first.",
  request: { params: WebhookParams, query: plainListQuery("created_at desc") },
  responses: { 200: jsonResponse(pageOf(DeliverySchema), "A page of deliveries.") },
  errors: ["not_found", "invalid_page_token"],
  load: ({ db, org, config, input }) => deliveryListQuery(db, org, config, input.param.webhook_id, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await deliveryPage(ctx, input.param.webhook_id, input.query, loaded), 200),
});

orgRoute(webhookRoutes, {
  permission: "webhooks:write",
  method: "post",
  path: "/v1/organizations/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
  audit: ["webhook.delivery_retried"],
  tags: TAGS,
  summary: "Send a delivery again",
  description:
    "Queues a succeeded or failed delivery again, with its original event id (`webhook-id`), so receivers that already processed it can ignore it. 409 while it is still being attempted or while the endpoint is disabled.",
  request: { params: DeliveryParams },
  // An action, so 200 with the resource (SPEC §10), though the sending itself happens after the response.
  responses: { 200: jsonResponse(DeliverySchema, "The delivery, pending again.") },
  errors: ["not_found", "conflict"],
  load: ({ db, org, input }) => deliveryQuery(db, org, input.param.webhook_id, input.param.delivery_id),
  handle: async ({ ctx, loaded }, c) => c.json(await retryDelivery(ctx, loaded), 200),
});
