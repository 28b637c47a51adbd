import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { del, get, patch, post, put } from "../helpers/client";
import { addMemberDirect, createPat, createUser } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import { ISO, adminAndOrg, createRole, createServiceAccount } from "./members-helpers";
import { accessPath, createProject, grant, projectPath, projectsPath, seedProjects, tagCounts, walk } from "./projects-helpers";

const list = (orgId: string, token: string, query: Record<string, string> = {}) => get(`${projectsPath(orgId)}?${new URLSearchParams(query)}`, { token });

describe("happy", () => {
  it("creates a project: 201 with its tags (created on the way) and its creator", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      projectsPath(org.id),
      { name: "  Checkout  ", description: "The flow\nwith two lines", tags: ["smoke", "Smoke", "e2e"] },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^prj_[0-9A-Z]{26}$/),
      name: "Checkout",
      description: "The flow\nwith two lines",
      private: false,
      tags: ["Smoke", "e2e", "smoke"],
      created_by: admin.id,
      created_at: expect.stringMatching(ISO),
      updated_at: res.body.created_at,
    });
    expect((await get(projectPath(org.id, res.body.id), { token: admin.accessToken })).body).toEqual(res.body);
    expect(await tagCounts(org.id)).toEqual([
      { name: "Smoke", counter: 1, actual: 1 },
      { name: "e2e", counter: 1, actual: 1 },
      { name: "smoke", counter: 1, actual: 1 },
    ]);
  });

  it("defaults: public, no description, no tags; names need not be unique", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await createProject(admin.accessToken, org.id, { name: "Same" });
    const b = await createProject(admin.accessToken, org.id, { name: "Same" });
    expect(a).toMatchObject({ private: false, description: null, tags: [] });
    expect(b.id).not.toBe(a.id);
  });

  it("a user member creates, updates and deletes projects (projects:write)", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    await addMemberDirect(org.id, user, "user");
    const p = await createProject(user.accessToken, org.id, { name: "Mine", tags: ["a"] });
    const up = await patch(projectPath(org.id, p.id), { name: "Mine 2" }, { token: user.accessToken });
    expect(up.status, up.text).toBe(200);
    expect(up.body).toMatchObject({ name: "Mine 2", tags: ["a"], created_by: user.id });
    expect((await del(projectPath(org.id, p.id), { token: user.accessToken })).status).toBe(204);
    expectProblem(await get(projectPath(org.id, p.id), { token: admin.accessToken }), 404, "not_found");
  });

  it("PATCH changes only what it is sent; tags replace the set; description null clears it", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id, { name: "P", description: "keep", tags: ["a", "b"] });
    await new Promise((r) => setTimeout(r, 5));
    const renamed = await patch(projectPath(org.id, p.id), { name: "Q" }, t);
    expect(renamed.body).toMatchObject({ name: "Q", description: "keep", tags: ["a", "b"], private: false, created_at: p.created_at });
    expect(renamed.body.updated_at > p.updated_at).toBe(true);
    const retagged = await patch(projectPath(org.id, p.id), { tags: ["b", "c"], description: null }, t);
    expect(retagged.status, retagged.text).toBe(200);
    expect(retagged.body).toMatchObject({ name: "Q", description: null, tags: ["b", "c"] });
    expect(await tagCounts(org.id)).toEqual([
      { name: "a", counter: 0, actual: 0 },
      { name: "b", counter: 1, actual: 1 },
      { name: "c", counter: 1, actual: 1 },
    ]);
    const cleared = await patch(projectPath(org.id, p.id), { tags: [] }, t);
    expect(cleared.body.tags).toEqual([]);
    const empty = await patch(projectPath(org.id, p.id), {}, t);
    expect(empty.status).toBe(200);
    expect((await tagCounts(org.id)).map((c) => c.counter)).toEqual([0, 0, 0]);
  });

  it("deleting a project counts its tags down and takes its grants with it", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id, { name: "P", tags: ["x", "y"], private: true });
    const other = await createProject(admin.accessToken, org.id, { name: "O", tags: ["x"] });
    expect((await del(projectPath(org.id, p.id), { token: admin.accessToken })).status).toBe(204);
    expect(await tagCounts(org.id)).toEqual([
      { name: "x", counter: 1, actual: 1 },
      { name: "y", counter: 0, actual: 0 },
    ]);
    const grants = await env.DB.prepare("select count(*) as n from project_members where project_id = ?").bind(p.id).first<{ n: number }>();
    expect(grants!.n).toBe(0);
    expect((await get(projectPath(org.id, other.id), { token: admin.accessToken })).body.tags).toEqual(["x"]);
    expectProblem(await del(projectPath(org.id, p.id), { token: admin.accessToken }), 404, "not_found");
  });

  it("a list is one D1 round trip and one KV read", async () => {
    const { admin, org } = await adminAndOrg();
    await createProject(admin.accessToken, org.id, { tags: ["a"] });
    const res = await list(org.id, admin.accessToken);
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(1);
    expect(res.cost.queries).toBe(1);
    expect(res.cost.kvReads).toBe(1);
    const one = await get(projectPath(org.id, res.body.items[0].id), { token: admin.accessToken });
    expect(one.cost.queries).toBe(1);
  });

  it("deleting the organization removes its projects, tags, tag rows and grants", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id, { tags: ["a"], private: true });
    expect((await del(`/v1/organizations/${org.id}`, { token: admin.accessToken })).status).toBe(204);
    for (const table of ["projects", "tags", "project_tags", "project_members"]) {
      const row = await env.DB.prepare(`select count(*) as n from ${table} where organization_id = ?`).bind(org.id).first<{ n: number }>();
      expect(row!.n, table).toBe(0);
    }
    const grants = await env.DB.prepare("select count(*) as n from project_members where project_id = ?").bind(p.id).first<{ n: number }>();
    expect(grants!.n).toBe(0);
  });
});

describe("happy: order, filters and pages", () => {
  // Seeded a millisecond apart, so created_at order is the seed order; updated_at runs backwards.
  const specs = [
    { name: "delta", tags: ["red"] },
    { name: "Alpha", tags: ["red", "blue"] },
    { name: "charlie" },
    { name: "bravo", private: true, tags: ["red"] },
    { name: "alpha two", tags: ["blue"] },
    { name: "Echo", private: true },
    { name: "foxtrot", tags: ["red"] },
  ];

  async function seeded() {
    const { admin, org } = await adminAndOrg();
    const base = Date.now() - 1_000_000;
    const ids = await seedProjects(
      org.id,
      specs.map((s, i) => ({ ...s, updatedAt: base + 1000 - i })),
      { base },
    );
    const byName = new Map(specs.map((s, i) => [s.name, ids[i]!]));
    return { admin, org, ids, byName };
  }

  const names = (items: any[]) => items.map((p) => p.name);
  const all = (orgId: string, token: string, query: Record<string, string>, pageSize = 2) =>
    walk((pageToken) => list(orgId, token, { ...query, page_size: String(pageSize), ...(pageToken ? { page_token: pageToken } : {}) }));

  it.each([
    ["", ["foxtrot", "Echo", "alpha two", "bravo", "charlie", "Alpha", "delta"]],
    ["created_at desc", ["foxtrot", "Echo", "alpha two", "bravo", "charlie", "Alpha", "delta"]],
    ["created_at", ["delta", "Alpha", "charlie", "bravo", "alpha two", "Echo", "foxtrot"]],
    ["name", ["Alpha", "alpha two", "bravo", "charlie", "delta", "Echo", "foxtrot"]],
    ["name desc", ["foxtrot", "Echo", "delta", "charlie", "bravo", "alpha two", "Alpha"]],
    ["updated_at", ["foxtrot", "Echo", "alpha two", "bravo", "charlie", "Alpha", "delta"]],
    ["updated_at desc", ["delta", "Alpha", "charlie", "bravo", "alpha two", "Echo", "foxtrot"]],
  ])("order_by %j pages to the end, 2 at a time, each page one round trip", async (orderBy, expected) => {
    const { admin, org } = await seeded();
    const { items, costs, pages } = await all(org.id, admin.accessToken, orderBy ? { order_by: orderBy } : {});
    expect(names(items)).toEqual(expected);
    expect(pages).toBe(4);
    for (const c of costs) expect(c.queries).toBe(1);
  });

  it.each([
    ['name = "delta"', {}, ["delta"]],
    ['name = "alpha"', {}, []],
    ['name != "delta"', { order_by: "name" }, ["Alpha", "alpha two", "bravo", "charlie", "Echo", "foxtrot"]],
    ['name:"ALP"', {}, ["Alpha", "alpha two"]],
    ['name:"alp"', { order_by: "name desc" }, ["alpha two", "Alpha"]],
    ['tag = "red"', {}, ["foxtrot", "bravo", "Alpha", "delta"]],
    ['tag = "red"', { order_by: "created_at" }, ["delta", "Alpha", "bravo", "foxtrot"]],
    ['tag = "red" AND private = false', {}, ["foxtrot", "Alpha", "delta"]],
    ['tag = "red" AND name:"b"', {}, ["bravo"]],
    ['tag = "RED"', {}, []],
    ['tag = "none"', {}, []],
    ["private = true", {}, ["Echo", "bravo"]],
    ["private = false", { order_by: "name" }, ["Alpha", "alpha two", "charlie", "delta", "foxtrot"]],
    ["private = true AND private = false", {}, []],
  ])("filter %s %j", async (filter, extra, expected) => {
    const { admin, org } = await seeded();
    const { items } = await all(org.id, admin.accessToken, { filter, ...extra });
    expect(names(items)).toEqual(expected);
  });

  it("a page token only works with the filter and order it was issued for", async () => {
    const { admin, org } = await seeded();
    const first = await list(org.id, admin.accessToken, { page_size: "2", order_by: "name" });
    const token = first.body.next_page_token;
    expect(token).not.toBe("");
    expectProblem(await list(org.id, admin.accessToken, { page_size: "2", order_by: "name desc", page_token: token }), 400, "invalid_page_token");
    expectProblem(
      await list(org.id, admin.accessToken, { page_size: "2", order_by: "name", filter: "private = false", page_token: token }),
      400,
      "invalid_page_token",
    );
    expectProblem(await list(org.id, admin.accessToken, { page_token: "garbage" }), 400, "invalid_page_token");
    // The same token against another organization of the same admin.
    const other = await post("/v1/organizations", { name: "Other" }, { token: admin.accessToken });
    expectProblem(await list(other.body.id, admin.accessToken, { page_size: "2", order_by: "name", page_token: token }), 400, "invalid_page_token");
  });
});

describe("happy: access list", () => {
  it("grant (idempotent), list to the end, revoke", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id, { private: true });
    const people = await Promise.all([createUser(), createUser(), createUser(), createUser()]);
    for (const u of people) await addMemberDirect(org.id, u, "user");
    const sa = await createServiceAccount(admin, org.id, { name: "Robot" });

    const first = await put(accessPath(org.id, p.id, people[0]!.id), undefined, t);
    expect(first.status, first.text).toBe(200);
    expect(first.body).toEqual({
      project_id: p.id,
      member: { id: people[0]!.id, display_name: people[0]!.displayName, email: people[0]!.email, type: "user" },
      granted_at: expect.stringMatching(ISO),
    });
    await new Promise((r) => setTimeout(r, 5));
    const again = await put(accessPath(org.id, p.id, people[0]!.id), undefined, t);
    expect(again.body).toEqual(first.body);
    for (const u of people.slice(1)) await grant(admin.accessToken, org.id, p.id, u.id);
    const robot = await grant(admin.accessToken, org.id, p.id, sa.service_account.id);
    expect(robot.member).toEqual({ id: sa.service_account.id, display_name: "Robot", email: null, type: "service_account" });

    // The creator (admin) was granted at creation, plus 4 people and a service account.
    const { items, costs, pages } = await walk((pt) => get(`${accessPath(org.id, p.id)}?page_size=2${pt ? `&page_token=${pt}` : ""}`, t));
    expect(pages).toBe(3);
    const ids = [admin.id, ...people.map((u) => u.id), sa.service_account.id].sort();
    expect(items.map((i) => i.member.id)).toEqual(ids);
    for (const c of costs) expect(c.queries).toBe(1);

    expect((await del(accessPath(org.id, p.id, people[0]!.id), t)).status).toBe(204);
    expectProblem(await del(accessPath(org.id, p.id, people[0]!.id), t), 404, "not_found");
    const after = await get(accessPath(org.id, p.id), t);
    expect(after.body.items.map((i: any) => i.member.id)).not.toContain(people[0]!.id);
  });

  it("a public project may carry grants; they apply once it is private", async () => {
    const { admin, org } = await adminAndOrg();
    const [granted, other] = await Promise.all([createUser(), createUser()]);
    await addMemberDirect(org.id, granted, "user");
    await addMemberDirect(org.id, other, "user");
    const p = await createProject(admin.accessToken, org.id);
    await grant(admin.accessToken, org.id, p.id, granted.id);
    expect((await patch(projectPath(org.id, p.id), { private: true }, { token: admin.accessToken })).status).toBe(200);
    expect((await get(projectPath(org.id, p.id), { token: granted.accessToken })).status).toBe(200);
    expectProblem(await get(projectPath(org.id, p.id), { token: other.accessToken }), 404, "not_found");
  });

  it("making a project private puts the caller on its access list", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    await addMemberDirect(org.id, user, "user");
    const p = await createProject(admin.accessToken, org.id, { tags: ["t"] });
    const res = await patch(projectPath(org.id, p.id), { private: true }, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.private).toBe(true);
    expect((await get(projectPath(org.id, p.id), { token: user.accessToken })).status).toBe(200);
    // The tag rows follow the flag (the tag filter's private range).
    const rows = await env.DB.prepare("select private from project_tags where project_id = ?").bind(p.id).all<{ private: number }>();
    expect(rows.results).toEqual([{ private: 1 }]);
  });
});

describe("errors", () => {
  it("400 lists every bad field of a create", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      projectsPath(org.id),
      { name: "", description: "x".repeat(2001), private: "yes", tags: ["ok", "ok", "two\nlines", "y".repeat(65), ""] },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["description", "name", "private", "tags", "tags.2", "tags.3", "tags.4"].sort());
  });

  it("400 for more than 20 tags, a name over 200 characters, control characters, a missing name", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const tooMany = Array.from({ length: 21 }, (_, i) => `t${i}`);
    expect(errorPaths(await post(projectsPath(org.id), { name: "P", tags: tooMany }, t))).toEqual(["tags"]);
    expect(errorPaths(await post(projectsPath(org.id), { name: "n".repeat(201) }, t))).toEqual(["name"]);
    expect(errorPaths(await post(projectsPath(org.id), { name: "a\u0007b" }, t))).toEqual(["name"]);
    expect(errorPaths(await post(projectsPath(org.id), {}, t))).toEqual(["name"]);
    expect((await post(projectsPath(org.id), { name: "P", tags: Array.from({ length: 20 }, (_, i) => `t${i}`) }, t)).status).toBe(201);
  });

  it("400 for a bad PATCH, nothing changed", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id, { tags: ["a"] });
    const res = await patch(projectPath(org.id, p.id), { name: " ", tags: ["a", "a"], private: null }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["name", "private", "tags"]);
    expect((await get(projectPath(org.id, p.id), { token: admin.accessToken })).body).toEqual(p);
  });

  it.each([
    ['color = "red"', "invalid_filter"],
    ['tag != "red"', "invalid_filter"],
    ['tag:"re"', "invalid_filter"],
    ['private = "true"', "invalid_filter"],
    ['tag = "a" AND tag = "b"', "invalid_filter"],
    ["name =", "invalid_filter"],
  ])("filter %j → 400 %s", async (filter, code) => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await list(org.id, admin.accessToken, { filter }), 400, code);
  });

  it.each([
    [{ order_by: "color" }],
    [{ order_by: "name, created_at" }],
    [{ order_by: "name sideways" }],
    [{ order_by: "name", filter: 'tag = "a"' }],
    [{ order_by: "updated_at", filter: 'tag = "a"' }],
    [{ order_by: "created_at", filter: 'name:"a"' }],
    [{ order_by: "updated_at desc", filter: 'name:"a"' }],
  ])("%j → 400 invalid_order_by", async (query) => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await list(org.id, admin.accessToken, query), 400, "invalid_order_by");
  });

  it("400 for page_size 0", async () => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await list(org.id, admin.accessToken, { page_size: "0" }), 400, "validation_failed");
  });

  it("401 without a credential", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id);
    expectProblem(await get(projectsPath(org.id)), 401, "unauthenticated");
    expectProblem(await post(projectsPath(org.id), { name: "x" }), 401, "unauthenticated");
    expectProblem(await patch(projectPath(org.id, p.id), { name: "x" }), 401, "unauthenticated");
    expectProblem(await put(accessPath(org.id, p.id, admin.id)), 401, "unauthenticated");
  });

  it("404 for malformed and unknown project ids, and for members who are not members", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id);
    for (const bad of ["nope", "prj_00000000000000000000000000", "prj_'; drop table projects; --"]) {
      expectProblem(await get(projectPath(org.id, encodeURIComponent(bad)), t), 404, "not_found");
      expectProblem(await patch(projectPath(org.id, encodeURIComponent(bad)), { name: "x" }, t), 404, "not_found");
      expectProblem(await del(projectPath(org.id, encodeURIComponent(bad)), t), 404, "not_found");
      expectProblem(await get(accessPath(org.id, encodeURIComponent(bad)), t), 404, "not_found");
      expectProblem(await put(accessPath(org.id, encodeURIComponent(bad), admin.id), undefined, t), 404, "not_found");
    }
    const outsider = await createUser();
    expectProblem(await put(accessPath(org.id, p.id, outsider.id), undefined, t), 404, "not_found");
    expectProblem(await put(accessPath(org.id, p.id, "usr_nope"), undefined, t), 404, "not_found");
    expectProblem(await del(accessPath(org.id, p.id, outsider.id), t), 404, "not_found");
  });

  it("409 organization_inactive for writes; reads still work", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, t)).status).toBe(200);
    expectProblem(await post(projectsPath(org.id), { name: "x" }, t), 409, "organization_inactive");
    expectProblem(await patch(projectPath(org.id, p.id), { name: "x" }, t), 409, "organization_inactive");
    expectProblem(await del(projectPath(org.id, p.id), t), 409, "organization_inactive");
    expectProblem(await put(accessPath(org.id, p.id, admin.id), undefined, t), 409, "organization_inactive");
    expect((await get(projectPath(org.id, p.id), t)).status).toBe(200);
  });
});

describe("security", () => {
  it("another organization's project is 404 under this one, for every verb", async () => {
    const a = await adminAndOrg();
    const b = await adminAndOrg();
    const theirs = await createProject(b.admin.accessToken, b.org.id, { name: "Theirs" });
    const t = { token: a.admin.accessToken };
    expectProblem(await get(projectPath(a.org.id, theirs.id), t), 404, "not_found");
    expectProblem(await patch(projectPath(a.org.id, theirs.id), { name: "pwned" }, t), 404, "not_found");
    expectProblem(await del(projectPath(a.org.id, theirs.id), t), 404, "not_found");
    expectProblem(await get(accessPath(a.org.id, theirs.id), t), 404, "not_found");
    expectProblem(await put(accessPath(a.org.id, theirs.id, a.admin.id), undefined, t), 404, "not_found");
    expectProblem(await del(accessPath(a.org.id, theirs.id, b.admin.id), t), 404, "not_found");
    expect((await get(projectPath(b.org.id, theirs.id), { token: b.admin.accessToken })).body.name).toBe("Theirs");
    // And under their organization, to a non-member: 404 for the organization itself.
    expectProblem(await get(projectPath(b.org.id, theirs.id), t), 404, "not_found");
  });

  it("a member of this organization cannot be granted another organization's project", async () => {
    const a = await adminAndOrg();
    const b = await adminAndOrg();
    const theirs = await createProject(b.admin.accessToken, b.org.id, { private: true });
    expectProblem(await put(accessPath(b.org.id, theirs.id, a.admin.id), undefined, { token: b.admin.accessToken }), 404, "not_found");
  });

  it("403 by permission: a custom role without projects:write, without projects:read", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id);
    const reader = await createUser();
    const nobody = await createUser();
    await addMemberDirect(org.id, reader, (await createRole(admin, org.id, ["projects:read"])).name);
    await addMemberDirect(org.id, nobody, (await createRole(admin, org.id, ["organization:read"])).name);
    expect((await list(org.id, reader.accessToken)).status).toBe(200);
    expectProblem(await post(projectsPath(org.id), { name: "x" }, { token: reader.accessToken }), 403, "forbidden");
    expectProblem(await patch(projectPath(org.id, p.id), { name: "x" }, { token: reader.accessToken }), 403, "forbidden");
    expectProblem(await del(projectPath(org.id, p.id), { token: reader.accessToken }), 403, "forbidden");
    expectProblem(await put(accessPath(org.id, p.id, reader.id), undefined, { token: reader.accessToken }), 403, "forbidden");
    expectProblem(await list(org.id, nobody.accessToken), 403, "forbidden");
    expectProblem(await get(projectPath(org.id, p.id), { token: nobody.accessToken }), 403, "forbidden");
    expectProblem(await get(accessPath(org.id, p.id), { token: nobody.accessToken }), 403, "forbidden");
  });

  it("403 insufficient_scope: a PAT without organization:read reads nothing; organization:read cannot write", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id);
    const members = await createPat(admin, ["organization_member:write"]);
    const reader = await createPat(admin, ["organization:read"]);
    const writer = await createPat(admin, ["organization:write"]);
    const res = await list(org.id, members.token);
    expectProblem(res, 403, "insufficient_scope");
    expect(res.body.required_scope).toBe("organization:read");
    expect((await list(org.id, reader.token)).status).toBe(200);
    const denied = await post(projectsPath(org.id), { name: "x" }, { token: reader.token });
    expectProblem(denied, 403, "insufficient_scope");
    expect(denied.body.required_scope).toBe("organization:write");
    expectProblem(await put(accessPath(org.id, p.id, admin.id), undefined, { token: reader.token }), 403, "insufficient_scope");
    expect((await post(projectsPath(org.id), { name: "x" }, { token: writer.token })).status).toBe(201);
  });
});
