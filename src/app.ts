import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { ApiError, problemResponse, rootMessage, toApiError } from "./lib/errors";
import { createRouter, type Router } from "./middleware/route";
import { d1Session, requestContext } from "./middleware/request-context";
import { systemRoutes, mountDocs } from "./routes/system/system.routes";
import { authRoutes } from "./routes/auth/auth.routes";
import { meRoutes } from "./routes/me/me.routes";
import { userRoutes } from "./routes/users/users.routes";
import { organizationRoutes } from "./routes/organizations/organizations.routes";
import { settingsRoutes } from "./routes/settings/settings.routes";
import { devRoutes } from "./routes/dev/dev.routes";
import { invitationRoutes } from "./routes/invitations/invitations.routes";
import { memberRoutes } from "./routes/members/members.routes";
import { roleRoutes } from "./routes/roles/roles.routes";
import { serviceAccountRoutes } from "./routes/service-accounts/service-accounts.routes";
import { projectRoutes } from "./routes/projects/projects.routes";
import { tagRoutes } from "./routes/tags/tags.routes";
import { proxyRoutes } from "./routes/proxies/proxies.routes";
import { integrationRoutes } from "./routes/integrations/integrations.routes";
import { licenseRoutes } from "./routes/licenses/licenses.routes";
import { domainRoutes } from "./routes/domains/domains.routes";
import { identityProviderRoutes } from "./routes/identity-providers/identity-providers.routes";
import { ssoRoutes } from "./routes/sso/sso.routes";
import { scimRoutes } from "./scim";
import { webhookRoutes } from "./routes/webhooks/webhooks.routes";
import { auditLogRoutes } from "./routes/audit-logs/audit-logs.routes";
import { pageRoutes } from "./pages/pages.routes";

export const MAX_BODY_BYTES = 1024 * 1024;

/** The route table: every router the API serves, in one place. */
const ROUTERS: Router[] = [
  systemRoutes,
  authRoutes,
  meRoutes,
  userRoutes,
  organizationRoutes,
  settingsRoutes,
  memberRoutes,
  roleRoutes,
  serviceAccountRoutes,
  invitationRoutes,
  projectRoutes,
  tagRoutes,
  proxyRoutes,
  integrationRoutes,
  licenseRoutes,
  domainRoutes,
  identityProviderRoutes,
  ssoRoutes,
  webhookRoutes,
  auditLogRoutes,
  scimRoutes,
  devRoutes,
  pageRoutes,
];

export function createApp() {
  const app = createRouter();

  app.use("*", requestContext);
  app.use("*", async (c, next) => {
    const origins = c.var.config.corsOrigins;
    return cors({
      // Bearer tokens, not cookies: any origin may call unless the deployment lists its own.
      origin: origins.length === 0 ? "*" : origins,
      allowHeaders: ["Authorization", "Content-Type", "X-Request-Id", "X-D1-Bookmark"],
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      exposeHeaders: ["X-Request-Id", "Server-Timing", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After", "X-D1-Bookmark"],
      maxAge: 600,
    })(c, next);
  });
  app.use("*", d1Session);
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new ApiError("payload_too_large");
      },
    }),
  );

  for (const router of ROUTERS) app.route("/", router);
  mountDocs(app);

  app.notFound((c) => {
    const allowed = methodsFor(app, c.req.path);
    if (allowed.length > 0) {
      return problemResponse(
        c,
        new ApiError("method_not_allowed", `${c.req.method} is not allowed here; use ${allowed.join(", ")}.`, {
          headers: { Allow: allowed.join(", ") },
        }),
      );
    }
    return problemResponse(c, new ApiError("not_found", `No route matches ${c.req.method} ${c.req.path}.`));
  });

  app.onError((err, c) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500) {
      // The root cause only: never request bodies, headers or query parameters, which may hold secrets.
      console.error(JSON.stringify({ level: "error", request_id: c.get("requestId"), method: c.req.method, path: c.req.routePath, error: rootMessage(err) }));
    }
    return problemResponse(c, apiError);
  });

  return app;
}

export type App = ReturnType<typeof createApp>;

// Route patterns compiled once per app, to answer 405 for a known path with the wrong method.
const patternCache = new WeakMap<object, { re: RegExp; method: string }[]>();

function methodsFor(app: App, path: string): string[] {
  let patterns = patternCache.get(app);
  if (!patterns) {
    patterns = app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({
        method: r.method,
        re: new RegExp(`^${r.path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\/:[A-Za-z0-9_]+/g, "/[^/]+")}/?$`),
      }));
    patternCache.set(app, patterns);
  }
  return [...new Set(patterns.filter((p) => p.re.test(path)).map((p) => p.method))];
}
