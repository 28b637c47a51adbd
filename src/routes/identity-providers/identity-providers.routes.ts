import { notFound } from "../../lib/errors";
import { jsonBody, jsonResponse, noContent, pathParam, z } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute, publicRoute } from "../../middleware/route";
import { SAML_METADATA_TYPE, spMetadataXml } from "../../sso/metadata";
import { OrgParams } from "../organizations/organizations.routes";
import { IdpCreateInput, IdpSchema, IdpUpdateInput, SamlSsoInput } from "./identity-providers.schemas";
import {
  createIdp,
  defaultIdpQuery,
  deleteIdp,
  deleteSamlSso,
  getIdpFrom,
  idpExists,
  idpListQuery,
  idpPage,
  idpQuery,
  updateIdp,
  upsertSamlSso,
} from "./identity-providers.service";
import { registerScimRoutes } from "./scim.routes";

export const identityProviderRoutes = createRouter();

const IdpParams = OrgParams.extend({ idp_id: pathParam("idp_id") });
const TAGS = ["Identity providers"];
const SP_NOTE =
  "Every response carries our side for the IdP admin to paste: `sp_entity_id` (= `metadata_url`), `acs_url` (HTTP-POST), `metadata_url`, `login_url`; they depend on the config id only.";

orgRoute(identityProviderRoutes, {
  permission: "sso:write",
  method: "post",
  path: "/v1/organizations/{org_id}/identity-provider-configs",
  audit: ["identity_provider.created"],
  tags: TAGS,
  summary: "Create an identity provider config",
  description: `A SAML 2.0 IdP of this organization. Only \`name\` and \`saml_entity_id\` are required: create the config first, paste its SP values into the IdP, then PATCH the IdP's SSO URL and certificate. Certificates are parsed: garbage, a private key, a weak key or an expired certificate is 400. ${SP_NOTE}`,
  request: { params: OrgParams, body: jsonBody(IdpCreateInput) },
  responses: { 201: jsonResponse(IdpSchema, "The new config.") },
  handle: async ({ ctx, input }, c) => c.json(await createIdp(ctx, input.json), 201),
});

orgRoute(identityProviderRoutes, {
  permission: "sso:read",
  method: "get",
  path: "/v1/organizations/{org_id}/identity-provider-configs",
  tags: TAGS,
  summary: "List identity provider configs",
  description: "In creation order; each page reads about page_size rows.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(IdpSchema), "A page of configs.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => idpListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await idpPage(ctx, input.query, loaded.page), 200),
});

orgRoute(identityProviderRoutes, {
  permission: "sso:read",
  method: "get",
  path: "/v1/organizations/{org_id}/identity-provider-configs/{idp_id}",
  tags: TAGS,
  summary: "Get an identity provider config",
  request: { params: IdpParams },
  responses: { 200: jsonResponse(IdpSchema, "The config.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => idpQuery(db, org, input.param.idp_id),
  handle: ({ ctx, loaded }, c) => c.json(getIdpFrom(ctx, loaded), 200),
});

orgRoute(identityProviderRoutes, {
  permission: "sso:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/identity-provider-configs/{idp_id}",
  audit: ["identity_provider.updated"],
  tags: TAGS,
  summary: "Update an identity provider config",
  description:
    "Fields omitted are unchanged; values already in place change nothing (no write, `updated_at` kept, no audit entry). Certificate rollover: set `saml_x509_cert_secondary` to the IdP's new certificate (both verify from then on), switch the IdP over, then `promote_secondary_cert: true` (the secondary becomes the primary; 409 `conflict` if there is none), or replace/clear either field directly.",
  request: { params: IdpParams, body: jsonBody(IdpUpdateInput) },
  responses: { 200: jsonResponse(IdpSchema, "The updated config.") },
  errors: ["not_found", "conflict"],
  load: ({ db, org, input }) => idpQuery(db, org, input.param.idp_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateIdp(ctx, loaded, input.json), 200),
});

orgRoute(identityProviderRoutes, {
  permission: "sso:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/identity-provider-configs/{idp_id}",
  audit: ["identity_provider.deleted"],
  tags: TAGS,
  summary: "Delete an identity provider config",
  description: "Logins through it stop at once; domains that used it keep existing with no identity provider.",
  request: { params: IdpParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => idpQuery(db, org, input.param.idp_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteIdp(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(identityProviderRoutes, {
  permission: "sso:write",
  method: "post",
  path: "/v1/organizations/{org_id}/saml-sso",
  audit: ["identity_provider.created", "identity_provider.updated"],
  tags: TAGS,
  summary: "Create or update the organization's default SAML config",
  description: `A shortcut over the configs above: the organization has at most one default config (named "SAML SSO", \`default: true\`). 201 when this call created it, 200 when it updated it; \`sso_url\` and \`x509_cert\` omitted keep their value, \`null\` clears them; a call that changes nothing answers 200 and writes nothing. ${SP_NOTE}`,
  request: { params: OrgParams, body: jsonBody(SamlSsoInput) },
  responses: {
    200: jsonResponse(IdpSchema, "The updated default config."),
    201: jsonResponse(IdpSchema, "The default config, created."),
  },
  load: ({ db, org }) => defaultIdpQuery(db, org),
  handle: async ({ ctx, input, loaded }, c) => {
    const { created, config } = await upsertSamlSso(ctx, input.json, loaded);
    return created ? c.json(config, 201) : c.json(config, 200);
  },
});

orgRoute(identityProviderRoutes, {
  permission: "sso:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/saml-sso",
  audit: ["identity_provider.deleted"],
  tags: TAGS,
  summary: "Delete the organization's default SAML config",
  description: "404 when there is none. Other configs are untouched.",
  request: { params: OrgParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org }) => defaultIdpQuery(db, org),
  handle: async ({ ctx, loaded }, c) => {
    await deleteSamlSso(ctx, loaded);
    return c.body(null, 204);
  },
});

publicRoute(identityProviderRoutes, {
  method: "get",
  path: "/v1/sso/saml/{idp_id}/metadata",
  tags: ["SSO"],
  summary: "SP metadata of an identity provider config",
  description:
    'SAML 2.0 metadata (`application/samlmetadata+xml`) for the IdP to import: our entity id (this URL), the assertion consumer service (HTTP-POST, index 0), NameID format emailAddress, `AuthnRequestsSigned="false"`, `WantAssertionsSigned="true"`. No authentication; limited per client. Unknown or malformed id: 404.',
  request: { params: z.object({ idp_id: pathParam("idp_id") }) },
  responses: { 200: { description: "The metadata document.", content: { [SAML_METADATA_TYPE]: { schema: z.string() } } } },
  errors: ["not_found"],
  handle: async ({ ctx, input }, c) => {
    if (!(await idpExists(ctx.db, input.param.idp_id))) throw notFound("identity provider config");
    c.header("Content-Type", `${SAML_METADATA_TYPE}; charset=utf-8`);
    c.header("Cache-Control", "public, max-age=300");
    return c.body(spMetadataXml(ctx.config, input.param.idp_id), 200);
  },
});

// The SCIM token and request log routes (scim.routes.ts) join this router.
registerScimRoutes(identityProviderRoutes);
