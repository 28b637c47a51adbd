import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute, publicRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { DiscoverQuery, DiscoverSchema, DomainCreateInput, DomainSchema, DomainUpdateInput } from "./domains.schemas";
import {
  createDomain,
  deleteDomain,
  discover,
  domainListQuery,
  domainPage,
  domainQuery,
  getDomainFrom,
  identityProviderConfigQuery,
  updateDomain,
  verifyDomain,
} from "./domains.service";

export const domainRoutes = createRouter();

const DomainParams = OrgParams.extend({ domain_id: pathParam("domain_id") });
const TAGS = ["Domains"];

orgRoute(domainRoutes, {
  permission: "sso:write",
  method: "post",
  path: "/v1/organizations/{org_id}/domains",
  audit: ["domain.created"],
  tags: TAGS,
  summary: "Claim a domain",
  description:
    "Adds a domain to verify. Publish the returned TXT record (`_tenancy-verification.<domain>`, value `tenancy-verification=<token>`), then call `…/verify`. Any number of organizations may claim a domain; one verifies it. Public email domains are refused (422 `public_email_domain`); the same domain twice in one organization is 409 `conflict`.",
  request: { params: OrgParams, body: jsonBody(DomainCreateInput) },
  responses: { 201: jsonResponse(DomainSchema, "The new, unverified domain with its verification record.") },
  errors: ["public_email_domain", "conflict"],
  handle: async ({ ctx, input }, c) => c.json(await createDomain(ctx, input.json), 201),
});

orgRoute(domainRoutes, {
  permission: "sso:read",
  method: "get",
  path: "/v1/organizations/{org_id}/domains",
  tags: TAGS,
  summary: "List domains",
  description: "In creation order; each page reads about page_size rows.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(DomainSchema), "A page of domains.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => domainListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await domainPage(ctx, input.query, loaded.page), 200),
});

orgRoute(domainRoutes, {
  permission: "sso:read",
  method: "get",
  path: "/v1/organizations/{org_id}/domains/{domain_id}",
  tags: TAGS,
  summary: "Get a domain",
  request: { params: DomainParams },
  responses: { 200: jsonResponse(DomainSchema, "The domain.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => domainQuery(db, org, input.param.domain_id),
  handle: ({ loaded }, c) => c.json(getDomainFrom(loaded), 200),
});

orgRoute(domainRoutes, {
  permission: "sso:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/domains/{domain_id}",
  audit: ["domain.updated"],
  tags: TAGS,
  summary: "Update a domain",
  description:
    "Fields omitted are unchanged; values already in place change nothing (no write, `updated_at` kept, no audit entry). Switching `jit_provisioning_enabled` or `scim_enabled` on, or `sso_enforcement` to `required`, needs a verified domain (409 `domain_not_verified`); switching them off is always allowed. `identity_provider_config_id` must name a config of this organization (404 otherwise), or be null.",
  request: { params: DomainParams, body: jsonBody(DomainUpdateInput) },
  responses: { 200: jsonResponse(DomainSchema, "The updated domain.") },
  errors: ["not_found", "domain_not_verified"],
  load: ({ db, org, input }) => ({
    domain: domainQuery(db, org, input.param.domain_id),
    config: identityProviderConfigQuery(db, org, input.json.identity_provider_config_id),
  }),
  // With a malformed domain id and no config to check, nothing is read and `loaded` is undefined.
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateDomain(ctx, loaded?.domain, loaded?.config, input.json), 200),
});

orgRoute(domainRoutes, {
  permission: "sso:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/domains/{domain_id}",
  audit: ["domain.deleted"],
  tags: TAGS,
  summary: "Delete a domain",
  description:
    "Withdraws the claim (and un-verifies the domain): JIT provisioning and SSO enforcement stop applying to its addresses at once, and another organization may verify it. Members already provisioned stay members.",
  request: { params: DomainParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => domainQuery(db, org, input.param.domain_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteDomain(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(domainRoutes, {
  permission: "sso:write",
  method: "post",
  path: "/v1/organizations/{org_id}/domains/{domain_id}/verify",
  // A failed lookup answers 422 or 502 and changes nothing, so it records nothing.
  audit: ["domain.verified"],
  tags: TAGS,
  summary: "Verify a domain",
  description: [
    "Looks up the TXT record `verification.name` over DNS-over-HTTPS (the JSON API at `DOH_RESOLVER_URL`, 5 second timeout) and marks the domain verified when one of its strings equals `verification.value`.",
    "A domain is verified by one organization at most: another organization's verified claim is 409 `domain_taken`. No such record: 422 `domain_verification_failed`. The resolver failing, timing out or answering something that is not a DNS answer: 502 `dns_lookup_failed`. Either way nothing changes.",
    "Calling it again on a verified domain re-checks the record; if it has disappeared the answer is 422 but the domain stays verified (delete the domain to un-verify it).",
  ].join("\n\n"),
  request: { params: DomainParams },
  responses: { 200: jsonResponse(DomainSchema, "The verified domain.") },
  errors: ["not_found", "domain_taken", "domain_verification_failed", "dns_lookup_failed"],
  load: ({ db, org, input }) => domainQuery(db, org, input.param.domain_id),
  handle: async ({ ctx, loaded }, c) => c.json(await verifyDomain(ctx, loaded), 200),
});

publicRoute(domainRoutes, {
  method: "get",
  path: "/v1/sso/discover",
  tags: ["SSO"],
  summary: "Which login applies to an address",
  description:
    "From the verified domain of the address: `sso: true` with `login_url` when an SSO login exists (the domain's identity provider config, else the organization's default config); `enforcement: required` when a password login will be refused. An address in no verified domain: `{sso: false, enforcement: \"optional\"}`. Limited per client, like every unauthenticated route.",
  request: { query: DiscoverQuery },
  responses: { 200: jsonResponse(DiscoverSchema, "The login that applies.") },
  handle: async ({ ctx, input }, c) => c.json(await discover(ctx, input.query.email), 200),
});
