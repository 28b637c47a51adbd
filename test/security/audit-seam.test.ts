import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { AUDIT_ACTIONS, eventReadPermissions, type EventType } from "../../src/audit/catalogue";
import readme from "../../README.md?raw";
import catalogueDoc from "../../docs/audit-and-webhooks.md?raw";
import { commit, noChange } from "../../src/audit/record";
import { organizations } from "../../src/db/schema";
import { problemResponse, toApiError } from "../../src/lib/errors";
import { jsonResponse, z } from "../../src/lib/openapi";
import { createRouter, orgRoute } from "../../src/middleware/route";
import { d1Session, requestContext } from "../../src/middleware/request-context";
import { operations } from "../helpers/openapi";
import { createOrg, createUser } from "../helpers/factories";

/**
 * The audit seam (src/audit/record.ts and the check in src/middleware/route.ts): every mutating
 * organization and SCIM route declares what it records, a declared route that answers 2xx
 * without an entry fails loudly outside production, and the entry lives or dies with the change.
 */

const Params = z.object({ org_id: z.string() });

function testApp(build: (router: ReturnType<typeof createRouter>) => void) {
  const app = createRouter();
  app.use("*", requestContext);
  app.use("*", d1Session);
  app.onError((err, c) => problemResponse(c, toApiError(err)));
  build(app);
  return async (path: string, token: string, method = "POST") => {
    const ctx = createExecutionContext();
    const res = await app.request(path, { method, headers: { Authorization: `Bearer ${token}` } }, env, ctx);
    await waitOnExecutionContext(ctx);
    return { status: res.status, text: await res.text() };
  };
}

const entriesOf = (orgId: string) =>
  env.DB.prepare(
    "select action, target_type, target_id, actor_type, actor_id, credential, changes from audit_logs where organization_id = ? order by created_at, id",
  )
    .bind(orgId)
    .all()
    .then((r) => r.results);

describe("every mutating route records", () => {
  it("declares its audit actions in OpenAPI (x-audit-actions), each from the catalogue", async () => {
    const missing: string[] = [];
    for (const { method, path, op, auth } of await operations()) {
      if (method === "GET") continue;
      const actions = op["x-audit-actions"] as string[] | undefined;
      for (const a of actions ?? []) expect(Object.keys(AUDIT_ACTIONS), `${method} ${path}`).toContain(a);
      if ((auth.kind === "org" || auth.kind === "scim") && !actions?.length) missing.push(`${method} ${path}`);
    }
    expect(missing).toEqual([]);
  });

  it("the docs' catalogue lists every action as the code has it, and the README every event", () => {
    const events = Object.entries(AUDIT_ACTIONS)
      .filter(([, v]) => v.event)
      .map(([k]) => k);
    const listed = /Events: (.*?)\. Each needs/s.exec(readme)?.[1] ?? "";
    expect([...listed.matchAll(/`([a-z_.]+)`/g)].map((m) => m[1])).toEqual(events);
    const rows = [...catalogueDoc.matchAll(/^\| `([a-z_.]+)` \| (yes|—) \| ([^|]*) \|/gm)].map((m) => [m[1], m[2], m[3]!.trim()]);
    const expected = Object.entries(AUDIT_ACTIONS).map(([k, v]) => [
      k,
      v.event ? "yes" : "—",
      v.event
        ? eventReadPermissions(k as EventType)
            .map((p) => `\`${p}\``)
            .join(", ")
        : "",
    ]);
    expect(rows).toEqual(expected);
  });

  it("a declared route that answers 2xx without writing an entry is a 500 outside production", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const call = testApp((r) => {
      orgRoute(r, {
        permission: "organization:write",
        method: "post",
        path: "/v1/organizations/{org_id}/forgetful",
        audit: ["organization.updated"],
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Changed.") },
        handle: async ({ ctx }, c) => {
          await ctx.db.update(organizations).set({ description: "changed without an entry" }).where(eq(organizations.id, ctx.org.id));
          return c.json({ ok: true }, 200);
        },
      });
      orgRoute(r, {
        permission: "organization:write",
        method: "post",
        path: "/v1/organizations/{org_id}/idle",
        audit: ["organization.updated"],
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Nothing to change.") },
        handle: ({ ctx }, c) => {
          noChange(ctx);
          return c.json({ ok: true }, 200);
        },
      });
    });
    expect((await call(`/v1/organizations/${org.id}/forgetful`, admin.accessToken)).status).toBe(500);
    expect((await call(`/v1/organizations/${org.id}/idle`, admin.accessToken)).status).toBe(200);
  });

  it("a mutating organization route without an audit declaration cannot be registered", () => {
    expect(() =>
      orgRoute(createRouter(), {
        permission: "organization:write",
        method: "patch",
        path: "/v1/organizations/{org_id}/undeclared",
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Changed.") },
        handle: (_a, c) => c.json({ ok: true }, 200),
      }),
    ).toThrow(/must declare its audit actions/);
  });
});

describe("the entry lives or dies with the change", () => {
  it("is written in the change's batch, with the actor, credential, request and changed field names", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    let requestId = "";
    const call = testApp((r) =>
      orgRoute(r, {
        permission: "organization:write",
        method: "post",
        path: "/v1/organizations/{org_id}/rename",
        audit: ["organization.updated"],
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Renamed.") },
        handle: async ({ ctx }, c) => {
          requestId = ctx.request!.id;
          await commit(ctx, [ctx.db.update(organizations).set({ description: "renamed" }).where(eq(organizations.id, ctx.org.id))], {
            entries: [{ action: "organization.updated", target: { type: "organization", id: ctx.org.id }, changes: ["description"] }],
          });
          return c.json({ ok: true }, 200);
        },
      }),
    );
    expect((await call(`/v1/organizations/${org.id}/rename`, admin.accessToken)).status).toBe(200);
    const rows = await entriesOf(org.id);
    expect(rows.at(-1)).toEqual({
      action: "organization.updated",
      target_type: "organization",
      target_id: org.id,
      actor_type: "user",
      actor_id: admin.id,
      credential: "session",
      changes: '["description"]',
    });
    const [row] = (await env.DB.prepare("select request_id from audit_logs where organization_id = ? and action = 'organization.updated'").bind(org.id).all())
      .results;
    expect(row!.request_id).toBe(requestId);
  });

  it("a change that fails leaves no entry, and a conditional change that changed nothing leaves none either", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const other = await createOrg(admin);
    const before = (await entriesOf(org.id)).length;
    const call = testApp((r) => {
      orgRoute(r, {
        permission: "organization:write",
        method: "post",
        path: "/v1/organizations/{org_id}/clash",
        audit: ["organization.updated"],
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "Never.") },
        handle: async ({ ctx }, c) => {
          // The second statement violates the slug's uniqueness: the whole batch, entry included, is rolled back.
          await commit(
            ctx,
            [
              ctx.db.update(organizations).set({ description: "half a change" }).where(eq(organizations.id, ctx.org.id)),
              ctx.db.update(organizations).set({ slug: other.slug }).where(eq(organizations.id, ctx.org.id)),
            ],
            { entries: [{ action: "organization.updated", target: { type: "organization", id: ctx.org.id }, changes: ["description", "slug"] }] },
          );
          return c.json({ ok: true }, 200);
        },
      });
      orgRoute(r, {
        permission: "organization:write",
        method: "post",
        path: "/v1/organizations/{org_id}/nothing",
        audit: ["organization.updated"],
        request: { params: Params },
        responses: { 200: jsonResponse(z.object({ ok: z.boolean() }), "No-op.") },
        handle: async ({ ctx }, c) => {
          const [res] = await commit(ctx, [ctx.db.update(organizations).set({ description: "x" }).where(sql`0 = 1`)], {
            onlyIf: sql`changes() = 1`,
            entries: [{ action: "organization.updated", target: { type: "organization", id: ctx.org.id } }],
          });
          expect((res as D1Result).meta.changes).toBe(0);
          noChange(ctx);
          return c.json({ ok: true }, 200);
        },
      });
    });
    expect((await call(`/v1/organizations/${org.id}/clash`, admin.accessToken)).status).toBe(500);
    expect((await call(`/v1/organizations/${org.id}/nothing`, admin.accessToken)).status).toBe(200);
    expect((await entriesOf(org.id)).length).toBe(before);
    const [row] = (await env.DB.prepare("select description from organizations where id = ?").bind(org.id).all()).results;
    expect(row!.description).not.toBe("half a change");
  });
});
