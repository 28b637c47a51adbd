import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { DefaultProxyInput, DefaultProxySchema, ProxyCreateInput, ProxySchema, ProxyUpdateInput } from "./proxies.schemas";
import {
  createProxy,
  defaultProxyFrom,
  defaultProxyQuery,
  deleteProxy,
  getProxyFrom,
  proxyListQuery,
  proxyPage,
  proxyQuery,
  setDefaultProxy,
  updateProxy,
} from "./proxies.service";

export const proxyRoutes = createRouter();

const ProxyParams = OrgParams.extend({ proxy_id: pathParam("proxy_id") });
const TAGS = ["Network proxies"];

// The `/proxies/default` routes are registered before `/proxies/{proxy_id}`: the router tries
// handlers in registration order, so `default` never reaches the id routes (where it would be a
// malformed id, 404).

orgRoute(proxyRoutes, {
  permission: "proxies:read",
  method: "get",
  path: "/v1/organizations/{org_id}/proxies/default",
  tags: TAGS,
  summary: "Get the default proxy",
  description: "`{proxy: null}` when no default is set.",
  request: { params: OrgParams },
  responses: { 200: jsonResponse(DefaultProxySchema, "The default proxy, or null.") },
  load: ({ db, org }) => defaultProxyQuery(db, org),
  handle: ({ loaded }, c) => c.json(defaultProxyFrom(loaded), 200),
});

orgRoute(proxyRoutes, {
  permission: "proxies:write",
  method: "put",
  path: "/v1/organizations/{org_id}/proxies/default",
  audit: ["proxy.updated"],
  tags: TAGS,
  summary: "Set or clear the default proxy",
  description:
    "`{proxy_id}` makes that proxy the default (the previous one stops being it, in the same transaction); `{proxy_id: null}` clears it. An unknown id, or another organization's, is 404 and changes nothing.",
  request: { params: OrgParams, body: jsonBody(DefaultProxyInput) },
  responses: { 200: jsonResponse(DefaultProxySchema, "The new default proxy, or null.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => ({
    current: defaultProxyQuery(db, org),
    target: input.json.proxy_id === null ? undefined : proxyQuery(db, org, input.json.proxy_id),
  }),
  handle: async ({ ctx, input, loaded }, c) => c.json(await setDefaultProxy(ctx, input.json.proxy_id, loaded), 200),
});

orgRoute(proxyRoutes, {
  permission: "proxies:write",
  method: "post",
  path: "/v1/organizations/{org_id}/proxies",
  audit: ["proxy.created"],
  tags: TAGS,
  summary: "Create a proxy",
  description: "The password is write-only: encrypted at rest (AES-GCM) and never returned; the proxy shows `password_set`.",
  request: { params: OrgParams, body: jsonBody(ProxyCreateInput) },
  responses: { 201: jsonResponse(ProxySchema, "The new proxy.") },
  handle: async ({ ctx, input }, c) => c.json(await createProxy(ctx, input.json), 201),
});

orgRoute(proxyRoutes, {
  permission: "proxies:read",
  method: "get",
  path: "/v1/organizations/{org_id}/proxies",
  tags: TAGS,
  summary: "List proxies",
  description: "In creation order; each page reads about page_size rows.",
  request: { params: OrgParams, query: plainListQuery("created_at") },
  responses: { 200: jsonResponse(pageOf(ProxySchema), "A page of proxies.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => proxyListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await proxyPage(ctx, input.query, loaded.page), 200),
});

orgRoute(proxyRoutes, {
  permission: "proxies:read",
  method: "get",
  path: "/v1/organizations/{org_id}/proxies/{proxy_id}",
  tags: TAGS,
  summary: "Get a proxy",
  request: { params: ProxyParams },
  responses: { 200: jsonResponse(ProxySchema, "The proxy.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => proxyQuery(db, org, input.param.proxy_id),
  handle: ({ loaded }, c) => c.json(getProxyFrom(loaded), 200),
});

orgRoute(proxyRoutes, {
  permission: "proxies:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/proxies/{proxy_id}",
  audit: ["proxy.updated"],
  tags: TAGS,
  summary: "Update a proxy",
  description: "Fields omitted are unchanged; `password: null` removes the password, `username: null` the username (a password needs a username).",
  request: { params: ProxyParams, body: jsonBody(ProxyUpdateInput) },
  responses: { 200: jsonResponse(ProxySchema, "The updated proxy.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => proxyQuery(db, org, input.param.proxy_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateProxy(ctx, loaded, input.json), 200),
});

orgRoute(proxyRoutes, {
  permission: "proxies:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/proxies/{proxy_id}",
  audit: ["proxy.deleted"],
  tags: TAGS,
  summary: "Delete a proxy",
  description: "Deleting the default proxy leaves the organization with no default.",
  request: { params: ProxyParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => proxyQuery(db, org, input.param.proxy_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteProxy(ctx, loaded);
    return c.body(null, 204);
  },
});
