import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { get, post } from "../helpers/client";
import { createOrg, createUser, uniqueEmail } from "../helpers/factories";
import { operations } from "../helpers/openapi";
import { errorPaths, expectProblem } from "../helpers/problems";
import { scim, scimSetup } from "../helpers/scim";
import { invitationsPath, invite } from "./invitations-helpers";

const LIST_PARAMS = ["page_size", "page_token", "filter", "order_by"];

/** GET operations that answer `{items, next_page_token}`. */
async function listOperations() {
  const doc = (await get("/openapi.json")).body;
  const schemas = doc.components.schemas;
  const resolve = (s: any): any => (s?.$ref ? schemas[s.$ref.split("/").pop()] : s);
  return (await operations()).filter((o) => {
    const schema = resolve(o.op.responses?.["200"]?.content?.["application/json"]?.schema);
    return o.method === "GET" && schema?.properties?.items && schema?.properties?.next_page_token;
  });
}

describe("happy", () => {
  it("every list documents page_size, page_token, filter and order_by, and page_size's minimum", async () => {
    const lists = await listOperations();
    expect(lists.length).toBeGreaterThanOrEqual(20);
    for (const o of lists) {
      const query = (o.op.parameters as any[]).filter((p) => p.in === "query");
      expect(
        query.map((p) => p.name),
        `${o.method} ${o.path}`,
      ).toEqual(expect.arrayContaining(LIST_PARAMS));
      const pageSize = query.find((p) => p.name === "page_size");
      expect(pageSize.schema).toMatchObject({ type: "integer", minimum: 1 });
      for (const name of ["filter", "order_by"]) expect(query.find((p) => p.name === name).description, `${o.path} ${name}`).toBeTruthy();
    }
  });

  it("a list with one order accepts that order by name and refuses any other", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const path = `/v1/organizations/${org.id}/domains`;
    expect((await get(`${path}?order_by=created_at`, { token: user.accessToken })).status).toBe(200);
    expect((await get(`${path}?order_by=${encodeURIComponent(" created_at asc ")}`, { token: user.accessToken })).status).toBe(200);
    expect((await get(`${path}?filter=`, { token: user.accessToken })).status).toBe(200);
    expectProblem(await get(`${path}?order_by=${encodeURIComponent("created_at desc")}`, { token: user.accessToken }), 400, "invalid_order_by");
    expectProblem(await get(`${path}?order_by=domain`, { token: user.accessToken }), 400, "invalid_order_by");
    const noField = expectProblem(await get(`${path}?filter=${encodeURIComponent('domain = "a.com"')}`, { token: user.accessToken }), 400, "invalid_filter");
    expect(noField.detail).toContain("no filterable fields");
  });

  it("invitations filter by status, email (any case) and role, in either creation order", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const token = admin.accessToken;
    const ada = uniqueEmail("ada");
    const first = await invite(token, org.id, { email: ada, role: "admin" });
    const second = await invite(token, org.id, { role: "user" });
    const third = await invite(token, org.id, { role: "user" });
    await post(`${invitationsPath(org.id)}/${second.id}/cancel`, {}, { token });
    const list = async (q: string) => {
      const res = await get(`${invitationsPath(org.id)}?${q}`, { token });
      expect(res.status, res.text).toBe(200);
      return (res.body.items as { id: string }[]).map((i) => i.id);
    };
    const f = (expr: string) => `filter=${encodeURIComponent(expr)}`;
    expect(await list(f(`email = "${ada.toUpperCase()}"`))).toEqual([first.id]);
    expect(await list(f('role = "user"'))).toEqual([third.id, second.id]);
    expect(await list(f('role != "user"'))).toEqual([first.id]);
    expect(await list(f('status = "canceled"'))).toEqual([second.id]);
    expect(await list(`status=pending&${f('role = "user"')}`)).toEqual([third.id]);
    expect(await list(`status=pending&${f('status = "canceled"')}`)).toEqual([]);
    expect(await list("order_by=created_at")).toEqual([first.id, second.id, third.id]);
    expect(await list("order_by=created_at%20desc")).toEqual([third.id, second.id, first.id]);
  });

  it("invitation pages follow the order both ways, and a token is bound to its filter and order", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const token = admin.accessToken;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await invite(token, org.id)).id);
    for (const [order, expected] of [
      ["created_at", ids],
      ["created_at desc", [...ids].reverse()],
    ] as const) {
      const seen: string[] = [];
      let pageToken = "";
      do {
        const res = await get(`${invitationsPath(org.id)}?page_size=2&order_by=${encodeURIComponent(order)}&page_token=${pageToken}`, { token });
        expect(res.status, res.text).toBe(200);
        seen.push(...res.body.items.map((i: { id: string }) => i.id));
        pageToken = res.body.next_page_token;
        if (pageToken) {
          const other = order === "created_at" ? "created_at desc" : "created_at";
          expectProblem(
            await get(`${invitationsPath(org.id)}?page_size=2&order_by=${encodeURIComponent(other)}&page_token=${pageToken}`, { token }),
            400,
            "invalid_page_token",
          );
          expectProblem(
            await get(
              `${invitationsPath(org.id)}?page_size=2&order_by=${encodeURIComponent(order)}&filter=${encodeURIComponent('role = "user"')}&page_token=${pageToken}`,
              { token },
            ),
            400,
            "invalid_page_token",
          );
        }
      } while (pageToken);
      expect(seen).toEqual(expected);
    }
  });

  it("an invitation page reads about page_size rows", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const token = admin.accessToken;
    for (let i = 0; i < 8; i++) await invite(token, org.id, { role: i % 2 ? "admin" : "user" });
    const res = await get(`${invitationsPath(org.id)}?page_size=3&filter=${encodeURIComponent('status = "pending" AND role = "admin"')}`, { token });
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(3);
    // Authorization and the page in one round trip.
    expect(res.cost.queries).toBe(1);
    expect(res.cost.rowsRead).toBeLessThanOrEqual(12);
  });

  it("an email or role filter reads about page_size rows whatever else the organization holds", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const token = admin.accessToken;
    // 2,000 accepted invitations written directly (one statement), then a few to find.
    await env.DB.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < 2000)
       insert into invitations (id, organization_id, email, role, status, message, project_ids, invited_by_id, invited_by_name, token_hash, email_status, outbox_id, expires_at, created_at, updated_at, accepted_at, accepted_by)
       select 'inv_' || printf('%026d', i), ?, 'bulk' || i || '@example.com', 'user', 'accepted', null, '[]', ?, 'Bulk', ? || i, null, null, 0, i, i, i, null from n`,
    )
      .bind(org.id, admin.id, `hash-${org.id}-`)
      .run();
    const target = uniqueEmail();
    await invite(token, org.id, { email: target });
    await invite(token, org.id, { role: "admin" });
    for (const filter of [`email = "${target}"`, 'role = "admin"']) {
      const res = await get(`${invitationsPath(org.id)}?page_size=5&filter=${encodeURIComponent(filter)}`, { token });
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toHaveLength(1);
      expect(res.cost.queries).toBe(1);
      expect(res.cost.rowsRead, filter).toBeLessThanOrEqual(15);
    }
  });
});

describe("errors", () => {
  it("an unknown query parameter is refused by name, on lists and other routes alike", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const token = user.accessToken;
    const onList = expectProblem(await get(`${invitationsPath(org.id)}?fliter=x&page_size=1`, { token }), 400, "validation_failed");
    expect(onList.errors).toEqual([{ path: "fliter", message: "unknown query parameter" }]);
    const onGet = expectProblem(await get(`/v1/organizations/${org.id}?expand=owner&verbose`, { token }), 400, "validation_failed");
    expect(errorPaths({ body: onGet } as never).sort()).toEqual(["expand", "verbose"]);
    expectProblem(await get("/v1/sso/discover?email=a@example.com&debug=1"), 400, "validation_failed");
    // Listed with the other bad fields, not instead of them.
    const both = await get(`${invitationsPath(org.id)}?page_size=0&colour=red`, { token });
    expect(errorPaths(both).sort()).toEqual(["colour", "page_size"]);
  });

  it("public routes keep their own parameters", async () => {
    expect((await get("/v1/sso/discover?email=someone@example.com")).status).toBe(200);
    expect((await get("/v1/dev/emails?to=someone@example.com&page_size=1")).status).toBe(200);
  });

  it("an empty page_size is as wrong as a non-integer one", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    for (const q of ["page_size=", "page_size=abc", "page_size=0", "page_size=1.5"]) {
      const res = expectProblem(await get(`/v1/organizations/${org.id}/members?${q}`, { token: user.accessToken }), 400, "validation_failed");
      expect(res.errors[0].path, q).toBe("page_size");
    }
    expect((await get(`/v1/organizations/${org.id}/members?page_size=5000&page_token=`, { token: user.accessToken })).status).toBe(200);
  });

  it("invitation filters refuse what no index serves, and say what is allowed", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const bad = async (expr: string) =>
      expectProblem(await get(`${invitationsPath(org.id)}?filter=${encodeURIComponent(expr)}`, { token: user.accessToken }), 400, "invalid_filter");
    expect((await bad('message = "hi"')).detail).toContain("status, email, role");
    await bad('email:"ad"');
    await bad('status = "gone"');
    await bad('status != "pending"');
    expectProblem(await get(`${invitationsPath(org.id)}?order_by=expires_at`, { token: user.accessToken }), 400, "invalid_order_by");
  });
});

describe("security", () => {
  it("SCIM keeps RFC 7644's leniency for parameters a resource does not use", async () => {
    const s = await scimSetup();
    const res = await scim("GET", "/Users?count=1&excludedAttributes=groups&unknownVendorParam=1", s.token);
    expect(res.status, res.text).toBe(200);
  });
});
