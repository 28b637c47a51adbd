import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../env";
import { publicJwks } from "../../lib/jwt";
import { jsonResponse, z } from "../../lib/openapi";
import { createRouter, publicRoute } from "../../middleware/route";
import { PERMISSIONS, SCOPES, SCOPE_GRANTS, BUILT_IN_ROLES } from "../../lib/permissions";
import { DOCS_HTML } from "./docs-page";

export const systemRoutes = createRouter();

publicRoute(systemRoutes, {
  method: "get",
  path: "/healthz",
  tags: ["System"],
  summary: "Liveness and build version",
  responses: { 200: jsonResponse(z.object({ status: z.literal("ok"), version: z.string() }), "The worker is up.") },
  handle: ({ ctx }, c) => c.json({ status: "ok" as const, version: ctx.config.buildVersion }, 200),
});

const Jwk = z.object({ kty: z.string(), crv: z.string(), x: z.string(), y: z.string(), kid: z.string(), alg: z.string(), use: z.string() }).passthrough();

publicRoute(systemRoutes, {
  method: "get",
  path: "/.well-known/jwks.json",
  tags: ["System"],
  summary: "Public keys that verify access tokens",
  description: "Several keys may be listed during a rotation; pick by the token's `kid`.",
  responses: { 200: jsonResponse(z.object({ keys: z.array(Jwk) }), "The JSON Web Key Set.") },
  handle: async ({ ctx }, c) => {
    const jwks = await publicJwks(ctx.config.jwtSigningKeys);
    c.header("Cache-Control", "public, max-age=300");
    return c.json(jwks as { keys: z.infer<typeof Jwk>[] }, 200);
  },
});

const AUTHZ_DOC = [
  "Every route lists its `x-authorization` rule: `public`, `any` credential, `user` (access token or PAT with a scope),",
  "`session` (access token only) or `org` (a member holding a permission, narrowed by token scopes).",
  "",
  "| role | permissions |",
  "|---|---|",
  ...Object.entries(BUILT_IN_ROLES).map(([name, r]) => `| \`${name}\` | ${r.permissions.map((p) => `\`${p}\``).join(", ")} |`),
  "",
  "| scope | grants |",
  "|---|---|",
  ...SCOPES.map((s) => `| \`${s}\` | ${SCOPE_GRANTS[s].map((p) => `\`${p}\``).join(", ")} |`),
  "",
  `Permissions for custom roles: ${PERMISSIONS.map((p) => `\`${p}\``).join(", ")}.`,
].join("\n");

/** `/openapi.json` and `/docs` describe the API; they are the two routes outside the OpenAPI document. */
export function mountDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "An access token (JWT), a personal access token `pat_…`, or a service account key `sak_…`.",
  });
  let cached: unknown;
  app.get("/openapi.json", (c) => {
    // Generated once per isolate from the zod schemas that validate requests.
    cached ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: { title: "Tenancy API", version: c.var.config.buildVersion, description: AUTHZ_DOC },
      servers: [{ url: c.var.config.apiBaseUrl }],
    });
    return c.json(cached);
  });
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'");
    return c.html(DOCS_HTML);
  });
}
