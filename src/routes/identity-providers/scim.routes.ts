import { jsonResponse, pathParam, z } from "../../lib/openapi";
import { orderByParam, pageOf, PageQuery } from "../../lib/pagination";
import { orgRoute, type Router } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { IdpSchema } from "./identity-providers.schemas";
import { idpQuery } from "./identity-providers.service";
import { mintScimToken, scimLogListQuery, scimLogPage } from "./scim.service";

/** The /v1 side of SCIM: minting a config's SCIM token, and reading its request log. */

const IdpParams = OrgParams.extend({ idp_id: pathParam("idp_id") });
const TAGS = ["Identity providers"];

const ScimTokenSchema = IdpSchema.extend({
  scim_token_prefix: z.string().openapi({ description: "The token's first characters, to tell tokens apart; not usable." }),
  scim_token_created_at: z.string(),
  token: z.string().openapi({ description: "The SCIM bearer token (`scim_…`). Shown once; only its hash is stored.", example: "scim_Jx3…" }),
}).openapi("IdentityProviderConfigWithScimToken");

const ScimLogSchema = z
  .object({
    id: z.string().openapi({ example: "scl_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    method: z.string().openapi({ example: "POST" }),
    path: z.string().openapi({ description: "The request path, without its query string (filters may carry personal data).", example: "/scim/v2/Users" }),
    status: z.number().int().openapi({ example: 201 }),
    summary: z.string().openapi({ description: "A short line, never a body or a secret.", example: "created user bjensen@example.com" }),
    created_at: z.string(),
  })
  .openapi("ScimLogEntry");

const ScimLogQuery = PageQuery.extend({
  filter: z
    .string()
    .max(256)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description: '`status = 404` (or `status = "404"`): entries with that HTTP status. Equality on one status only, so a page stays one index range.',
    }),
  order_by: orderByParam({ fields: ["created_at"], default: "created_at desc", only: true }),
});

export function registerScimRoutes(router: Router) {
  orgRoute(router, {
    permission: "sso:write",
    method: "post",
    path: "/v1/organizations/{org_id}/identity-provider-configs/{idp_id}/scim-token",
    audit: ["identity_provider.scim_token_created"],
    tags: TAGS,
    summary: "Mint the config's SCIM token",
    description:
      "Returns the config and a new SCIM bearer token (`token`, `scim_…`) once; only its SHA-256 is stored. The previous token stops working at once. The token is accepted on `/scim/v2` only (never on `/v1`), for this config's directory only, and only while the config has `scim_enabled: true` (403 otherwise).",
    request: { params: IdpParams },
    responses: { 200: jsonResponse(ScimTokenSchema, "The config and its new SCIM token, once.") },
    errors: ["not_found"],
    load: ({ db, org, input }) => idpQuery(db, org, input.param.idp_id),
    handle: async ({ ctx, loaded }, c) => c.json(await mintScimToken(ctx, loaded), 200),
  });

  orgRoute(router, {
    permission: "sso:read",
    method: "get",
    path: "/v1/organizations/{org_id}/identity-provider-configs/{idp_id}/scim-logs",
    tags: TAGS,
    summary: "List the config's SCIM request log",
    description:
      "Every authenticated `/scim/v2` request of this config, newest first: method, path (no query string), status and a short summary — never bodies or secrets. Kept 30 days (a cron prunes older entries). Keyset paged; a page reads about page_size rows.",
    request: { params: IdpParams, query: ScimLogQuery },
    responses: { 200: jsonResponse(pageOf(ScimLogSchema), "A page of log entries.") },
    errors: ["not_found", "invalid_filter", "invalid_page_token"],
    load: ({ db, org, config, input }) => scimLogListQuery(db, org, config, input.param.idp_id, input.query),
    handle: async ({ ctx, input, loaded }, c) => c.json(await scimLogPage(ctx, input.param.idp_id, input.query, loaded), 200),
  });
}
