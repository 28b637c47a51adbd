import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { describe, expect, it } from "vitest";
import { members, organizations } from "../../src/db/schema";
import { problemResponse, toApiError } from "../../src/lib/errors";
import { jsonResponse, z } from "../../src/lib/openapi";
import type { LoadArgs } from "../../src/middleware/authorize";
import { createRouter, orgRoute } from "../../src/middleware/route";
import { d1Session, requestContext } from "../../src/middleware/request-context";
import { del, get, parseServerTiming, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";

/**
 * The authorization seam (src/middleware/route.ts, authorize.ts, db/authz.ts): a route declares
 * its permission and what it reads; the seam settles both in one D1 batch and calls the handler
 * only for an authorized caller. These tests hold every route to it, and show that a route that
 * tries to read around the guard, or to write from its load, fails loudly instead of serving.
 */

const Params = z.object({ org_id: z.string() });

/** A router of test routes mounted the way the app mounts its own. */
function testApp(build: (router: ReturnType<typeof createRouter>) => void) {
  const app = createRouter();
  app.use("*", requestContext);
  app.use("*", d1Session);
  app.onError((err, c) => problemResponse(c, toApiError(err)));
  build(app);
  return async (path: string, token: string, method = "GET") => {
    const ctx = createExecutionContext();
    const res = await app.request(path, { method, headers: { Authorization: `Bearer ${token}` } }, env, ctx);
    await waitOnExecutionContext(ctx);
    return { status: res.status, text: await res.text(), cost: parseServerTiming(res.headers.get("server-timing")) };
  };
}

async function setup() {
  const [admin, outsider, member] = await Promise.all([createUser(), createUser(), createUser()]);
  const org = await createOrg(admin);
  await addMemberDirect(org.id, member, "user");
  return { admin, outsider, member, org };
}

describe("security", () => {
  it("the handler runs only for a caller allowed here; the load reads nothing for anyone else", async () => {
    let reached = 0;
    const call = testApp((r) =>
      orgRoute(r, {
        permission: "members:write",
        method: "get",
        path: "/v1/organizations/{org_id}/probe",
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ n: z.number() }), "Members read.") },
        load: ({ db, org }) => db.select({ id: members.memberId }).from(members).where(org.inOrg(members.organizationId)),
        handle: ({ loaded }, c) => {
          reached += 1;
          return c.json({ n: loaded.length }, 200);
        },
      }),
    );
    const { admin, outsider, member, org } = await setup();
    for (let i = 0; i < 6; i++) await addMemberDirect(org.id, await createUser());
    const ok = await call(`/v1/organizations/${org.id}/probe`, admin.accessToken);
    expect(ok.status, ok.text).toBe(200);
    expect(JSON.parse(ok.text).n).toBe(8);
    expect(ok.cost.queries).toBe(1);
    for (const [who, token, status] of [
      ["outsider", outsider.accessToken, 404],
      ["member without members:write", member.accessToken, 403],
      ["made-up PAT", `pat_${"x".repeat(43)}`, 401],
    ] as const) {
      const res = await call(`/v1/organizations/${org.id}/probe`, token);
      expect(res.status, `${who}: ${res.text}`).toBe(status);
      // At most the caller's own rows (its membership, its role), never the organization's 8 members.
      expect(res.cost.rowsRead, who).toBeLessThanOrEqual(4);
    }
    expect(reached).toBe(1);
  });

  it("a load that reads around the guard fails loudly before anything is read", async () => {
    let reached = false;
    const call = testApp((r) =>
      orgRoute(r, {
        permission: "members:read",
        method: "get",
        path: "/v1/organizations/{org_id}/unguarded",
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ n: z.number() }), "Members read.") },
        load: ({ db, org }) => db.select({ id: members.memberId }).from(members).where(eq(members.organizationId, org.id)),
        handle: ({ loaded }, c) => {
          reached = true;
          return c.json({ n: loaded.length }, 200);
        },
      }),
    );
    const { admin, outsider, org } = await setup();
    for (const token of [admin.accessToken, outsider.accessToken]) {
      const res = await call(`/v1/organizations/${org.id}/unguarded`, token);
      expect(res.status).toBe(500);
      expect(res.text).not.toContain("usr_");
      expect(res.cost.queries).toBe(0);
    }
    expect(reached).toBe(false);
  });

  it("a load cannot write: an update handed back from a load is refused and never runs", async () => {
    const call = testApp((r) =>
      orgRoute(r, {
        permission: "members:read",
        method: "get",
        path: "/v1/organizations/{org_id}/writer",
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Never.") },
        // The type says no (ReadDb has no update, and an update is not a ReadQuery); this is the run-time check behind it.
        load: ({ org }) => drizzle(env.DB).update(organizations).set({ name: "taken over" }).where(eq(organizations.id, org.id)) as never,
        handle: (_, c) => c.json({ ok: true }, 200),
      }),
    );
    const { admin, org } = await setup();
    const res = await call(`/v1/organizations/${org.id}/writer`, admin.accessToken);
    expect(res.status).toBe(500);
    const row = await env.DB.prepare("select name from organizations where id = ?").bind(org.id).first<{ name: string }>();
    expect(row!.name).not.toBe("taken over");
  });

  it("an async load must hand back a record: one statement from an async function would run on its own", async () => {
    const call = testApp((r) =>
      orgRoute(r, {
        permission: "members:read",
        method: "get",
        path: "/v1/organizations/{org_id}/async",
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Never.") },
        load: (async ({ db, org }: LoadArgs<unknown>) => db.select().from(members).where(org.inOrg(members.organizationId))) as never,
        handle: (_, c) => c.json({ ok: true }, 200),
      }),
    );
    const { admin, org } = await setup();
    expect((await call(`/v1/organizations/${org.id}/async`, admin.accessToken)).status).toBe(500);
  });

  describe("input is judged after authorization", () => {
    const badFilter = `?filter=${encodeURIComponent("nonsense ~ 1")}`;

    it("a member with bad input gets the validation error", async () => {
      const { admin, org } = await setup();
      const res = await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe("invalid_filter");
    });

    it("a non-member with bad input gets 404, not the validation error", async () => {
      const { outsider, org } = await setup();
      for (const path of [
        `members${badFilter}`,
        "members?page_size=0",
        "members/usr_not-an-id",
        "invitations?status=bogus",
        "invitations/inv_bogus",
        "members?page_token=forged",
      ]) {
        const res = await get(`/v1/organizations/${org.id}/${path}`, { token: outsider.accessToken });
        expect(res.status, `${path}: ${res.text}`).toBe(404);
        expect(res.body.detail, path).toMatch(/organization/i);
      }
      const body = await post(`/v1/organizations/${org.id}/roles`, { name: "!" }, { token: outsider.accessToken });
      expect(body.status, body.text).toBe(404);
    });

    it("a deleted PAT with bad input gets 401; a PAT lacking the scope gets 403 insufficient_scope", async () => {
      const { admin, org } = await setup();
      const pat = await createPat(admin, ["organization_member:read"]);
      expect((await del(`/v1/me/tokens/${pat.id}`, { token: admin.accessToken })).status).toBe(204);
      expect((await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: pat.token })).status).toBe(401);
      const narrow = await createPat(admin, ["organization:read"]);
      const res = await get(`/v1/organizations/${org.id}/members${badFilter}`, { token: narrow.token });
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe("insufficient_scope");
    });

    it("a member lacking the permission gets 403 even when the read found nothing", async () => {
      const { member, org } = await setup();
      const res = await get(`/v1/organizations/${org.id}/invitations/inv_01AAAAAAAAAAAAAAAAAAAAAAAA`, { token: member.accessToken });
      expect(res.status, res.text).toBe(403);
    });
  });

  describe("cost", () => {
    it("every read route of the organization takes one D1 round trip; a refusal takes the same one", async () => {
      const { admin, outsider, org } = await setup();
      const token = admin.accessToken;
      const role = await post(`/v1/organizations/${org.id}/roles`, { name: unique("r").slice(0, 30), permissions: ["organization:read"] }, { token });
      const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot" }, { token });
      const inv = await post(`/v1/organizations/${org.id}/invitations`, { email: `${unique("i")}@example.com`, send_email: false }, { token });
      for (const r of [role, sa, inv]) expect(r.status, r.text).toBe(201);
      const paths = [
        "",
        "preferences",
        "settings",
        "members",
        `members/${admin.id}`,
        "invitations",
        "invitations?status=expired",
        `invitations/${inv.body.id}`,
        "roles",
        // Built-ins only: the page needs no read of its own, and is still authorized.
        "roles?page_size=2",
        "roles/admin",
        `roles/${role.body.id}`,
        "service-accounts",
        `service-accounts/${sa.body.service_account.id}`,
      ];
      for (const path of paths) {
        const url = `/v1/organizations/${org.id}${path ? `/${path}` : ""}`;
        const res = await get(url, { token });
        expect(res.status, `${path}: ${res.text}`).toBe(200);
        expect(res.cost.queries, path).toBe(1);
        expect(res.cost.kvReads, path).toBe(1);
        const foreign = await get(url, { token: outsider.accessToken });
        expect(foreign.status, `${path} as an outsider: ${foreign.text}`).toBe(404);
        expect(foreign.cost.queries, `${path} as an outsider`).toBe(1);
        expect(foreign.cost.kvReads, `${path} as an outsider`).toBe(1);
        expect(foreign.cost.rowsRead, `${path} as an outsider`).toBe(0);
      }
    });

    it("a write that first finds its target finds it in the authorization batch: two round trips", async () => {
      const { admin, org } = await setup();
      const token = admin.accessToken;
      const [a, b] = await Promise.all([createUser(), createUser()]);
      await addMemberDirect(org.id, a, "user");
      await addMemberDirect(org.id, b, "user");
      const role = await post(`/v1/organizations/${org.id}/roles`, { name: unique("r").slice(0, 30), permissions: ["organization:read"] }, { token });
      const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot" }, { token });
      const sa2 = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot2" }, { token });
      const inv = await post(`/v1/organizations/${org.id}/invitations`, { email: `${unique("i")}@example.com`, send_email: false }, { token });
      const inv2 = await post(`/v1/organizations/${org.id}/invitations`, { email: `${unique("i")}@example.com`, send_email: false }, { token });
      const calls: [string, () => ReturnType<typeof get>, number][] = [
        ["promote", () => patch(`/v1/organizations/${org.id}/members/${a.id}`, { role: "admin" }, { token }), 200],
        ["remove", () => del(`/v1/organizations/${org.id}/members/${a.id}`, { token }), 204],
        ["leave", () => del(`/v1/organizations/${org.id}/members/${b.id}`, { token: b.accessToken }), 204],
        ["remove a service account through members", () => del(`/v1/organizations/${org.id}/members/${sa2.body.service_account.id}`, { token }), 204],
        ["PATCH role", () => patch(`/v1/organizations/${org.id}/roles/${role.body.id}`, { description: "changed" }, { token }), 200],
        ["rotate key", () => post(`/v1/organizations/${org.id}/service-accounts/${sa.body.service_account.id}/rotate-key`, {}, { token }), 200],
        ["cancel", () => post(`/v1/organizations/${org.id}/invitations/${inv.body.id}/cancel`, undefined, { token }), 200],
        ["resend", () => post(`/v1/organizations/${org.id}/invitations/${inv2.body.id}/resend`, { send_email: false }, { token }), 200],
        ["DELETE role", () => del(`/v1/organizations/${org.id}/roles/${role.body.id}`, { token }), 204],
        ["DELETE service account", () => del(`/v1/organizations/${org.id}/service-accounts/${sa.body.service_account.id}`, { token }), 204],
        ["add member (with a custom role)", () => post(`/v1/organizations/${org.id}/members`, { email: a.email, role: "user" }, { token }), 409],
      ];
      for (const [what, call, status] of calls) {
        const res = await call();
        expect(res.status, `${what}: ${res.text}`).toBe(status);
        expect(res.cost.queries, what).toBeLessThanOrEqual(2);
      }
    });
  });
});
