import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { problemResponse, toApiError } from "../../src/lib/errors";
import { createRouter, defineRoute, jsonResponse, z } from "../../src/lib/openapi";
import { requestContext } from "../../src/middleware/request-context";
import { del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";

/**
 * Routes declared `readInHandler` authorize inside the handler's read (one D1 round trip). These
 * tests hold them to the same answers as every other route when the handler stops early.
 */
describe("security", () => {
  const badFilter = "?filter=" + encodeURIComponent("nonsense ~ 1");

  async function setup() {
    const [admin, outsider] = await Promise.all([createUser(), createUser()]);
    const org = await createOrg(admin);
    return { admin, outsider, org };
  }

  it("a member with bad input gets the validation error", async () => {
    const { admin, org } = await setup();
    const res = await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(400);
    expect(res.body.code).toBe("invalid_filter");
  });

  it("a non-member with bad input gets 404, not the validation error", async () => {
    const { outsider, org } = await setup();
    for (const path of [`members${badFilter}`, "members?page_size=0", "members/usr_not-an-id", "invitations?status=bogus", "invitations/inv_bogus"]) {
      const res = await get(`/v1/organizations/${org.id}/${path}`, { token: outsider.accessToken });
      expect(res.status, `${path}: ${res.text}`).toBe(404);
      expect(res.body.detail, path).toMatch(/organization/i);
    }
  });

  it("a deleted PAT with bad input gets 401; a PAT lacking the scope gets 403 insufficient_scope", async () => {
    const { admin, org } = await setup();
    const pat = await createPat(admin, ["organization_member:read"]);
    expect((await del(`/v1/me/tokens/${pat.id}`, { token: admin.accessToken })).status).toBe(204);
    const revoked = await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: pat.token });
    expect(revoked.status, revoked.text).toBe(401);
    const narrow = await createPat(admin, ["organization:read"]);
    const res = await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: narrow.token });
    expect(res.status, res.text).toBe(403);
    expect(res.body.code).toBe("insufficient_scope");
  });

  it("a member lacking the permission gets 403 even when the read found nothing", async () => {
    const { org } = await setup();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const res = await get(`/v1/organizations/${org.id}/invitations/inv_01AAAAAAAAAAAAAAAAAAAAAAAA`, { token: member.accessToken });
    expect(res.status, res.text).toBe(403);
  });

  it("the member list and a member take one D1 round trip with an access token, a PAT or a service account key", async () => {
    const { admin, org } = await setup();
    const pat = await createPat(admin, ["organization_member:read"]);
    for (const token of [admin.accessToken, pat.token]) {
      const list = await get(`/v1/organizations/${org.id}/members`, { token });
      expect(list.status, list.text).toBe(200);
      expect(list.cost.queries).toBe(1);
      const one = await get(`/v1/organizations/${org.id}/members/${admin.id}`, { token });
      expect(one.status, one.text).toBe(200);
      expect(one.cost.queries).toBe(1);
    }
  });

  it("every read route of members, invitations, roles, service accounts and settings takes one D1 round trip", async () => {
    const { admin, outsider, org } = await setup();
    const token = admin.accessToken;
    const role = await post(`/v1/organizations/${org.id}/roles`, { name: unique("r").slice(0, 30), permissions: ["organization:read"] }, { token });
    const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot" }, { token });
    const inv = await post(`/v1/organizations/${org.id}/invitations`, { email: `${unique("i")}@example.com`, send_email: false }, { token });
    for (const r of [role, sa, inv]) expect(r.status, r.text).toBe(201);
    const paths = [
      "members",
      `members/${admin.id}`,
      "invitations",
      `invitations/${inv.body.id}`,
      "roles",
      // Built-ins only: the page needs no read of its own, and is still authorized.
      "roles?page_size=2",
      "roles/admin",
      `roles/${role.body.id}`,
      "service-accounts",
      `service-accounts/${sa.body.service_account.id}`,
      "settings",
    ];
    for (const path of paths) {
      const res = await get(`/v1/organizations/${org.id}/${path}`, { token });
      expect(res.status, `${path}: ${res.text}`).toBe(200);
      expect(res.cost.queries, path).toBe(1);
      const foreign = await get(`/v1/organizations/${org.id}/${path}`, { token: outsider.accessToken });
      expect(foreign.status, `${path} as an outsider: ${foreign.text}`).toBe(404);
      // Refused in the same round trip: the refusal is not authorized a second time.
      expect(foreign.cost.queries, `${path} as an outsider`).toBe(1);
      expect(foreign.cost.kvReads, `${path} as an outsider`).toBe(1);
    }
  });

  it("a handler that touches D1 before authorizedRead is refused before the statement runs", async () => {
    const app = createRouter();
    app.use("*", requestContext);
    app.onError((err, c) => problemResponse(c, toApiError(err)));
    let reached = false;
    app.openapi(
      defineRoute({ kind: "org", permission: "members:read", readInHandler: true }, {
        method: "post",
        path: "/v1/organizations/{org_id}/eager",
        request: { params: z.object({ org_id: z.string() }) },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "A route that writes first.") },
      }),
      async (c) => {
        await c.var.db.run(sql`update organizations set name = 'taken over' where id = ${c.req.param("org_id")}`);
        reached = true;
        return c.json({ ok: true }, 200);
      },
    );
    const { org, outsider } = await setup();
    const ctx = createExecutionContext();
    const res = await app.request(`/v1/organizations/${org.id}/eager`, { method: "POST", headers: { Authorization: `Bearer ${outsider.accessToken}` } }, env, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(404);
    expect(reached).toBe(false);
    const row = await env.DB.prepare("select name from organizations where id = ?").bind(org.id).first<{ name: string }>();
    expect(row!.name).not.toBe("taken over");
  });

  it("changing, removing and leaving find the member in the authorization batch: two round trips", async () => {
    const { admin, outsider, org } = await setup();
    const [a, b] = await Promise.all([createUser(), createUser()]);
    await addMemberDirect(org.id, a, "user");
    await addMemberDirect(org.id, b, "user");
    const promoted = await patch(`/v1/organizations/${org.id}/members/${a.id}`, { role: "admin" }, { token: admin.accessToken });
    expect(promoted.status, promoted.text).toBe(200);
    expect(promoted.cost.queries).toBe(2);
    expect((await patch(`/v1/organizations/${org.id}/members/${a.id}`, { role: "user" }, { token: outsider.accessToken })).status).toBe(404);
    const removed = await del(`/v1/organizations/${org.id}/members/${a.id}`, { token: admin.accessToken });
    expect(removed.status, removed.text).toBe(204);
    expect(removed.cost.queries).toBe(2);
    // Leaving needs no members:write: the self rule still holds inside the handler's batch.
    const left = await del(`/v1/organizations/${org.id}/members/${b.id}`, { token: b.accessToken });
    expect(left.status, left.text).toBe(204);
    expect(left.cost.queries).toBe(2);
    // A service account removed through the members route: the member row already read is enough.
    const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot" }, { token: admin.accessToken });
    const saRemoved = await del(`/v1/organizations/${org.id}/members/${sa.body.service_account.id}`, { token: admin.accessToken });
    expect(saRemoved.status, saRemoved.text).toBe(204);
    expect(saRemoved.cost.queries).toBe(2);
  });

  it("role PATCH/DELETE and service-account rotate/DELETE find their target in the authorization batch", async () => {
    const { admin, outsider, org } = await setup();
    const token = admin.accessToken;
    const role = await post(`/v1/organizations/${org.id}/roles`, { name: unique("r").slice(0, 30), permissions: ["organization:read"] }, { token });
    const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot" }, { token });
    const roleId = role.body.id;
    const saId = sa.body.service_account.id;
    const calls: [string, () => ReturnType<typeof get>, number][] = [
      ["PATCH role", () => patch(`/v1/organizations/${org.id}/roles/${roleId}`, { description: "changed" }, { token }), 200],
      ["rotate key", () => post(`/v1/organizations/${org.id}/service-accounts/${saId}/rotate-key`, {}, { token }), 200],
      ["DELETE role", () => del(`/v1/organizations/${org.id}/roles/${roleId}`, { token }), 204],
      ["DELETE service account", () => del(`/v1/organizations/${org.id}/service-accounts/${saId}`, { token }), 204],
    ];
    for (const [what, call, status] of calls) {
      const res = await call();
      expect(res.status, `${what}: ${res.text}`).toBe(status);
      expect(res.cost.queries, what).toBe(2);
    }
    expect((await patch(`/v1/organizations/${org.id}/roles/${roleId}`, { description: "x" }, { token: outsider.accessToken })).status).toBe(404);
    expect((await post(`/v1/organizations/${org.id}/service-accounts/${saId}/rotate-key`, {}, { token: outsider.accessToken })).status).toBe(404);
  });

  it("a handler that answers without authorizedRead fails loudly instead of serving", async () => {
    const app = createRouter();
    app.use("*", requestContext);
    app.openapi(
      defineRoute({ kind: "org", permission: "members:read", readInHandler: true }, {
        method: "get",
        path: "/v1/organizations/{org_id}/forgetful",
        request: { params: z.object({ org_id: z.string() }) },
        responses: { 200: jsonResponse(z.object({ secret: z.string() }), "A route that forgets to authorize.") },
      }),
      (c) => c.json({ secret: "tenant data" }, 200),
    );
    const { admin, org } = await setup();
    const ctx = createExecutionContext();
    const res = await app.request(`/v1/organizations/${org.id}/forgetful`, { headers: { Authorization: `Bearer ${admin.accessToken}` } }, env, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("tenant data");
  });
});
