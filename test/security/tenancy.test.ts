import { env } from "cloudflare:workers";
import { describe, expect, it, beforeAll } from "vitest";
import { newId } from "../../src/lib/ids";
import { createApp } from "../../src/app";
import { BUILT_IN_ROLES, SCOPES, SCOPE_GRANTS, type Permission } from "../../src/lib/permissions";
import { api, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique, uniqueEmail, type TestUser } from "../helpers/factories";
import { fillPath, operations, type Operation } from "../helpers/openapi";

/**
 * The routes anyone may call without a credential. A new public route must be added here on
 * purpose; any other new route must carry an authorization rule or these tests fail.
 */
const PUBLIC_ROUTES = [
  "GET /healthz",
  "GET /.well-known/jwks.json",
  "GET /.well-known/openid-configuration",
  "POST /v1/auth/signup",
  "POST /v1/auth/login",
  "POST /v1/auth/refresh",
  "POST /v1/auth/verify-email",
  "GET /v1/dev/emails",
  "GET /v1/invitations/{token}",
  "POST /v1/invitations/{token}/accept",
  "POST /v1/licenses/{license_id}/deployments",
  "GET /v1/sso/discover",
  "GET /v1/sso/saml/{idp_id}/metadata",
  "GET /v1/sso/saml/{idp_id}/login",
  "POST /v1/sso/saml/{idp_id}/acs",
  "POST /v1/auth/sso/exchange",
].sort();

/** Routes outside the OpenAPI document: those that describe the API, and the hosted pages behind its emailed links (src/pages). */
const DOCUMENT_ROUTES = [
  "GET /openapi.json",
  "GET /docs",
  "GET /docs/assets/{file}",
  "GET /docs/problems",
  "GET /invitations/accept",
  "GET /verify-email",
  "GET /sso/callback",
];

const key = (o: { method: string; path: string }) => `${o.method} ${o.path}`;

describe("security", () => {
  it("every registered route is documented with an authorization rule", async () => {
    const app = createApp();
    const registered = [
      ...new Set(app.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`)),
    ].filter((r) => !DOCUMENT_ROUTES.includes(r));
    const documented = new Map((await operations()).map((o) => [key(o), o]));
    const undocumented = registered.filter((r) => !documented.has(r));
    expect(undocumented, "routes registered outside defineRoute() have no authorization rule").toEqual([]);
    for (const [k, o] of documented) {
      expect(["public", "any", "user", "session", "org", "scim"], k).toContain(o.auth?.kind);
      if (o.auth.kind === "org") expect(o.auth.permission, k).toBeTruthy();
    }
  });

  it("only the listed routes are public", async () => {
    const publicOps = (await operations())
      .filter((o) => o.auth.kind === "public")
      .map(key)
      .sort();
    expect(publicOps).toEqual(PUBLIC_ROUTES);
  });

  describe("per route", async () => {
    // SCIM routes take only SCIM tokens; test/routes/scim-*.test.ts hold them to that.
    const ops = (await operations()).filter((o) => o.auth.kind !== "public" && o.auth.kind !== "scim");
    let admin: TestUser;
    let lowest: TestUser;
    let outsider: TestUser;
    let orgId: string;
    let foreignKey: string;
    const patsByScope = new Map<string, string>();

    beforeAll(async () => {
      [admin, lowest, outsider] = await Promise.all([createUser(), createUser(), createUser()]);
      orgId = (await createOrg(admin)).id;
      const outsiderOrg = await createOrg(outsider);
      await addMemberDirect(orgId, lowest, "user");
      // An all-powerful service account, of another organization.
      const sa = await api("POST", `/v1/organizations/${outsiderOrg.id}/service-accounts`, {
        token: outsider.accessToken,
        body: { name: "robot", role: "admin" },
      });
      expect(sa.status, sa.text).toBe(201);
      foreignKey = sa.body.key;
      for (const scope of SCOPES) patsByScope.set(scope, (await createPat(admin, [scope])).token);
      patsByScope.set("*", (await createPat(admin, [...SCOPES])).token);
    });

    const call = (o: Operation, token?: string) => api(o.method, fillPath(o.path, orgId), { token, body: o.op.requestBody ? {} : undefined });

    it.each(ops.map((o) => [key(o), o] as const))("%s: anonymous → 401", async (_, o) => {
      const res = await call(o);
      expect(res.status, res.text).toBe(401);
      expect(res.body.code).toBe("unauthenticated");
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    });

    const orgOps = ops.filter((o) => o.auth.kind === "org");

    it.each(orgOps.map((o) => [key(o), o] as const))("%s: member of another organization → 404", async (_, o) => {
      const res = await call(o, outsider.accessToken);
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe("not_found");
    });

    it.each(orgOps.map((o) => [key(o), o] as const))("%s: service account key of another organization → 404", async (_, o) => {
      const res = await call(o, foreignKey);
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe("not_found");
    });

    const userOnlyOps = ops.filter((o) => o.auth.kind === "user" || o.auth.kind === "session");
    it.each(userOnlyOps.map((o) => [key(o), o] as const))("%s: service account key → 403", async (_, o) => {
      const res = await call(o, foreignKey);
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("forbidden");
    });

    it.each(orgOps.map((o) => [key(o), o] as const))("%s: malformed or unknown organization id → 404", async (_, o) => {
      for (const bad of ["nope", "org_00000000000000000000000000"]) {
        const res = await api(o.method, fillPath(o.path, bad), { token: admin.accessToken, body: o.op.requestBody ? {} : undefined });
        expect(res.status, res.text).toBe(404);
      }
    });

    const userLacks = (p: string) => !(BUILT_IN_ROLES.user.permissions as readonly string[]).includes(p);
    const deniedToLowest = orgOps.filter((o) => userLacks(o.auth.permission!));

    it("every write is denied to the lowest role", () => {
      const writesAllowedToUser = orgOps.filter((o) => o.method !== "GET" && !userLacks(o.auth.permission!)).map(key);
      // Writes the `user` role may make by design (projects) are listed here as they arrive.
      expect(writesAllowedToUser).toEqual([
        "POST /v1/organizations/{org_id}/projects",
        "PATCH /v1/organizations/{org_id}/projects/{project_id}",
        "DELETE /v1/organizations/{org_id}/projects/{project_id}",
        "PUT /v1/organizations/{org_id}/projects/{project_id}/members/{user_id}",
        "DELETE /v1/organizations/{org_id}/projects/{project_id}/members/{user_id}",
      ]);
    });

    it.each(deniedToLowest.map((o) => [key(o), o] as const))("%s: lowest role → 403", async (_, o) => {
      const res = await call(o, lowest.accessToken);
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("forbidden");
    });

    it.each(orgOps.map((o) => [key(o), o] as const))("%s: token without the scope → 403 insufficient_scope", async (_, o) => {
      const lacking = SCOPES.find((s) => !(SCOPE_GRANTS[s] as readonly string[]).includes(o.auth.permission as Permission))!;
      const res = await call(o, patsByScope.get(lacking));
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("insufficient_scope");
      expect(o.auth.scope).toBe(res.body.required_scope);
    });

    const scopedUserOps = ops.filter((o) => o.auth.kind === "user" && o.auth.scope);
    it.each(scopedUserOps.map((o) => [key(o), o] as const))("%s: token without the scope → 403 insufficient_scope", async (_, o) => {
      const lacking = SCOPES.find((s) => s !== o.auth.scope && s !== o.auth.scope!.replace(":read", ":write"))!;
      const res = await call(o, patsByScope.get(lacking));
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("insufficient_scope");
    });

    const sessionOps = ops.filter((o) => o.auth.kind === "session");
    it.each(sessionOps.map((o) => [key(o), o] as const))("%s: any token instead of a session → 403", async (_, o) => {
      const res = await call(o, patsByScope.get("*"));
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("forbidden");
    });
  });

  /**
   * Issue 8: a refused caller learns nothing from the work done before its refusal. For every
   * organization route, a made-up PAT, a made-up key and an outsider's session get the same
   * status, body code and Server-Timing figures from an empty organization as from one full of
   * members, invitations, roles, service accounts and settings, with every path id naming a real
   * resource of the full one and every body one that a member's request would act on.
   */
  describe("refusals look the same whatever the organization holds", async () => {
    const orgOps = (await operations()).filter((o) => o.auth.kind === "org");
    let empty: string;
    let full: string;
    let outsider: TestUser;
    const ids: Record<string, string> = {};
    const bodies: Record<string, unknown> = {};

    beforeAll(async () => {
      const [owner, other, member] = await Promise.all([createUser(), createUser(), createUser()]);
      outsider = other;
      empty = (await createOrg(owner)).id;
      full = (await createOrg(owner)).id;
      const token = { token: owner.accessToken };
      await addMemberDirect(full, member, "user");
      for (let i = 0; i < 15; i++) {
        const u = {
          id: `usr_${unique("")
            .toUpperCase()
            .replace(/[^0-9A-Z]/g, "0")
            .padEnd(26, "0")
            .slice(0, 26)}`,
          email: `carol${i}${unique("c")}@example.com`,
          displayName: `Carol ${i}`,
        };
        await addMemberDirect(full, u);
      }
      const role = await api("POST", `/v1/organizations/${full}/roles`, {
        ...token,
        body: { name: unique("r").slice(0, 30), permissions: ["organization:read"] },
      });
      const sa = await api("POST", `/v1/organizations/${full}/service-accounts`, { ...token, body: { name: "robot" } });
      const invEmail = uniqueEmail("pending");
      const inv = await api("POST", `/v1/organizations/${full}/invitations`, {
        ...token,
        body: { email: invEmail, send_email: false },
        env: { FREE_PLAN_SEATS: "1000" },
      });
      await api("PUT", `/v1/organizations/${full}/settings`, { ...token, body: { settings: { a: 1 }, secrets: { s: "v" } } });
      // Issue 9's resources: a private, tagged project the member may see, a default proxy with a
      // password, an integration with a secret and a mapping, a license with a deployment.
      const project = await api("POST", `/v1/organizations/${full}/projects`, {
        ...token,
        body: { name: "Secret plans", private: true, tags: ["alpha", "beta"] },
      });
      const proxy = await api("POST", `/v1/organizations/${full}/proxies`, {
        ...token,
        body: { name: "egress", url: "http://proxy.example.com:3128", username: "u", password: "p4ss" },
      });
      const integration = await api("POST", `/v1/organizations/${full}/integrations`, {
        ...token,
        body: { kind: "vercel", display_name: "Vercel", config: { team: "t" }, secrets: { token: "s3cret" } },
      });
      for (const r of [role, sa, inv, project, proxy, integration]) expect(r.status, r.text).toBe(201);
      const tagList = await api("GET", `/v1/organizations/${full}/tags`, token);
      const grant = await api("PUT", `/v1/organizations/${full}/projects/${project.body.id}/members/${member.id}`, token);
      const setDefault = await api("PUT", `/v1/organizations/${full}/proxies/default`, { ...token, body: { proxy_id: proxy.body.id } });
      const mapping = await api("PATCH", `/v1/organizations/${full}/integrations/${integration.body.id}/environment-mapping`, {
        ...token,
        body: { mapping: { production: project.body.id } },
      });
      for (const r of [tagList, grant, setDefault, mapping]) expect(r.status, r.text).toBe(200);
      // Issue 10's: a claimed domain and an identity provider config (the default one).
      const domain = await api("POST", `/v1/organizations/${full}/domains`, { ...token, body: { domain: `${unique("d").toLowerCase()}.example` } });
      const idp = await api("POST", `/v1/organizations/${full}/saml-sso`, {
        ...token,
        body: { entity_id: "https://idp.example.com/metadata", sso_url: "https://idp.example.com/sso" },
      });
      expect(domain.status, domain.text).toBe(201);
      expect(idp.status, idp.text).toBe(201);
      // Issue 12's: a webhook endpoint with a delivery (the role change below emits one); every
      // change above wrote audit entries.
      const hook = await api("POST", `/v1/organizations/${full}/webhooks`, {
        ...token,
        body: { url: "https://hooks.example.com/in", events: ["member.role_changed", "member.added"] },
      });
      expect(hook.status, hook.text).toBe(201);
      expect((await api("PATCH", `/v1/organizations/${full}/members/${member.id}`, { ...token, body: { role: role.body.name } })).status).toBe(200);
      const delivery = await env.DB.prepare("select id from webhook_deliveries where webhook_id = ?").bind(hook.body.id).first<{ id: string }>();
      expect(delivery).toBeTruthy();
      const licenseId = newId("license");
      const now = Date.now();
      await env.DB.batch([
        env.DB.prepare(
          "insert into licenses (id, plan, seats, features, expires_at, key_hash, key_prefix, organization_id, revoked_at, created_by, created_at, updated_at) values (?, 'team', 50, '[]', null, ?, 'lk_x', ?, null, null, ?, ?)",
        ).bind(licenseId, unique("hash"), full, now, now),
        env.DB.prepare(
          "insert into deployments (id, license_id, name, region, version, last_seen_at, created_at, updated_at) values (?, ?, 'eu-1', 'eu', '1.0', ?, ?, ?)",
        ).bind(newId("deployment"), licenseId, now, now, now),
      ]);
      const spare = newId("license");
      await env.DB.prepare(
        "insert into licenses (id, plan, seats, features, expires_at, key_hash, key_prefix, organization_id, revoked_at, created_by, created_at, updated_at) values (?, 'team', 5, '[]', null, ?, 'lk_y', null, null, null, ?, ?)",
      )
        .bind(spare, unique("hash"), now, now)
        .run();
      Object.assign(ids, {
        user_id: member.id,
        role_id: role.body.id,
        service_account_id: sa.body.service_account.id,
        invitation_id: inv.body.id,
        project_id: project.body.id,
        tag_id: tagList.body.items[0].id,
        name: "alpha",
        proxy_id: proxy.body.id,
        integration_id: integration.body.id,
        domain_id: domain.body.id,
        idp_id: idp.body.id,
        webhook_id: hook.body.id,
        delivery_id: delivery!.id,
      });
      Object.assign(bodies, {
        "POST /v1/organizations/{org_id}/members": { email: member.email, role: "user" },
        "PATCH /v1/organizations/{org_id}/members/{user_id}": { role: "user" },
        "POST /v1/organizations/{org_id}/invitations": { email: invEmail, combine_pending: true, send_email: false },
        "POST /v1/organizations/{org_id}/invitations/batch": {
          invitations: [{ email: invEmail, combine_pending: true, send_email: false }, { email: member.email }],
        },
        "POST /v1/organizations/{org_id}/roles": { name: "another", permissions: ["organization:read"] },
        "PATCH /v1/organizations/{org_id}/roles/{role_id}": { description: "x" },
        "POST /v1/organizations/{org_id}/service-accounts": { name: "bot", role: role.body.name },
        "PATCH /v1/organizations/{org_id}": { name: "Renamed" },
        "PUT /v1/organizations/{org_id}/settings": { settings: { b: 2 } },
        "PATCH /v1/organizations/{org_id}/preferences": { sso_admin_bypass: false },
        "POST /v1/organizations/{org_id}/projects": { name: "Another", private: true, tags: ["alpha", "gamma"] },
        "PATCH /v1/organizations/{org_id}/projects/{project_id}": { name: "Renamed", tags: ["beta"] },
        "POST /v1/organizations/{org_id}/tags/batch-delete": { ids: [ids.tag_id], names: ["beta"] },
        "POST /v1/organizations/{org_id}/proxies": { name: "p2", url: "socks5://proxy.example.com:1080" },
        "PATCH /v1/organizations/{org_id}/proxies/{proxy_id}": { name: "renamed" },
        "PUT /v1/organizations/{org_id}/proxies/default": { proxy_id: ids.proxy_id },
        "POST /v1/organizations/{org_id}/integrations": { kind: "slack", display_name: "Slack", config: {} },
        "PATCH /v1/organizations/{org_id}/integrations/{integration_id}/environment-mapping": { mapping: { staging: ids.project_id } },
        "PUT /v1/organizations/{org_id}/license": { license_id: spare },
        "POST /v1/organizations/{org_id}/domains": { domain: "another.example" },
        "PATCH /v1/organizations/{org_id}/domains/{domain_id}": { jit_provisioning_enabled: false, identity_provider_config_id: ids.idp_id },
        "POST /v1/organizations/{org_id}/identity-provider-configs": { name: "Okta", saml_entity_id: "https://okta.example.com" },
        "PATCH /v1/organizations/{org_id}/identity-provider-configs/{idp_id}": { name: "Renamed" },
        "POST /v1/organizations/{org_id}/saml-sso": { entity_id: "https://idp.example.com/metadata" },
        "POST /v1/organizations/{org_id}/webhooks": { url: "https://hooks.example.com/two", events: ["member.added"] },
        "PATCH /v1/organizations/{org_id}/webhooks/{webhook_id}": { description: "x" },
        "POST /v1/organizations/{org_id}/webhooks/{webhook_id}/rotate-secret": { grace_seconds: 60 },
      });
    });

    const observed = (res: ApiResponse) => ({ status: res.status, code: res.body?.code, ...res.cost });
    const query = (o: Operation) =>
      o.method === "GET" && o.path.endsWith("{org_id}/members")
        ? `?page_size=1000&filter=${encodeURIComponent('search:"c"')}`
        : o.method === "GET" && o.path.endsWith("/tag-info")
          ? "?page_size=1000&include_counts=true"
          : o.method === "GET" && !o.path.endsWith("}")
            ? "?page_size=1000"
            : "";
    const pathIn = (o: Operation, orgId: string) =>
      o.path.replace(/\{([a-z_]+)\}/g, (_, name: string) => (name === "org_id" ? orgId : (ids[name] ?? "x"))) + query(o);
    const bogus = (prefix: string) =>
      `${prefix}_${unique("b")
        .replace(/[^A-Za-z0-9]/g, "x")
        .padEnd(43, "x")
        .slice(0, 43)}`;

    it.each(orgOps.map((o) => [key(o), o] as const))("%s: a bogus PAT, a bogus key and an outsider see no difference", async (_, o) => {
      const callers = { pat: bogus("pat"), key: bogus("sak"), outsider: outsider.accessToken };
      for (const [who, token] of Object.entries(callers)) {
        const body = o.op.requestBody ? (bodies[key(o)] ?? {}) : undefined;
        const a = await api(o.method, pathIn(o, empty), { token, body });
        const b = await api(o.method, pathIn(o, full), { token, body });
        expect([401, 403, 404], `${who}: ${a.text}`).toContain(a.status);
        expect(observed(b), who).toEqual(observed(a));
        expect(b.body.detail, who).toBe(a.body.detail);
      }
    });
  });
});
