import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { PERMISSIONS } from "../../src/lib/permissions";
import { del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique, type TestUser } from "../helpers/factories";
import { expectProblem, errorPaths } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const ROLE_ID = /^rol_[0-9A-HJKMNP-TV-Z]{26}$/;
const BUILT_IN_IDS = ["admin", "user", "service_account"];
/** §5: `user` reads the organization, its members and projects, and manages projects. */
const USER_ROLE_PERMISSIONS = ["organization:read", "members:read", "roles:read", "projects:read", "projects:write"];

const roleName = () => unique("role").slice(0, 40);
const rolesPath = (orgId: string) => `/v1/organizations/${orgId}/roles`;

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

async function createRole(admin: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(rolesPath(orgId), { name: roleName(), permissions: ["organization:read"], ...body }, { token: admin.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string; description: string | null; permissions: string[]; built_in: boolean; created_at: string; updated_at: string };
}

/** A fresh user holding a new custom role with exactly `permissions` in the organization. */
async function memberWithPermissions(admin: TestUser, orgId: string, permissions: string[]) {
  const role = await createRole(admin, orgId, { permissions });
  const user = await createUser();
  await addMemberDirect(orgId, user, role.name);
  return { user, role };
}

/** Follows next_page_token to the end; returns every page's items. */
async function allPages(path: string, token: string, pageSize: number) {
  const pages: any[][] = [];
  const seen = new Set<string>();
  let pageToken = "";
  for (let i = 0; i < 50; i++) {
    const q = new URLSearchParams({ page_size: String(pageSize) });
    if (pageToken) q.set("page_token", pageToken);
    const res = await get(`${path}?${q}`, { token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.length).toBeLessThanOrEqual(pageSize);
    for (const item of res.body.items) {
      expect(seen.has(item.id), `page ${i + 1} repeats ${item.id}`).toBe(false);
      seen.add(item.id);
    }
    pages.push(res.body.items);
    pageToken = res.body.next_page_token;
    expect(typeof pageToken).toBe("string");
    if (pageToken === "") return pages;
  }
  throw new Error("pagination did not end");
}

describe("happy", () => {
  it("GET lists the built-in roles first, then custom roles in creation order", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await createRole(admin, org.id, { permissions: ["projects:read"] });
    const b = await createRole(admin, org.id, { permissions: ["members:read"] });
    const res = await get(rolesPath(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    const items = res.body.items as any[];
    expect(items.map((r) => r.id)).toEqual([...BUILT_IN_IDS, a.id, b.id]);
    for (const r of items.slice(0, 3)) {
      expect(r).toMatchObject({ name: r.id, built_in: true, permissions: expect.any(Array) });
      expect(typeof r.description).toBe("string");
    }
    expect(items[0].permissions.sort()).toEqual([...PERMISSIONS].sort());
    for (const builtIn of items.slice(1, 3)) {
      expect(builtIn.permissions.sort()).toEqual([...USER_ROLE_PERMISSIONS].sort());
    }
    expect(items[3]).toEqual(a);
    expect(items[4]).toEqual(b);
  });

  it("paginates built-ins then custom roles with page_size=2 over four pages, with no gaps or duplicates", async () => {
    const { admin, org } = await adminAndOrg();
    const custom: string[] = [];
    for (let i = 0; i < 4; i++) custom.push((await createRole(admin, org.id)).id);
    const pages = await allPages(rolesPath(org.id), admin.accessToken, 2);
    expect(pages.length).toBe(4);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 1]);
    expect(pages.flat().map((r) => r.id)).toEqual([...BUILT_IN_IDS, ...custom]);
  });

  it("paginates with page_size=1 across the built-in/custom boundary", async () => {
    const { admin, org } = await adminAndOrg();
    const custom = [(await createRole(admin, org.id)).id, (await createRole(admin, org.id)).id];
    const pages = await allPages(rolesPath(org.id), admin.accessToken, 1);
    expect(pages.flat().map((r) => r.id)).toEqual([...BUILT_IN_IDS, ...custom]);
  });

  it("an organization without custom roles lists exactly the three built-ins, and page_size=3 ends there", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await get(`${rolesPath(org.id)}?page_size=3`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.map((r: any) => r.id)).toEqual(BUILT_IN_IDS);
    if (res.body.next_page_token !== "") {
      const next = await get(`${rolesPath(org.id)}?page_size=3&page_token=${encodeURIComponent(res.body.next_page_token)}`, { token: admin.accessToken });
      expect(next.status, next.text).toBe(200);
      expect(next.body).toEqual({ items: [], next_page_token: "" });
    }
  });

  it("the built-in `user` role can list and read roles", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const list = await get(rolesPath(org.id), { token: member.accessToken });
    expect(list.status, list.text).toBe(200);
    expect(list.body.items.map((r: any) => r.id)).toEqual([...BUILT_IN_IDS, role.id]);
    const one = await get(`${rolesPath(org.id)}/${role.id}`, { token: member.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(role);
  });

  it("POST creates a custom role", async () => {
    const { admin, org } = await adminAndOrg();
    const name = roleName();
    const res = await post(
      rolesPath(org.id),
      { name, description: "Reads things", permissions: ["organization:read", "members:read"] },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(ROLE_ID),
      name,
      description: "Reads things",
      permissions: ["organization:read", "members:read"],
      built_in: false,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(res.body.created_at).toBe(res.body.updated_at);
  });

  it("POST accepts a name at both length limits, the allowed punctuation, no description, and an empty permission list", async () => {
    const { admin, org } = await adminAndOrg();
    for (const name of ["ab", `a${"b".repeat(39)}`, "ops_team-2"]) {
      const res = await post(rolesPath(org.id), { name, permissions: [] }, { token: admin.accessToken });
      expect(res.status, `${name}: ${res.text}`).toBe(201);
      expect(res.body).toMatchObject({ name, description: null, permissions: [] });
    }
    const every = await post(rolesPath(org.id), { name: roleName(), permissions: [...PERMISSIONS] }, { token: admin.accessToken });
    expect(every.status, every.text).toBe(201);
    expect(every.body.permissions).toEqual([...PERMISSIONS]);
  });

  it("GET returns one custom role, and a built-in role by its name", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, { description: "d" });
    const one = await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(role);
    const builtIn = await get(`${rolesPath(org.id)}/admin`, { token: admin.accessToken });
    expect(builtIn.status, builtIn.text).toBe(200);
    expect(builtIn.body).toMatchObject({ id: "admin", name: "admin", built_in: true });
    expect(builtIn.body.permissions.sort()).toEqual([...PERMISSIONS].sort());
    for (const id of ["user", "service_account"]) {
      const res = await get(`${rolesPath(org.id)}/${id}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id, name: id, built_in: true });
    }
  });

  it("PATCH changes description, permissions and name; GET and the list show the change", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, { description: "before", permissions: ["organization:read"] });
    const desc = await patch(`${rolesPath(org.id)}/${role.id}`, { description: "after" }, { token: admin.accessToken });
    expect(desc.status, desc.text).toBe(200);
    expect(desc.body).toMatchObject({
      id: role.id,
      name: role.name,
      description: "after",
      permissions: ["organization:read"],
      built_in: false,
      created_at: role.created_at,
    });
    expect(desc.body.updated_at >= role.updated_at).toBe(true);

    const perms = await patch(`${rolesPath(org.id)}/${role.id}`, { permissions: ["members:read", "projects:write"] }, { token: admin.accessToken });
    expect(perms.status, perms.text).toBe(200);
    expect(perms.body).toMatchObject({ description: "after", permissions: ["members:read", "projects:write"] });

    const name = roleName();
    const renamed = await patch(`${rolesPath(org.id)}/${role.id}`, { name, description: null }, { token: admin.accessToken });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body).toMatchObject({ id: role.id, name, description: null, permissions: ["members:read", "projects:write"] });

    const got = await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(got.body).toEqual(renamed.body);
    const list = await get(rolesPath(org.id), { token: admin.accessToken });
    expect(list.body.items.find((r: any) => r.id === role.id)).toEqual(renamed.body);
  });

  it("PATCH with the role's own name, or an empty body, changes nothing but succeeds", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, { description: "same" });
    for (const body of [{ name: role.name }, {}]) {
      const res = await patch(`${rolesPath(org.id)}/${role.id}`, body, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: role.id, name: role.name, description: "same", permissions: role.permissions });
    }
  });

  it("renaming a role moves its members along, and they keep its permissions", async () => {
    const { admin, org } = await adminAndOrg();
    const { user, role } = await memberWithPermissions(admin, org.id, ["organization:read", "organization:write", "members:read"]);
    const bystander = await createUser();
    await addMemberDirect(org.id, bystander, "user");
    const name = roleName();
    const res = await patch(`${rolesPath(org.id)}/${role.id}`, { name }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);

    const member = await get(`/v1/organizations/${org.id}/members/${user.id}`, { token: admin.accessToken });
    expect(member.status, member.text).toBe(200);
    expect(member.body.role).toBe(name);
    const other = await get(`/v1/organizations/${org.id}/members/${bystander.id}`, { token: admin.accessToken });
    expect(other.body.role).toBe("user");
    const stored = await env.DB.prepare("select count(*) as n from members where organization_id = ? and role = ?")
      .bind(org.id, role.name)
      .first<{ n: number }>();
    expect(stored!.n).toBe(0);

    // The renamed role still grants what it granted.
    const write = await patch(`/v1/organizations/${org.id}`, { description: `by renamed ${unique()}` }, { token: user.accessToken });
    expect(write.status, write.text).toBe(200);
    // And the old name is free again.
    const reuse = await post(rolesPath(org.id), { name: role.name, permissions: [] }, { token: admin.accessToken });
    expect(reuse.status, reuse.text).toBe(201);
  });

  it("DELETE removes an unused role: 204, then 404", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    const res = await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 404, "not_found");
    const list = await get(rolesPath(org.id), { token: admin.accessToken });
    expect(list.body.items.map((r: any) => r.id)).toEqual(BUILT_IN_IDS);
  });

  it("a role can be deleted once its last member has been moved off it", async () => {
    const { admin, org } = await adminAndOrg();
    const { user, role } = await memberWithPermissions(admin, org.id, ["organization:read"]);
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 409, "role_in_use");
    const moved = await patch(`/v1/organizations/${org.id}/members/${user.id}`, { role: "user" }, { token: admin.accessToken });
    expect(moved.status, moved.text).toBe(200);
    const res = await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
  });

  it("a custom role's permissions take effect: organization:write may PATCH the organization, without it 403", async () => {
    const { admin, org } = await adminAndOrg();
    const writer = await memberWithPermissions(admin, org.id, ["organization:read", "organization:write"]);
    const reader = await memberWithPermissions(admin, org.id, ["organization:read"]);
    const description = `custom ${unique()}`;
    const ok = await patch(`/v1/organizations/${org.id}`, { description }, { token: writer.user.accessToken });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.description).toBe(description);
    const denied = await patch(`/v1/organizations/${org.id}`, { description: "nope" }, { token: reader.user.accessToken });
    expectProblem(denied, 403, "forbidden");
    const read = await get(`/v1/organizations/${org.id}`, { token: reader.user.accessToken });
    expect(read.status, read.text).toBe(200);
    expect(read.body.description).toBe(description);
  });

  it("changing a role's permissions takes effect on its members' very next request", async () => {
    const { admin, org } = await adminAndOrg();
    const { user, role } = await memberWithPermissions(admin, org.id, ["organization:read", "organization:write"]);
    expect((await patch(`/v1/organizations/${org.id}`, { description: "one" }, { token: user.accessToken })).status).toBe(200);
    const cut = await patch(`${rolesPath(org.id)}/${role.id}`, { permissions: ["organization:read"] }, { token: admin.accessToken });
    expect(cut.status, cut.text).toBe(200);
    expectProblem(await patch(`/v1/organizations/${org.id}`, { description: "two" }, { token: user.accessToken }), 403, "forbidden");
    const back = await patch(`${rolesPath(org.id)}/${role.id}`, { permissions: ["organization:read", "organization:write"] }, { token: admin.accessToken });
    expect(back.status, back.text).toBe(200);
    expect((await patch(`/v1/organizations/${org.id}`, { description: "three" }, { token: user.accessToken })).status).toBe(200);
  });

  it("a custom role without organization:read cannot even read the organization (403, not 404: it is a member)", async () => {
    const { admin, org } = await adminAndOrg();
    const { user } = await memberWithPermissions(admin, org.id, ["projects:read"]);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: user.accessToken }), 403, "forbidden");
  });

  it("a member with roles:write may create, edit and delete roles within its own permissions", async () => {
    const { admin, org } = await adminAndOrg();
    const { user } = await memberWithPermissions(admin, org.id, ["roles:read", "roles:write", "members:read"]);
    const created = await post(rolesPath(org.id), { name: roleName(), permissions: ["roles:read", "members:read"] }, { token: user.accessToken });
    expect(created.status, created.text).toBe(201);
    const edited = await patch(
      `${rolesPath(org.id)}/${created.body.id}`,
      { permissions: ["members:read"], description: "narrower" },
      { token: user.accessToken },
    );
    expect(edited.status, edited.text).toBe(200);
    expect(edited.body.permissions).toEqual(["members:read"]);
    const gone = await del(`${rolesPath(org.id)}/${created.body.id}`, { token: user.accessToken });
    expect(gone.status, gone.text).toBe(204);
  });

  it("a PAT with organization:read lists roles", async () => {
    const { admin, org } = await adminAndOrg();
    const pat = await createPat(admin, ["organization:read"]);
    const res = await get(rolesPath(org.id), { token: pat.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.map((r: any) => r.id)).toEqual(BUILT_IN_IDS);
  });
});

describe("errors", () => {
  it.each([
    ["upper case", "Ops"],
    ["leading digit", "1ops"],
    ["leading dash", "-ops"],
    ["leading underscore", "_ops"],
    ["one character", "o"],
    ["41 characters", `a${"b".repeat(40)}`],
    ["a space", "ops team"],
    ["a dot", "ops.team"],
    ["punctuation", "ops!"],
    ["non-ASCII", "opé"],
    ["empty", ""],
  ])("POST with a name with %s → 400", async (_what, name) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(rolesPath(org.id), { name, permissions: [] }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toContain("name");
  });

  it("POST with a non-string name, no name or no permissions → 400 listing every field", async () => {
    const { admin, org } = await adminAndOrg();
    const wrongType = await post(rolesPath(org.id), { name: 42, permissions: "organization:read" }, { token: admin.accessToken });
    expectProblem(wrongType, 400, "validation_failed");
    expect(errorPaths(wrongType)).toEqual(expect.arrayContaining(["name", "permissions"]));
    const missing = await post(rolesPath(org.id), {}, { token: admin.accessToken });
    expectProblem(missing, 400, "validation_failed");
    expect(errorPaths(missing)).toEqual(expect.arrayContaining(["name", "permissions"]));
  });

  it("POST with an unknown permission → 400 naming it", async () => {
    const { admin, org } = await adminAndOrg();
    for (const permissions of [["organization:read", "organization:own"], ["ADMIN"], [""], [7]]) {
      const res = await post(rolesPath(org.id), { name: roleName(), permissions }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(
        errorPaths(res).some((p) => p.startsWith("permissions")),
        res.text,
      ).toBe(true);
    }
    const list = await get(rolesPath(org.id), { token: admin.accessToken });
    expect(list.body.items.map((r: any) => r.id)).toEqual(BUILT_IN_IDS);
  });

  it("POST with a repeated permission → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(rolesPath(org.id), { name: roleName(), permissions: ["members:read", "members:read"] }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(
      errorPaths(res).some((p) => p.startsWith("permissions")),
      res.text,
    ).toBe(true);
  });

  it("POST with a description over 500 characters → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(rolesPath(org.id), { name: roleName(), permissions: [], description: "x".repeat(501) }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toContain("description");
  });

  it.each(BUILT_IN_IDS)("POST with the reserved built-in name %s → 409 conflict", async (name) => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await post(rolesPath(org.id), { name, permissions: [] }, { token: admin.accessToken }), 409, "conflict");
  });

  it("POST with a custom role's name that already exists → 409 conflict; another organization may reuse it", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    expectProblem(await post(rolesPath(org.id), { name: role.name, permissions: ["members:read"] }, { token: admin.accessToken }), 409, "conflict");
    const other = await createOrg(admin);
    const reuse = await post(rolesPath(other.id), { name: role.name, permissions: [] }, { token: admin.accessToken });
    expect(reuse.status, reuse.text).toBe(201);
  });

  it("GET an unknown, malformed or mis-prefixed role id → 404", async () => {
    const { admin, org } = await adminAndOrg();
    for (const id of [newId("role"), "rol_nope", "nope", "ADMIN", newId("organization"), "%27%20or%201%3D1--"]) {
      expectProblem(await get(`${rolesPath(org.id)}/${id}`, { token: admin.accessToken }), 404, "not_found");
    }
  });

  it("another organization's role is 404 to GET, PATCH and DELETE, and stays unchanged", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await adminAndOrg();
    const theirs = await createRole(other.admin, other.org.id, { description: "theirs" });
    const path = `${rolesPath(org.id)}/${theirs.id}`;
    expectProblem(await get(path, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await patch(path, { description: "mine" }, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await del(path, { token: admin.accessToken }), 404, "not_found");
    const still = await get(`${rolesPath(other.org.id)}/${theirs.id}`, { token: other.admin.accessToken });
    expect(still.body).toEqual(theirs);
  });

  it.each(BUILT_IN_IDS)("PATCH or DELETE of the built-in role %s → 409 conflict", async (id) => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await patch(`${rolesPath(org.id)}/${id}`, { description: "mine now" }, { token: admin.accessToken }), 409, "conflict");
    expectProblem(await patch(`${rolesPath(org.id)}/${id}`, { permissions: [] }, { token: admin.accessToken }), 409, "conflict");
    expectProblem(await del(`${rolesPath(org.id)}/${id}`, { token: admin.accessToken }), 409, "conflict");
    const still = await get(`${rolesPath(org.id)}/${id}`, { token: admin.accessToken });
    expect(still.body).toMatchObject({ id, built_in: true });
  });

  it("PATCH renaming to a taken custom name or a built-in name → 409; the role keeps its name and members", async () => {
    const { admin, org } = await adminAndOrg();
    const taken = await createRole(admin, org.id);
    const { user, role } = await memberWithPermissions(admin, org.id, ["organization:read"]);
    for (const name of [taken.name, "admin", "user", "service_account"]) {
      expectProblem(await patch(`${rolesPath(org.id)}/${role.id}`, { name }, { token: admin.accessToken }), 409, "conflict");
    }
    const still = await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(still.body.name).toBe(role.name);
    const member = await get(`/v1/organizations/${org.id}/members/${user.id}`, { token: admin.accessToken });
    expect(member.body.role).toBe(role.name);
  });

  it("PATCH with a bad name, an unknown or repeated permission → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    const path = `${rolesPath(org.id)}/${role.id}`;
    const badName = await patch(path, { name: "Bad Name" }, { token: admin.accessToken });
    expectProblem(badName, 400, "validation_failed");
    expect(errorPaths(badName)).toContain("name");
    const unknown = await patch(path, { permissions: ["root"] }, { token: admin.accessToken });
    expectProblem(unknown, 400, "validation_failed");
    const repeated = await patch(path, { permissions: ["members:read", "members:read"] }, { token: admin.accessToken });
    expectProblem(repeated, 400, "validation_failed");
    const both = await patch(path, { name: "9", permissions: "members:read" }, { token: admin.accessToken });
    expectProblem(both, 400, "validation_failed");
    expect(errorPaths(both)).toEqual(expect.arrayContaining(["name", "permissions"]));
    const still = await get(path, { token: admin.accessToken });
    expect(still.body).toEqual(role);
  });

  it("DELETE of a role held by a member → 409 role_in_use, and the role stays", async () => {
    const { admin, org } = await adminAndOrg();
    const { role } = await memberWithPermissions(admin, org.id, ["organization:read"]);
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 409, "role_in_use");
    const still = await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken });
    expect(still.status).toBe(200);
  });

  it("DELETE of a role held only by a service account → 409 role_in_use", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, { permissions: ["organization:read"] });
    const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "bot", role: role.name }, { token: admin.accessToken });
    expect(sa.status, sa.text).toBe(201);
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 409, "role_in_use");
  });

  it("DELETE of a role promised by a pending invitation → 409 role_in_use; a rename carries the invitation along", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, { permissions: ["organization:read"] });
    const inv = await post(
      `/v1/organizations/${org.id}/invitations`,
      { email: `${unique("inv")}@example.com`, role: role.name, send_email: false },
      { token: admin.accessToken },
    );
    expect(inv.status, inv.text).toBe(201);
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken }), 409, "role_in_use");
    const renamed = roleName();
    expect((await patch(`${rolesPath(org.id)}/${role.id}`, { name: renamed }, { token: admin.accessToken })).status).toBe(200);
    const after = await get(`/v1/organizations/${org.id}/invitations/${inv.body.id}`, { token: admin.accessToken });
    expect(after.body.role).toBe(renamed);
    // Once the invitation is canceled nothing holds the role any more.
    expect((await post(`/v1/organizations/${org.id}/invitations/${inv.body.id}/cancel`, {}, { token: admin.accessToken })).status).toBe(200);
    expect((await del(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken })).status).toBe(204);
  });

  it("the built-in `user` role cannot create, change or delete roles (403)", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const created = await post(rolesPath(org.id), { name: roleName(), permissions: [] }, { token: member.accessToken });
    expectProblem(created, 403, "forbidden");
    expect(created.body.required_permission).toBe("roles:write");
    expectProblem(await patch(`${rolesPath(org.id)}/${role.id}`, { description: "x" }, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await del(`${rolesPath(org.id)}/${role.id}`, { token: member.accessToken }), 403, "forbidden");
    const list = await get(rolesPath(org.id), { token: admin.accessToken });
    expect(list.body.items.map((r: any) => r.id)).toEqual([...BUILT_IN_IDS, role.id]);
  });

  it("list: page_size 0 or negative → 400; a forged page token → 400; a token from another organization → 400", async () => {
    const { admin, org } = await adminAndOrg();
    for (const size of ["0", "-1", "two"]) {
      expectProblem(await get(`${rolesPath(org.id)}?page_size=${size}`, { token: admin.accessToken }), 400, "validation_failed");
    }
    expectProblem(await get(`${rolesPath(org.id)}?page_token=forged.token`, { token: admin.accessToken }), 400, "invalid_page_token");
    const other = await createOrg(admin);
    const first = await get(`${rolesPath(other.id)}?page_size=1`, { token: admin.accessToken });
    expect(first.body.next_page_token).not.toBe("");
    expectProblem(
      await get(`${rolesPath(org.id)}?page_size=1&page_token=${encodeURIComponent(first.body.next_page_token)}`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
  });

  it("list: page_size above 1000 is coerced, not refused", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await get(`${rolesPath(org.id)}?page_size=5000`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.length).toBe(3);
  });
});

describe("security", () => {
  it("anonymous → 401; a non-member → 404 on every roles route", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id);
    const outsider = await createUser();
    const calls: [string, string, unknown?][] = [
      ["GET", rolesPath(org.id)],
      ["POST", rolesPath(org.id), { name: roleName(), permissions: [] }],
      ["GET", `${rolesPath(org.id)}/${role.id}`],
      ["GET", `${rolesPath(org.id)}/admin`],
      ["PATCH", `${rolesPath(org.id)}/${role.id}`, { description: "x" }],
      ["DELETE", `${rolesPath(org.id)}/${role.id}`],
    ];
    for (const [method, path, body] of calls) {
      const send = (token?: string) =>
        method === "GET"
          ? get(path, { token })
          : method === "POST"
            ? post(path, body, { token })
            : method === "PATCH"
              ? patch(path, body, { token })
              : del(path, { token });
      const anon = await send();
      expectProblem(anon, 401, "unauthenticated");
      expectProblem(await send(outsider.accessToken), 404, "not_found");
    }
    expect((await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken })).body).toEqual(role);
  });

  it("a PAT needs organization:write to create a role (403 insufficient_scope), even for an admin", async () => {
    const { admin, org } = await adminAndOrg();
    const readOnly = await createPat(admin, ["organization:read", "organization_member:write"]);
    const res = await post(rolesPath(org.id), { name: roleName(), permissions: [] }, { token: readOnly.token });
    expectProblem(res, 403, "insufficient_scope");
    const writer = await createPat(admin, ["organization:write"]);
    const ok = await post(rolesPath(org.id), { name: roleName(), permissions: ["organization:read"] }, { token: writer.token });
    expect(ok.status, ok.text).toBe(201);
  });

  it("a PAT's scopes bound what its holder may grant: an admin's organization:write PAT cannot create a role with members:write", async () => {
    const { admin, org } = await adminAndOrg();
    const pat = await createPat(admin, ["organization:write"]);
    expectProblem(await post(rolesPath(org.id), { name: roleName(), permissions: ["members:write"] }, { token: pat.token }), 403, "forbidden");
  });

  describe("escalation: a member holding roles:write but not organization:delete", () => {
    const own = ["roles:read", "roles:write", "organization:read"];

    it("cannot create a role granting organization:delete (403 forbidden), and nothing is created", async () => {
      const { admin, org } = await adminAndOrg();
      const { user } = await memberWithPermissions(admin, org.id, own);
      const name = roleName();
      const res = await post(rolesPath(org.id), { name, permissions: ["organization:read", "organization:delete"] }, { token: user.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.body.detail).toContain("organization:delete");
      const list = await get(rolesPath(org.id), { token: admin.accessToken });
      expect(list.body.items.map((r: any) => r.name)).not.toContain(name);
    });

    it("can create a role within its own permissions (201)", async () => {
      const { admin, org } = await adminAndOrg();
      const { user } = await memberWithPermissions(admin, org.id, own);
      const res = await post(rolesPath(org.id), { name: roleName(), permissions: own }, { token: user.accessToken });
      expect(res.status, res.text).toBe(201);
    });

    it("cannot edit or delete a role holding a permission it lacks, even to narrow it (403), and the role is unchanged", async () => {
      const { admin, org } = await adminAndOrg();
      const { user } = await memberWithPermissions(admin, org.id, own);
      const strong = await createRole(admin, org.id, { permissions: ["organization:read", "organization:delete"] });
      const path = `${rolesPath(org.id)}/${strong.id}`;
      expectProblem(await patch(path, { description: "mine" }, { token: user.accessToken }), 403, "forbidden");
      expectProblem(await patch(path, { permissions: ["organization:read"] }, { token: user.accessToken }), 403, "forbidden");
      expectProblem(await patch(path, { name: roleName() }, { token: user.accessToken }), 403, "forbidden");
      expectProblem(await del(path, { token: user.accessToken }), 403, "forbidden");
      expect((await get(path, { token: admin.accessToken })).body).toEqual(strong);
    });

    it("cannot add a permission it lacks to a role it may otherwise edit, its own role included (403)", async () => {
      const { admin, org } = await adminAndOrg();
      const { user, role } = await memberWithPermissions(admin, org.id, own);
      const weak = await createRole(admin, org.id, { permissions: ["organization:read"] });
      expectProblem(
        await patch(`${rolesPath(org.id)}/${weak.id}`, { permissions: ["organization:read", "organization:delete"] }, { token: user.accessToken }),
        403,
        "forbidden",
      );
      expectProblem(
        await patch(`${rolesPath(org.id)}/${role.id}`, { permissions: [...own, "organization:delete"] }, { token: user.accessToken }),
        403,
        "forbidden",
      );
      expect((await get(`${rolesPath(org.id)}/${role.id}`, { token: admin.accessToken })).body.permissions).toEqual(own);
      expectProblem(await del(`/v1/organizations/${org.id}`, { token: user.accessToken }), 403, "forbidden");
    });

    it("cannot edit or delete the built-in admin role either (409: built-ins never change)", async () => {
      const { admin, org } = await adminAndOrg();
      const { user } = await memberWithPermissions(admin, org.id, own);
      expectProblem(await patch(`${rolesPath(org.id)}/admin`, { permissions: [] }, { token: user.accessToken }), 409, "conflict");
      expectProblem(await del(`${rolesPath(org.id)}/admin`, { token: user.accessToken }), 409, "conflict");
      expect((await get(`${rolesPath(org.id)}/admin`, { token: admin.accessToken })).body.permissions.sort()).toEqual([...PERMISSIONS].sort());
    });
  });
});
