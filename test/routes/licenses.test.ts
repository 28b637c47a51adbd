import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { newId } from "../../src/lib/ids";
import { del, get, patch, post, put } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, createVerifiedUser, unique, uniqueEmail } from "../helpers/factories";
import { expectProblem, sortedErrorPaths } from "../helpers/problems";
import {
  assignLicense,
  createLicense,
  expireDirect,
  ISO,
  LICENSE_ID,
  LICENSE_KEY,
  platformAdmin,
  sha256Hex,
  UNKNOWN_LICENSE,
  type License,
} from "./licenses-helpers";

const licensePath = (orgId: string) => `/v1/organizations/${orgId}/license`;
const FREE = (seatsUsed: number) => ({ license_id: null, plan: "free", seats: 10, features: [], expires_at: null, status: "none", seats_used: seatsUsed });

async function ownerAndOrg() {
  const owner = await createUser();
  const org = await createOrg(owner);
  return { owner, org };
}

const withoutKey = (l: License) => {
  const { license_key: _, ...rest } = l;
  return rest;
};

/** Every page of a list, following next_page_token; asserts each page's cost. */
async function allPages(path: string, opts: { token: string; env?: Record<string, string> }, pageSize: number) {
  const items: { id: string }[] = [];
  let token = "";
  let pages = 0;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const res = await get(`${path}${sep}page_size=${pageSize}${token ? `&page_token=${encodeURIComponent(token)}` : ""}`, opts);
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(1);
    // The caller's row (for the decision, and again with the admin list inside the guard) plus page_size + 1 rows.
    expect(res.cost.rowsRead).toBeLessThanOrEqual(pageSize + 4);
    expect(res.body.items.length).toBeLessThanOrEqual(pageSize);
    items.push(...res.body.items);
    token = res.body.next_page_token;
    pages++;
  } while (token && pages < 500);
  return { items, pages };
}

describe("happy", () => {
  it("a platform admin creates a license; its key is shown once and stored as a hash", async () => {
    const admin = await platformAdmin();
    const res = await post("/v1/licenses", { plan: "business", seats: 250, features: ["sso", "audit_log"], expires_at: "2099-01-01T00:00:00Z" }, admin.as);
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(LICENSE_ID),
      plan: "business",
      seats: 250,
      features: ["sso", "audit_log"],
      expires_at: "2099-01-01T00:00:00.000Z",
      organization_id: null,
      revoked_at: null,
      key_prefix: res.body.license_key.slice(0, 10),
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
      license_key: expect.stringMatching(LICENSE_KEY),
    });
    const row = await env.DB.prepare("select * from licenses where id = ?").bind(res.body.id).first<Record<string, unknown>>();
    expect(row!.key_hash).toBe(await sha256Hex(res.body.license_key));
    expect(Object.values(row!)).not.toContain(res.body.license_key);
    expect(row!.created_by).toBe(admin.id);
  });

  it("features default to none and expires_at to never; an offset time is normalised to UTC", async () => {
    const admin = await platformAdmin();
    const res = await post("/v1/licenses", { plan: "team", seats: 5 }, admin.as);
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ features: [], expires_at: null });
    const offset = await post("/v1/licenses", { plan: "team", seats: 5, expires_at: "2099-06-01T12:00:00+02:00" }, admin.as);
    expect(offset.status, offset.text).toBe(201);
    expect(offset.body.expires_at).toBe("2099-06-01T10:00:00.000Z");
  });

  it("GET /v1/licenses/{id} returns the license without its key", async () => {
    const admin = await platformAdmin();
    const lic = await createLicense(admin, { features: ["sso"] });
    const res = await get(`/v1/licenses/${lic.id}`, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(withoutKey(lic));
    expect(res.text).not.toContain(lic.license_key);
    expect(res.cost.queries).toBe(1);
  });

  it("creating with organization_id assigns the license at once", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin, { plan: "enterprise", seats: 40, features: ["scim"], organization_id: org.id });
    expect(lic.organization_id).toBe(org.id);
    const view = await get(licensePath(org.id), { token: owner.accessToken });
    expect(view.status, view.text).toBe(200);
    expect(view.body).toEqual({ license_id: lic.id, plan: "enterprise", seats: 40, features: ["scim"], expires_at: null, status: "active", seats_used: 1 });
  });

  it("lists licenses in creation order, filtered by plan and by organization, page by page to the end", async () => {
    const admin = await platformAdmin();
    const { org } = await ownerAndOrg();
    const mine: License[] = [];
    for (let i = 0; i < 5; i++) mine.push(await createLicense(admin, { plan: "business", seats: 100 + i }));
    const assigned = await createLicense(admin, { plan: "team", organization_id: org.id });

    const byPlan = await allPages(`/v1/licenses?filter=${encodeURIComponent('plan = "business"')}`, admin.as, 2);
    expect(byPlan.pages).toBeGreaterThan(1);
    const ids = byPlan.items.map((l) => l.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(ids).toEqual(expect.arrayContaining(mine.map((l) => l.id)));
    expect(byPlan.items.every((l) => (l as unknown as License).plan === "business")).toBe(true);
    expect(JSON.stringify(byPlan.items)).not.toContain("license_key");

    const byOrg = await get(`/v1/licenses?filter=${encodeURIComponent(`organization_id = "${org.id}"`)}`, admin.as);
    expect(byOrg.status, byOrg.text).toBe(200);
    expect(byOrg.body).toEqual({ items: [withoutKey(assigned)], next_page_token: "" });

    const everything = await allPages("/v1/licenses", admin.as, 50);
    expect(everything.items.map((l) => l.id)).toEqual(expect.arrayContaining([...mine, assigned].map((l) => l.id)));
  });

  it("a page reads about page_size rows however many licenses exist, filtered or not", async () => {
    const admin = await platformAdmin();
    const base = Date.now() - 1000;
    const seeded = Array.from({ length: 600 }, (_, i) =>
      env.DB.prepare(
        "insert into licenses (id, plan, seats, features, key_hash, key_prefix, created_at, updated_at) values (?, 'team', 5, '[]', ?, 'lk_seeded', ?, ?)",
      ).bind(newId("license", base + i), `seeded-${unique()}-${i}`, base + i, base + i),
    );
    for (let i = 0; i < seeded.length; i += 200) await env.DB.batch(seeded.slice(i, i + 200));
    await createLicense(admin, { plan: "enterprise" });
    for (const query of ["", `&filter=${encodeURIComponent('plan = "enterprise"')}`]) {
      const res = await get(`/v1/licenses?page_size=10${query}`, admin.as);
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      expect(res.cost.rowsRead, query).toBeLessThanOrEqual(14);
    }
  });

  it("revoking sets revoked_at once; the organization falls back to free and sees why", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin, { seats: 30, features: ["sso"], organization_id: org.id });
    const res = await post(`/v1/licenses/${lic.id}/revoke`, undefined, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ ...withoutKey(lic), revoked_at: expect.stringMatching(ISO), updated_at: expect.stringMatching(ISO) });
    const again = await post(`/v1/licenses/${lic.id}/revoke`, undefined, admin.as);
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(res.body.revoked_at);
    expect(again.body.updated_at).toBe(res.body.updated_at);
    const view = await get(licensePath(org.id), { token: owner.accessToken });
    expect(view.body).toEqual({ license_id: lic.id, plan: "free", seats: 10, features: [], expires_at: null, status: "revoked", seats_used: 1 });
  });

  it("GET …/license with no license is the free plan, FREE_PLAN_SEATS from the configuration", async () => {
    const { owner, org } = await ownerAndOrg();
    const res = await get(licensePath(org.id), { token: owner.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(FREE(1));
    expect(res.cost.queries).toBe(1);
    const configured = await get(licensePath(org.id), { token: owner.accessToken, env: { FREE_PLAN_SEATS: "3" } });
    expect(configured.body).toEqual({ ...FREE(1), seats: 3 });
  });

  it("seats_used counts human members and pending invitations, not service accounts", async () => {
    const { owner, org } = await ownerAndOrg();
    await addMemberDirect(org.id, await createUser());
    const inv = await post(`/v1/organizations/${org.id}/invitations`, { email: uniqueEmail("pending"), send_email: false }, { token: owner.accessToken });
    expect(inv.status, inv.text).toBe(201);
    const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: "robot" }, { token: owner.accessToken });
    expect(sa.status, sa.text).toBe(201);
    const res = await get(licensePath(org.id), { token: owner.accessToken });
    expect(res.body.seats_used).toBe(3);
  });

  it("PUT assigns, replaces (freeing the old license) and is idempotent; DELETE returns to free", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const first = await createLicense(admin, { plan: "team", seats: 20, features: ["sso"], expires_at: "2099-01-01T00:00:00Z" });
    const second = await createLicense(admin, { plan: "business", seats: 50 });

    const a = await put(licensePath(org.id), { license_id: first.id }, { token: owner.accessToken });
    expect(a.status, a.text).toBe(200);
    expect(a.body).toEqual({
      license_id: first.id,
      plan: "team",
      seats: 20,
      features: ["sso"],
      expires_at: "2099-01-01T00:00:00.000Z",
      status: "active",
      seats_used: 1,
    });
    const same = await put(licensePath(org.id), { license_id: first.id }, { token: owner.accessToken });
    expect(same.status, same.text).toBe(200);
    expect(same.body).toEqual(a.body);

    const b = await put(licensePath(org.id), { license_id: second.id }, { token: owner.accessToken });
    expect(b.status, b.text).toBe(200);
    expect(b.body).toMatchObject({ license_id: second.id, plan: "business", seats: 50 });
    expect((await get(`/v1/licenses/${first.id}`, admin.as)).body.organization_id).toBeNull();
    expect((await get(`/v1/licenses/${second.id}`, admin.as)).body.organization_id).toBe(org.id);
    // The freed license serves another organization now.
    const other = await ownerAndOrg();
    await assignLicense(other.org.id, first.id, other.owner);

    const d = await del(licensePath(org.id), { token: owner.accessToken });
    expect(d.status, d.text).toBe(204);
    expect(d.text).toBe("");
    expect((await get(licensePath(org.id), { token: owner.accessToken })).body).toEqual(FREE(1));
    expect((await get(`/v1/licenses/${second.id}`, admin.as)).body.organization_id).toBeNull();
    // Idempotent, and the freed license can be assigned elsewhere.
    expect((await del(licensePath(org.id), { token: owner.accessToken })).status).toBe(204);
    await assignLicense(other.org.id, second.id, other.owner);
    expect((await get(`/v1/licenses/${first.id}`, admin.as)).body.organization_id).toBeNull();
  });

  it("an expired license falls back to the free plan and keeps its id, status and expiry", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin, { seats: 99, features: ["sso"], organization_id: org.id, expires_at: "2099-01-01T00:00:00Z" });
    await expireDirect(lic.id);
    const res = await get(licensePath(org.id), { token: owner.accessToken });
    expect(res.body).toEqual({
      license_id: lic.id,
      plan: "free",
      seats: 10,
      features: [],
      expires_at: expect.stringMatching(ISO),
      status: "expired",
      seats_used: 1,
    });
  });

  it("two organizations racing for one license: exactly one gets it", async () => {
    const admin = await platformAdmin();
    const lic = await createLicense(admin);
    const contenders = await Promise.all([ownerAndOrg(), ownerAndOrg(), ownerAndOrg()]);
    const results = await Promise.all(contenders.map(({ owner, org }) => put(licensePath(org.id), { license_id: lic.id }, { token: owner.accessToken })));
    const won = results.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    for (const r of results.filter((r) => r.status !== 200)) expectProblem(r, 409, "license_in_use");
    const winner = contenders[results.indexOf(won[0]!)]!;
    expect((await get(`/v1/licenses/${lic.id}`, admin.as)).body.organization_id).toBe(winner.org.id);
    const holders = await env.DB.prepare("select count(*) as n from licenses where id = ? and organization_id is not null").bind(lic.id).first<{ n: number }>();
    expect(holders!.n).toBe(1);
  });

  it("one organization assigning two licenses at once ends with exactly one of them", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const [a, b] = await Promise.all([createLicense(admin), createLicense(admin)]);
    const results = await Promise.all([a, b].map((l) => put(licensePath(org.id), { license_id: l.id }, { token: owner.accessToken })));
    for (const r of results) expect(r.status, r.text).toBe(200);
    const held = await env.DB.prepare("select id from licenses where organization_id = ?").bind(org.id).all<{ id: string }>();
    expect(held.results).toHaveLength(1);
  });

  it("a PAT with organization:read reads the license; organization:write assigns it", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin);
    const reader = await createPat(owner, ["organization:read"]);
    const writer = await createPat(owner, ["organization:write"]);
    expect((await get(licensePath(org.id), { token: reader.token })).status).toBe(200);
    expect((await put(licensePath(org.id), { license_id: lic.id }, { token: writer.token })).status).toBe(200);
    expect((await del(licensePath(org.id), { token: writer.token })).status).toBe(204);
  });

  it("a custom role with billing:read and billing:write manages the license", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("billing").slice(0, 30), permissions: ["billing:read", "billing:write"] },
      { token: owner.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const clerk = await createUser();
    await addMemberDirect(org.id, clerk, role.body.name);
    const lic = await createLicense(admin);
    expect((await put(licensePath(org.id), { license_id: lic.id }, { token: clerk.accessToken })).status).toBe(200);
    expect((await get(licensePath(org.id), { token: clerk.accessToken })).body.license_id).toBe(lic.id);
  });

  it("deleting the organization frees its license", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin, { organization_id: org.id });
    const res = await del(`/v1/organizations/${org.id}`, { token: owner.accessToken });
    expect(res.status, res.text).toBe(204);
    expect((await get(`/v1/licenses/${lic.id}`, admin.as)).body.organization_id).toBeNull();
  });
});

describe("errors", () => {
  it("each invalid field of a create is named", async () => {
    const admin = await platformAdmin();
    const cases: [Record<string, unknown>, string[]][] = [
      [{}, ["plan", "seats"]],
      [{ plan: "gold", seats: 0 }, ["plan", "seats"]],
      [{ plan: "team", seats: 1_000_001 }, ["seats"]],
      [{ plan: "team", seats: 1.5 }, ["seats"]],
      [{ plan: "team", seats: "10" }, ["seats"]],
      [{ plan: "team", seats: 1, features: ["sso", "sso"] }, ["features"]],
      [{ plan: "team", seats: 1, features: ["Has Space"] }, ["features.0"]],
      [{ plan: "team", seats: 1, features: "sso" }, ["features"]],
      [{ plan: "team", seats: 1, features: Array.from({ length: 51 }, (_, i) => `f${i}`) }, ["features"]],
      [{ plan: "team", seats: 1, expires_at: "tomorrow" }, ["expires_at"]],
      [{ plan: "team", seats: 1, expires_at: "2099-01-01" }, ["expires_at"]],
      [{ plan: "team", seats: 1, expires_at: "2000-01-01T00:00:00Z" }, ["expires_at"]],
      [{ plan: "team", seats: 1, organization_id: 42 }, ["organization_id"]],
    ];
    for (const [body, paths] of cases) {
      const res = await post("/v1/licenses", body, admin.as);
      expectProblem(res, 400, "validation_failed");
      expect(sortedErrorPaths(res), JSON.stringify(body)).toEqual(paths);
    }
    const fifty = await post("/v1/licenses", { plan: "team", seats: 1_000_000, features: Array.from({ length: 50 }, (_, i) => `f${i}`) }, admin.as);
    expect(fifty.status, fifty.text).toBe(201);
  });

  it("create with an unknown or malformed organization is 404; with one that holds a license, 409", async () => {
    const admin = await platformAdmin();
    for (const orgId of ["org_01JD6Q5W8ZK3H0V8N6C2Y4T1RB", "nope"])
      expectProblem(await post("/v1/licenses", { plan: "team", seats: 5, organization_id: orgId }, admin.as), 404, "not_found");
    const { org } = await ownerAndOrg();
    await createLicense(admin, { organization_id: org.id });
    expectProblem(await post("/v1/licenses", { plan: "team", seats: 5, organization_id: org.id }, admin.as), 409, "license_in_use");
    const held = await env.DB.prepare("select count(*) as n from licenses where organization_id = ?").bind(org.id).first<{ n: number }>();
    expect(held!.n).toBe(1);
  });

  it("unknown and malformed license ids are 404", async () => {
    const admin = await platformAdmin();
    for (const id of [UNKNOWN_LICENSE, "nope", "org_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"]) {
      expectProblem(await get(`/v1/licenses/${id}`, admin.as), 404, "not_found");
      expectProblem(await post(`/v1/licenses/${id}/revoke`, undefined, admin.as), 404, "not_found");
    }
  });

  it("list: bad filters and a page token from another filter are 400", async () => {
    const admin = await platformAdmin();
    for (const filter of ['seats = "1"', 'plan = "gold"', 'plan != "team"', 'organization_id:"org"', "plan"]) {
      expectProblem(await get(`/v1/licenses?filter=${encodeURIComponent(filter)}`, admin.as), 400, "invalid_filter");
    }
    await createLicense(admin, { plan: "free" });
    await createLicense(admin, { plan: "free" });
    const first = await get(`/v1/licenses?page_size=1&filter=${encodeURIComponent('plan = "free"')}`, admin.as);
    expect(first.body.next_page_token).not.toBe("");
    const token = encodeURIComponent(first.body.next_page_token);
    expectProblem(await get(`/v1/licenses?page_size=1&page_token=${token}`, admin.as), 400, "invalid_page_token");
    expectProblem(await get(`/v1/licenses?page_size=1&page_token=garbage`, admin.as), 400, "invalid_page_token");
    expectProblem(await get(`/v1/licenses?page_size=0`, admin.as), 400, "validation_failed");
  });

  it("PUT: unknown or malformed id 404, revoked or expired 403, serving another organization 409", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const as = { token: owner.accessToken };
    for (const id of [UNKNOWN_LICENSE, "nope"]) expectProblem(await put(licensePath(org.id), { license_id: id }, as), 404, "not_found");
    expectProblem(await put(licensePath(org.id), {}, as), 400, "validation_failed");
    expectProblem(await put(licensePath(org.id), { license_id: 7 }, as), 400, "validation_failed");

    const revoked = await createLicense(admin);
    await post(`/v1/licenses/${revoked.id}/revoke`, undefined, admin.as);
    expect(expectProblem(await put(licensePath(org.id), { license_id: revoked.id }, as), 403, "license_inactive").license_status).toBe("revoked");
    const expired = await createLicense(admin, { expires_at: "2099-01-01T00:00:00Z" });
    await expireDirect(expired.id);
    expectProblem(await put(licensePath(org.id), { license_id: expired.id }, as), 403, "license_inactive");

    const other = await ownerAndOrg();
    const taken = await createLicense(admin, { organization_id: other.org.id });
    expectProblem(await put(licensePath(org.id), { license_id: taken.id }, as), 409, "license_in_use");

    // None of the refusals disturbed the current assignment.
    const mine = await createLicense(admin, { organization_id: org.id });
    expectProblem(await put(licensePath(org.id), { license_id: taken.id }, as), 409, "license_in_use");
    expect((await get(licensePath(org.id), as)).body.license_id).toBe(mine.id);
    expect((await get(`/v1/licenses/${taken.id}`, admin.as)).body.organization_id).toBe(other.org.id);
  });

  it("an inactive organization reads its license but cannot change it", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin);
    const as = { token: owner.accessToken };
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, as)).status).toBe(200);
    expect((await get(licensePath(org.id), as)).status).toBe(200);
    expectProblem(await put(licensePath(org.id), { license_id: lic.id }, as), 409, "organization_inactive");
    expectProblem(await del(licensePath(org.id), as), 409, "organization_inactive");
  });
});

describe("security", () => {
  it("platform routes without a credential are 401", async () => {
    for (const [method, path] of [
      ["POST", "/v1/licenses"],
      ["GET", "/v1/licenses"],
      ["GET", `/v1/licenses/${UNKNOWN_LICENSE}`],
      ["POST", `/v1/licenses/${UNKNOWN_LICENSE}/revoke`],
    ] as const) {
      const res = method === "GET" ? await get(path) : await post(path, {});
      expectProblem(res, 401, "unauthenticated");
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
  });

  it("platform routes refuse a signed-in user who is not a platform admin, or whose listed address is unverified", async () => {
    const admin = await platformAdmin();
    const { org } = await ownerAndOrg();
    const lic = await createLicense(admin, { plan: "team", organization_id: org.id });
    const plain = await createVerifiedUser();
    const unverified = await createUser({ email: uniqueEmail("root") });
    for (const opts of [
      { token: plain.accessToken, env: admin.as.env },
      { token: unverified.accessToken, env: { PLATFORM_ADMIN_EMAILS: unverified.email } },
    ]) {
      expectProblem(await post("/v1/licenses", { plan: "team", seats: 5 }, opts), 403, "forbidden");
      // Nothing of the licenses is read, whatever the filter: only the caller's own row and the admin list.
      for (const query of ["", `?filter=${encodeURIComponent('plan = "team"')}`, `?filter=${encodeURIComponent(`organization_id = "${org.id}"`)}`]) {
        const list = await get(`/v1/licenses${query}`, opts);
        expectProblem(list, 403, "forbidden");
        expect(list.cost.rowsRead, query).toBeLessThanOrEqual(3);
      }
      // Who may ask is settled before what was asked: a bad filter or page token is 403 here, not 400.
      for (const query of [`?filter=${encodeURIComponent("nope = 1")}`, "?page_token=forged.token"]) {
        expectProblem(await get(`/v1/licenses${query}`, opts), 403, "forbidden");
      }
      const one = await get(`/v1/licenses/${lic.id}`, opts);
      expectProblem(one, 403, "forbidden");
      expect(one.cost.rowsRead).toBeLessThanOrEqual(3);
      expectProblem(await post(`/v1/licenses/${lic.id}/revoke`, undefined, opts), 403, "forbidden");
    }
    expect((await get(`/v1/licenses/${lic.id}`, admin.as)).body.revoked_at).toBeNull();
  });

  it("a refusal looks the same for an existing and an unknown license", async () => {
    const admin = await platformAdmin();
    const lic = await createLicense(admin);
    const plain = await createVerifiedUser();
    const a = await get(`/v1/licenses/${lic.id}`, { token: plain.accessToken });
    const b = await get(`/v1/licenses/${UNKNOWN_LICENSE}`, { token: plain.accessToken });
    expect({ status: a.status, code: a.body.code, ...a.cost }).toEqual({ status: b.status, code: b.body.code, ...b.cost });
  });

  it("platform routes take a session only: the admin's own PAT is 403", async () => {
    const admin = await platformAdmin();
    const pat = await createPat(admin, ["organization:write", "organization_member:write", "organization_integration:write"]);
    const opts = { token: pat.token, env: admin.as.env };
    expectProblem(await post("/v1/licenses", { plan: "team", seats: 5 }, opts), 403, "forbidden");
    expectProblem(await get("/v1/licenses", opts), 403, "forbidden");
  });

  it("organization license routes: 401 anonymous, 404 outsider, 403 user role, 403 insufficient_scope", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const lic = await createLicense(admin);
    const outsider = await createUser();
    await createOrg(outsider);
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const memberPat = await createPat(owner, ["organization_member:write"]);
    const readerPat = await createPat(owner, ["organization:read"]);
    const body = { license_id: lic.id };

    for (const res of [await get(licensePath(org.id)), await put(licensePath(org.id), body), await del(licensePath(org.id))])
      expectProblem(res, 401, "unauthenticated");
    for (const res of [
      await get(licensePath(org.id), { token: outsider.accessToken }),
      await put(licensePath(org.id), body, { token: outsider.accessToken }),
      await del(licensePath(org.id), { token: outsider.accessToken }),
    ]) {
      expectProblem(res, 404, "not_found");
    }
    for (const res of [
      await get(licensePath(org.id), { token: member.accessToken }),
      await put(licensePath(org.id), body, { token: member.accessToken }),
      await del(licensePath(org.id), { token: member.accessToken }),
    ]) {
      expectProblem(res, 403, "forbidden");
    }
    expect(expectProblem(await get(licensePath(org.id), { token: memberPat.token }), 403, "insufficient_scope").required_scope).toBe("organization:read");
    expect(expectProblem(await put(licensePath(org.id), body, { token: readerPat.token }), 403, "insufficient_scope").required_scope).toBe(
      "organization:write",
    );
    expectProblem(await del(licensePath(org.id), { token: readerPat.token }), 403, "insufficient_scope");
    // A custom role that reads billing may not assign.
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("viewer").slice(0, 30), permissions: ["billing:read"] },
      { token: owner.accessToken },
    );
    const viewer = await createUser();
    await addMemberDirect(org.id, viewer, role.body.name);
    expect((await get(licensePath(org.id), { token: viewer.accessToken })).status).toBe(200);
    expectProblem(await put(licensePath(org.id), body, { token: viewer.accessToken }), 403, "forbidden");
    // Nothing changed hands.
    expect((await get(`/v1/licenses/${lic.id}`, admin.as)).body.organization_id).toBeNull();
  });

  it("one organization cannot take, read or free another organization's license", async () => {
    const admin = await platformAdmin();
    const a = await ownerAndOrg();
    const b = await ownerAndOrg();
    const licB = await createLicense(admin, { organization_id: b.org.id });
    // B's org id under A's credentials: not found.
    expectProblem(await get(licensePath(b.org.id), { token: a.owner.accessToken }), 404, "not_found");
    expectProblem(await del(licensePath(b.org.id), { token: a.owner.accessToken }), 404, "not_found");
    expectProblem(await put(licensePath(a.org.id), { license_id: licB.id }, { token: a.owner.accessToken }), 409, "license_in_use");
    // A freeing its own (absent) license leaves B's alone.
    expect((await del(licensePath(a.org.id), { token: a.owner.accessToken })).status).toBe(204);
    expect((await get(licensePath(b.org.id), { token: b.owner.accessToken })).body.license_id).toBe(licB.id);
  });

  it("the license key appears in the create response only, and in no log line", async () => {
    const admin = await platformAdmin();
    const { owner, org } = await ownerAndOrg();
    const spies = (["log", "info", "warn", "error", "debug"] as const).map((m) => vi.spyOn(console, m));
    try {
      const lic = await createLicense(admin, { organization_id: org.id });
      const responses = [
        await get(`/v1/licenses/${lic.id}`, admin.as),
        await get("/v1/licenses", admin.as),
        await get(licensePath(org.id), { token: owner.accessToken }),
        await post(`/v1/licenses/${lic.id}/revoke`, undefined, admin.as),
        await post(`/v1/licenses/${lic.id}/deployments`, { name: "x", region: "y", version: "z" }, { token: lic.license_key }),
      ];
      for (const res of responses) {
        expect(res.text).not.toContain(lic.license_key);
        expect(res.text).not.toContain("license_key");
        expect(res.text).not.toContain(await sha256Hex(lic.license_key));
      }
      const logged = spies.flatMap((s) => s.mock.calls.map((c) => c.map(String).join(" "))).join("\n");
      expect(logged).not.toContain(lic.license_key);
    } finally {
      for (const s of spies) s.mockRestore();
    }
  });
});
