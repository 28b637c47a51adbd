import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../env";
import { ACCESS_TOKEN_ALG, ACCESS_TOKEN_CLAIMS, publicJwks } from "../../lib/jwt";
import { jsonResponse, registerProblemExamples, z } from "../../lib/openapi";
import { notFound } from "../../lib/errors";
import { createRouter, publicRoute } from "../../middleware/route";
import { PERMISSIONS, SCOPES, SCOPE_GRANTS, BUILT_IN_ROLES } from "../../lib/permissions";
import { DOCS_ASSETS, docsCsp, docsPage } from "./docs-page";
import { PROBLEMS_CSP, problemsPage } from "./problems-page";

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

const OpenIdConfiguration = z.object({
  issuer: z.string(),
  jwks_uri: z.string(),
  id_token_signing_alg_values_supported: z.array(z.string()),
  subject_types_supported: z.array(z.string()),
  claims_supported: z.array(z.string()),
  service_documentation: z.string(),
});

publicRoute(systemRoutes, {
  method: "get",
  path: "/.well-known/openid-configuration",
  tags: ["System"],
  summary: "Discovery document for verifying access tokens",
  description:
    "OpenID-style metadata, limited to what is true of this API: the issuer (access tokens' `iss`), where its keys are, the signing algorithm and the claims tokens carry. There is no authorization or token endpoint: tokens come from `/v1/auth/*`.",
  responses: { 200: jsonResponse(OpenIdConfiguration, "The discovery document.") },
  handle: ({ ctx }, c) => {
    const issuer = ctx.config.jwtIssuer;
    c.header("Cache-Control", "public, max-age=300");
    return c.json(
      {
        issuer,
        jwks_uri: `${issuer}/.well-known/jwks.json`,
        id_token_signing_alg_values_supported: [ACCESS_TOKEN_ALG],
        subject_types_supported: ["public"],
        claims_supported: [...ACCESS_TOKEN_CLAIMS],
        service_documentation: `${issuer}/docs`,
      },
      200,
    );
  },
});

/** The document's introduction; built with the document, on its first request. */
const authzDoc = () =>
  [
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
    "",
    "Every error is an RFC 9457 problem whose `type` links to its entry in the [problem catalogue](/docs/problems), with what to do about it.",
  ].join("\n");

/**
 * `/openapi.json`, the reference at `/docs` with its assets, and the problem catalogue describe
 * the API; they are the routes outside the OpenAPI document.
 */
export function mountDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "An access token (JWT), a personal access token `pat_…`, or a service account key `sak_…`.",
  });
  let cached: unknown;
  app.get("/openapi.json", (c) => {
    // Built on first use, once per isolate, from the zod schemas that validate requests: nothing
    // of it runs at startup.
    if (cached === undefined) {
      registerProblemExamples(app, c.var.config.apiBaseUrl);
      cached = app.getOpenAPI31Document({
        openapi: "3.1.0",
        info: { title: "Tenancy API", version: c.var.config.buildVersion, description: authzDoc() },
        servers: [{ url: c.var.config.apiBaseUrl }],
      });
    }
    return c.json(cached);
  });
  app.get("/docs", (c) => {
    c.header("Content-Security-Policy", docsCsp(c.var.config.apiBaseUrl));
    c.header("Cache-Control", "public, max-age=300");
    return c.html(docsPage());
  });
  app.get("/docs/assets/:file", async (c) => {
    const asset = DOCS_ASSETS.get(c.req.param("file"));
    if (!asset) throw notFound("documentation asset");
    return c.body(await asset.text(), 200, { "Content-Type": asset.contentType, "Cache-Control": asset.cacheControl });
  });
  app.get("/docs/problems", (c) => {
    c.header("Content-Security-Policy", PROBLEMS_CSP);
    c.header("Cache-Control", "public, max-age=300");
    return c.html(problemsPage(c.var.config.apiBaseUrl));
  });
}
