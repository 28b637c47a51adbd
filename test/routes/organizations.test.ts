import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, del, get, patch, post, put } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { expectProblem, errorPaths } from "../helpers/problems";

// A 1×1 PNG: the smallest logo a browser would render.
const TINY_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A base64 data URI whose decoded image is exactly `bytes` long. */
function pngOfBytes(bytes: number) {
  const buf = new Uint8Array(bytes).fill(0x41);
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  return `data:image/png;base64,${btoa(bin)}`;
}

/** An admin, their organization and a member holding the built-in `user` role. */
async function orgWithMember() {
  const admin = await createUser();
  const member = await createUser();
  const org = await createOrg(admin);
  await addMemberDirect(org.id, member, "user");
  return { admin, member, org };
}

const rowCount = async (table: string, orgId: string) =>
  (await env.DB.prepare(`select count(*) as n from ${table} where organization_id = ?`).bind(orgId).first<{ n: number }>())!.n;

describe("happy", () => {
  it("POST creates an organization with the caller as owner and only member", async () => {
    const user = await createUser();
    const name = `Acme Widgets ${unique()}`;
    const res = await post("/v1/organizations", { name, description: "We make widgets" }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^org_[0-9A-HJKMNP-TV-Z]{26}$/),
      name,
      slug: name.toLowerCase().replace(/ /g, "-"),
      description: "We make widgets",
      logo_data_uri: null,
      active: true,
      owner: { id: user.id, display_name: user.displayName, email: user.email },
      member_count: 1,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(res.body.created_at).toBe(res.body.updated_at);
    const me = await get("/v1/me/organizations", { token: user.accessToken });
    expect(me.body.items).toEqual([{ organization: res.body, role: "admin" }]);
  });

  it("derives a URL-safe slug and suffixes it when the derived one is taken", async () => {
    const user = await createUser();
    const tag = unique();
    const name = `Ça  Va — Bien! ${tag}`;
    const first = await createOrg(user, { name });
    expect(first.slug).toBe(`ca-va-bien-${tag}`);
    const second = await createOrg(user, { name });
    expect(second.slug).toMatch(new RegExp(`^ca-va-bien-${tag}-[a-z0-9]{6}$`));
    expect(second.id).not.toBe(first.id);
  });

  it("accepts an explicit slug, a tiny PNG, and a logo of exactly 256 KiB", async () => {
    const user = await createUser();
    const slug = `my-${unique()}`;
    const res = await post("/v1/organizations", { name: "Logo Co", slug, logo_data_uri: TINY_PNG }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ slug, logo_data_uri: TINY_PNG });
    const got = await get(`/v1/organizations/${res.body.id}`, { token: user.accessToken });
    expect(got.body.logo_data_uri).toBe(TINY_PNG);

    const limit = await post("/v1/organizations", { name: `Big ${unique()}`, logo_data_uri: pngOfBytes(256 * 1024) }, { token: user.accessToken });
    expect(limit.status, limit.text.slice(0, 300)).toBe(201);
  });

  it.each([
    ["jpeg", "data:image/jpeg;base64,/9j/4AAQSkZJRg=="],
    ["svg+xml", `data:image/svg+xml;base64,${btoa('<svg xmlns="http://www.w3.org/2000/svg"/>')}`],
    ["webp", "data:image/webp;base64,UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=="],
  ])("accepts a %s logo", async (_type, logo) => {
    const user = await createUser();
    const res = await post("/v1/organizations", { name: `Logo ${unique()}`, logo_data_uri: logo }, { token: user.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body.logo_data_uri).toBe(logo);
  });

  it("a name with nothing slug-worthy still gets a valid slug", async () => {
    const user = await createUser();
    const a = await createOrg(user, { name: "!!! ???" });
    const b = await createOrg(user, { name: "!!! ???" });
    for (const o of [a, b]) expect(o.slug).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/);
    expect(a.slug).not.toBe(b.slug);
    const long = await createOrg(user, { name: `${"Long name ".repeat(9)}${unique()}`.slice(0, 100) });
    expect(long.slug.length).toBeLessThanOrEqual(64);
    expect(long.slug).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/);
  });

  it("GET returns the organization to any member, for one KV read and at most two D1 queries", async () => {
    const { admin, member, org } = await orgWithMember();
    const res = await get(`/v1/organizations/${org.id}`, { token: member.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: org.id, name: org.name, slug: org.slug, member_count: 2, owner: { id: admin.id, email: admin.email } });
    expect(res.cost.kvReads).toBe(1);
    expect(res.cost.kvWrites).toBe(0);
    expect(res.cost.queries).toBeLessThanOrEqual(2);
    expect(res.cost.queries).toBe(1); // the organization's row is read in the authorization batch
    expect(res.cost.rowsRead).toBeLessThanOrEqual(6);
  });

  it("GET with a PAT also stays within two D1 round trips, on its first use too", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const pat = await createPat(admin, ["organization:read"]);
    for (const attempt of ["first use", "second use"]) {
      const res = await get(`/v1/organizations/${org.id}`, { token: pat.token });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.kvReads, attempt).toBeLessThanOrEqual(1);
      expect(res.cost.queries, attempt).toBeLessThanOrEqual(2);
    }
  });

  it("PATCH lets an admin change name, slug, description and logo; null clears", async () => {
    const admin = await createUser();
    const org = await createOrg(admin, { description: "before", logo_data_uri: TINY_PNG });
    const name = `Renamed ${unique()}`;
    const slug = `renamed-${unique()}`;
    const res = await patch(`/v1/organizations/${org.id}`, { name, slug, description: "after" }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: org.id, name, slug, description: "after", logo_data_uri: TINY_PNG, active: true });
    expect(res.body.owner).toEqual({ id: admin.id, display_name: admin.displayName, email: admin.email });
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(res.body.created_at));

    const cleared = await patch(`/v1/organizations/${org.id}`, { description: null, logo_data_uri: null }, { token: admin.accessToken });
    expect(cleared.status, cleared.text).toBe(200);
    expect(cleared.body).toMatchObject({ name, slug, description: null, logo_data_uri: null });

    const logo = await patch(`/v1/organizations/${org.id}`, { logo_data_uri: TINY_PNG }, { token: admin.accessToken });
    expect(logo.body.logo_data_uri).toBe(TINY_PNG);
    const got = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(got.body).toEqual(logo.body);
  });

  it("active:false makes the organization read-only until PATCH {active:true}", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const off = await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken });
    expect(off.status, off.text).toBe(200);
    expect(off.body.active).toBe(false);

    const got = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(got.status).toBe(200);
    expect(got.body.active).toBe(false);
    expect((await get(`/v1/organizations/${org.id}/settings`, { token: admin.accessToken })).status).toBe(200);
    expect((await get(`/v1/organizations/${org.id}/preferences`, { token: admin.accessToken })).status).toBe(200);

    expectProblem(await patch(`/v1/organizations/${org.id}`, { name: "Nope" }, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(await put(`/v1/organizations/${org.id}/settings`, { settings: { a: 1 } }, { token: admin.accessToken }), 409, "organization_inactive");
    expectProblem(
      await patch(`/v1/organizations/${org.id}/preferences`, { support_team_access: true }, { token: admin.accessToken }),
      409,
      "organization_inactive",
    );
    expect((await get(`/v1/organizations/${org.id}`, { token: admin.accessToken })).body.name).toBe(org.name);

    const on = await patch(`/v1/organizations/${org.id}`, { active: true }, { token: admin.accessToken });
    expect(on.status, on.text).toBe(200);
    expect(on.body.active).toBe(true);
    const renamed = await patch(`/v1/organizations/${org.id}`, { name: "Back Again" }, { token: admin.accessToken });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.name).toBe("Back Again");
  });

  it("an inactive organization can still be deleted", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken })).status).toBe(200);
    const res = await del(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
  });

  it("DELETE removes the organization and everything of it, and nothing else", async () => {
    const { admin, member, org } = await orgWithMember();
    const sibling = await createOrg(admin);
    const membersOwn = await createOrg(member);
    for (const o of [org, sibling]) {
      const s = await put(
        `/v1/organizations/${o.id}/settings`,
        { settings: { theme: "dark" }, secrets: { api_key: "s3cr3t-value" } },
        { token: admin.accessToken },
      );
      expect(s.status, s.text).toBe(200);
    }
    expect(await rowCount("organization_settings", org.id)).toBe(1);
    expect(await rowCount("organization_secrets", org.id)).toBe(1);

    const res = await del(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");

    expectProblem(await get(`/v1/organizations/${org.id}`, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: member.accessToken }), 404, "not_found");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: admin.accessToken }), 404, "not_found");
    expect(await env.DB.prepare("select count(*) as n from organizations where id = ?").bind(org.id).first("n")).toBe(0);
    for (const table of ["members", "organization_settings", "organization_secrets", "roles"]) {
      expect(await rowCount(table, org.id), table).toBe(0);
    }

    const kept = await get(`/v1/organizations/${sibling.id}/settings`, { token: admin.accessToken });
    expect(kept.status).toBe(200);
    expect(kept.body.settings).toEqual({ theme: "dark" });
    expect(Object.keys(kept.body.secrets)).toEqual(["api_key"]);
    expect(await rowCount("organization_secrets", sibling.id)).toBe(1);
    expect((await get(`/v1/organizations/${membersOwn.id}`, { token: member.accessToken })).status).toBe(200);

    const adminOrgs = await get("/v1/me/organizations", { token: admin.accessToken });
    expect(adminOrgs.body.items.map((i: any) => i.organization.id)).toEqual([sibling.id]);
    const memberOrgs = await get("/v1/me/organizations", { token: member.accessToken });
    expect(memberOrgs.body.items.map((i: any) => i.organization.id)).toEqual([membersOwn.id]);
    // The accounts themselves are untouched.
    expect((await get("/v1/me", { token: member.accessToken })).status).toBe(200);
  });
});

describe("errors", () => {
  it("an explicit slug that is taken is 409 slug_taken, on create and on update", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    expectProblem(await post("/v1/organizations", { name: "Other", slug: org.slug }, { token: user.accessToken }), 409, "slug_taken");
    const other = await createOrg(user);
    expectProblem(await patch(`/v1/organizations/${other.id}`, { slug: org.slug }, { token: user.accessToken }), 409, "slug_taken");
    expect((await get(`/v1/organizations/${other.id}`, { token: user.accessToken })).body.slug).toBe(other.slug);
    // Re-sending its own slug is no conflict.
    expect((await patch(`/v1/organizations/${other.id}`, { slug: other.slug }, { token: user.accessToken })).status).toBe(200);
  });

  it.each([
    ["name missing", {}, "name"],
    ["name empty", { name: "" }, "name"],
    ["name blank", { name: "   " }, "name"],
    ["name 101 chars", { name: "n".repeat(101) }, "name"],
    ["name not a string", { name: 42 }, "name"],
    ["slug starting with a dash", { name: "Ok", slug: "-bad" }, "slug"],
    ["slug ending with a dash", { name: "Ok", slug: "bad-" }, "slug"],
    ["slug upper case", { name: "Ok", slug: "UPPER" }, "slug"],
    ["slug 65 chars", { name: "Ok", slug: "a".repeat(65) }, "slug"],
    ["slug with a space", { name: "Ok", slug: "a b" }, "slug"],
    ["description 1001 chars", { name: "Ok", description: "d".repeat(1001) }, "description"],
    ["logo of a type not allowed", { name: "Ok", logo_data_uri: "data:image/gif;base64,R0lGODlhAQABAAAAACw=" }, "logo_data_uri"],
    ["logo that is not a data URI", { name: "Ok", logo_data_uri: "https://example.com/logo.png" }, "logo_data_uri"],
    ["logo that is not base64", { name: "Ok", logo_data_uri: "data:image/png;base64,not base64!!" }, "logo_data_uri"],
    ["logo that is empty", { name: "Ok", logo_data_uri: "data:image/png;base64," }, "logo_data_uri"],
  ])("POST with %s → 400 naming the field", async (_label, body, path) => {
    const user = await createUser();
    const res = await post("/v1/organizations", body, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toContain(path);
  });

  it("a logo larger than 256 KiB decoded → 400", async () => {
    const user = await createUser();
    const res = await post("/v1/organizations", { name: "Big", logo_data_uri: pngOfBytes(256 * 1024 + 1) }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["logo_data_uri"]);
  });

  it("several bad fields are all listed by path", async () => {
    const user = await createUser();
    const res = await post(
      "/v1/organizations",
      { name: "", slug: "-bad", description: "d".repeat(1001), logo_data_uri: "data:image/gif;base64,AAAA" },
      { token: user.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(new Set(errorPaths(res))).toEqual(new Set(["name", "slug", "description", "logo_data_uri"]));
    for (const e of res.body.errors) expect(e.message).toEqual(expect.any(String));
  });

  it("PATCH validates the same fields; malformed JSON is 400", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const res = await patch(
      `/v1/organizations/${org.id}`,
      { name: "", slug: "UPPER", active: "no", logo_data_uri: "data:image/gif;base64,AAAA" },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(new Set(errorPaths(res))).toEqual(new Set(["name", "slug", "active", "logo_data_uri"]));
    const bad = await api("PATCH", `/v1/organizations/${org.id}`, {
      raw: "{not json",
      headers: { "Content-Type": "application/json" },
      token: admin.accessToken,
    });
    expectProblem(bad, 400, "malformed_json");
    expect((await get(`/v1/organizations/${org.id}`, { token: admin.accessToken })).body.name).toBe(org.name);
  });

  it.each([
    ["a malformed id", "org_nope"],
    ["a well-formed id that does not exist", newId("organization")],
    ["a user id", newId("user")],
    ["an injection string", encodeURIComponent("org_' OR 1=1 --")],
  ])("GET, PATCH and DELETE of %s → 404", async (_label, id) => {
    const user = await createUser();
    expectProblem(await get(`/v1/organizations/${id}`, { token: user.accessToken }), 404, "not_found");
    expectProblem(await patch(`/v1/organizations/${id}`, { name: "x" }, { token: user.accessToken }), 404, "not_found");
    expectProblem(await del(`/v1/organizations/${id}`, { token: user.accessToken }), 404, "not_found");
  });
});

describe("security", () => {
  it("a non-member gets 404 on GET, PATCH and DELETE, exactly like a missing organization", async () => {
    const { org } = await orgWithMember();
    const stranger = await createUser();
    const missing = await get(`/v1/organizations/${newId("organization")}`, { token: stranger.accessToken });
    const res = await get(`/v1/organizations/${org.id}`, { token: stranger.accessToken });
    expectProblem(res, 404, "not_found");
    expect(res.body.detail).toBe(missing.body.detail);
    expectProblem(await patch(`/v1/organizations/${org.id}`, { name: "Mine now" }, { token: stranger.accessToken }), 404, "not_found");
    // Even with an invalid body the organization's existence is not revealed.
    expectProblem(await patch(`/v1/organizations/${org.id}`, { name: "" }, { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await put(`/v1/organizations/${org.id}/settings`, { settings: {} }, { token: stranger.accessToken }), 404, "not_found");
  });

  it("a member with the user role may read but not PATCH or DELETE (403 forbidden)", async () => {
    const { admin, member, org } = await orgWithMember();
    expect((await get(`/v1/organizations/${org.id}`, { token: member.accessToken })).status).toBe(200);
    const p = await patch(`/v1/organizations/${org.id}`, { name: "Taken over" }, { token: member.accessToken });
    expectProblem(p, 403, "forbidden");
    expectProblem(await patch(`/v1/organizations/${org.id}`, { active: false }, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: member.accessToken }), 403, "forbidden");
    const after = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(after.body).toMatchObject({ name: org.name, active: true });
  });

  it("an admin of one organization cannot touch another's", async () => {
    const a = await createUser();
    const b = await createUser();
    const orgA = await createOrg(a);
    const orgB = await createOrg(b);
    expectProblem(await get(`/v1/organizations/${orgB.id}`, { token: a.accessToken }), 404, "not_found");
    expectProblem(await patch(`/v1/organizations/${orgB.id}`, { name: "x" }, { token: a.accessToken }), 404, "not_found");
    expectProblem(await del(`/v1/organizations/${orgB.id}`, { token: a.accessToken }), 404, "not_found");
    expect((await get(`/v1/organizations/${orgB.id}`, { token: b.accessToken })).body.name).toBe(orgB.name);
    expect((await get(`/v1/organizations/${orgA.id}`, { token: a.accessToken })).status).toBe(200);
  });

  it("without a credential every route is 401; a garbage token is 401", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const calls: [string, string, unknown?][] = [
      ["POST", "/v1/organizations", { name: "x" }],
      ["GET", `/v1/organizations/${org.id}`],
      ["PATCH", `/v1/organizations/${org.id}`, { name: "x" }],
      ["DELETE", `/v1/organizations/${org.id}`],
    ];
    for (const [method, path, body] of calls) {
      const res = await api(method, path, { body });
      expectProblem(res, 401, "unauthenticated");
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
      expectProblem(await api(method, path, { body, token: "not.a.jwt" }), 401, "unauthenticated");
    }
    expect((await get(`/v1/organizations/${org.id}`, { token: user.accessToken })).body.name).toBe(org.name);
  });

  it("PAT scopes: organization:read may GET; organization_member:read may not; PATCH and DELETE need organization:write", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const read = await createPat(admin, ["organization:read"]);
    const memberRead = await createPat(admin, ["organization_member:read"]);
    const write = await createPat(admin, ["organization:write"]);

    expect((await get(`/v1/organizations/${org.id}`, { token: read.token })).status).toBe(200);
    const denied = await get(`/v1/organizations/${org.id}`, { token: memberRead.token });
    expectProblem(denied, 403, "insufficient_scope");
    expect(denied.body.detail).toContain("organization:read");

    expectProblem(await patch(`/v1/organizations/${org.id}`, { name: "x" }, { token: read.token }), 403, "insufficient_scope");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: read.token }), 403, "insufficient_scope");
    expectProblem(await post("/v1/organizations", { name: "By PAT" }, { token: read.token }), 403, "insufficient_scope");

    // A write scope includes its read.
    expect((await get(`/v1/organizations/${org.id}`, { token: write.token })).status).toBe(200);
    const renamed = await patch(`/v1/organizations/${org.id}`, { name: "Via PAT" }, { token: write.token });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.name).toBe("Via PAT");
    const created = await post("/v1/organizations", { name: `By PAT ${unique()}` }, { token: write.token });
    expect(created.status, created.text).toBe(201);
    expect(created.body.owner.id).toBe(admin.id);
  });

  it("a PAT never exceeds its user's role: organization:write on a user-role membership is 403 forbidden", async () => {
    const { member, org } = await orgWithMember();
    const write = await createPat(member, ["organization:write"]);
    expect((await get(`/v1/organizations/${org.id}`, { token: write.token })).status).toBe(200);
    expectProblem(await patch(`/v1/organizations/${org.id}`, { name: "x" }, { token: write.token }), 403, "forbidden");
    expectProblem(await del(`/v1/organizations/${org.id}`, { token: write.token }), 403, "forbidden");
  });

  it("PATCH cannot change id, owner, member_count or timestamps", async () => {
    const { admin, member, org } = await orgWithMember();
    const res = await patch(
      `/v1/organizations/${org.id}`,
      { id: newId("organization"), owner: { id: member.id }, owner_id: member.id, member_count: 999, created_at: "2000-01-01T00:00:00Z" },
      { token: admin.accessToken },
    );
    expect([200, 400]).toContain(res.status);
    const got = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(got.body).toMatchObject({ id: org.id, member_count: 2, created_at: org.created_at });
    expect(got.body.owner.id).toBe(admin.id);
  });

  it("the owner shown is the creator, not whoever is asking", async () => {
    const { admin, member, org } = await orgWithMember();
    const res = await get(`/v1/organizations/${org.id}`, { token: member.accessToken });
    expect(res.body.owner).toEqual({ id: admin.id, display_name: admin.displayName, email: admin.email });
    expect(res.text).not.toContain(member.email);
  });
});
