import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, get, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser } from "../helpers/factories";
import { expectProblem, sortedErrorPaths } from "../helpers/problems";
import { assignLicense, createLicense, DEPLOYMENT_ID, expireDirect, ISO, platformAdmin, UNKNOWN_LICENSE, type License } from "./licenses-helpers";

const heartbeatPath = (licenseId: string) => `/v1/licenses/${licenseId}/deployments`;
const listPath = (orgId: string) => `/v1/organizations/${orgId}/deployments`;
const heartbeat = (license: { id: string }, key: string | undefined, body: Record<string, unknown>) => post(heartbeatPath(license.id), body, { token: key });

async function licensedOrg(body: Record<string, unknown> = {}) {
  const admin = await platformAdmin();
  const owner = await createUser();
  const org = await createOrg(owner);
  const license = await createLicense(admin, { organization_id: org.id, ...body });
  return { admin, owner, org, license };
}

/** Deployments written straight to D1, for list sizes the API would take long to build. */
async function seedDeployments(licenseId: string, count: number) {
  const base = Date.now() - count;
  const stmts = Array.from({ length: count }, (_, i) =>
    env.DB.prepare(
      "insert into deployments (id, license_id, name, region, version, last_seen_at, created_at, updated_at) values (?, ?, ?, 'eu', '1.0', ?, ?, ?)",
    ).bind(newId("deployment", base + i), licenseId, `seeded-${i}`, base + i, base + i, base + i),
  );
  for (let i = 0; i < stmts.length; i += 200) await env.DB.batch(stmts.slice(i, i + 200));
}

async function allPages(orgId: string, token: string, pageSize: number) {
  const items: { id: string }[] = [];
  let next = "";
  let pages = 0;
  do {
    const res = await get(`${listPath(orgId)}?page_size=${pageSize}${next ? `&page_token=${encodeURIComponent(next)}` : ""}`, { token });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(1);
    // The caller's membership, the guard, the license's id and page_size + 1 deployments.
    expect(res.cost.rowsRead).toBeLessThanOrEqual(pageSize + 6);
    items.push(...res.body.items);
    next = res.body.next_page_token;
    pages++;
  } while (next && pages < 500);
  return { items, pages };
}

describe("happy", () => {
  it("the first call registers a deployment (201), later ones with the same name heartbeat it (200)", async () => {
    const { license } = await licensedOrg();
    const first = await heartbeat(license, license.license_key, { name: "eu-prod-1", region: "eu-west-1", version: "2.4.1" });
    expect(first.status, first.text).toBe(201);
    expect(first.body).toEqual({
      id: expect.stringMatching(DEPLOYMENT_ID),
      license_id: license.id,
      name: "eu-prod-1",
      region: "eu-west-1",
      version: "2.4.1",
      last_seen_at: expect.stringMatching(ISO),
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    await new Promise((r) => setTimeout(r, 5));
    const again = await heartbeat(license, license.license_key, { name: "eu-prod-1", region: "eu-central-1", version: "2.5.0" });
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual({
      ...first.body,
      region: "eu-central-1",
      version: "2.5.0",
      last_seen_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(Date.parse(again.body.last_seen_at)).toBeGreaterThan(Date.parse(first.body.last_seen_at));
    expect(again.body.created_at).toBe(first.body.created_at);
    const rows = await env.DB.prepare("select count(*) as n from deployments where license_id = ?").bind(license.id).first<{ n: number }>();
    expect(rows!.n).toBe(1);
  });

  it("names are per license: another name is another deployment, the same name under another license too", async () => {
    const a = await licensedOrg();
    const b = await licensedOrg();
    const body = { name: "primary", region: "us", version: "1" };
    const one = await heartbeat(a.license, a.license.license_key, body);
    const two = await heartbeat(a.license, a.license.license_key, { ...body, name: "secondary" });
    const three = await heartbeat(b.license, b.license.license_key, body);
    for (const r of [one, two, three]) expect(r.status, r.text).toBe(201);
    expect(new Set([one.body.id, two.body.id, three.body.id]).size).toBe(3);
  });

  it("concurrent first heartbeats of one name leave one deployment", async () => {
    const { license } = await licensedOrg();
    const results = await Promise.all(Array.from({ length: 5 }, () => heartbeat(license, license.license_key, { name: "racer", region: "r", version: "1" })));
    for (const r of results) expect([200, 201]).toContain(r.status);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
  });

  it("a license not yet assigned to an organization registers deployments too", async () => {
    const admin = await platformAdmin();
    const license = await createLicense(admin);
    expect((await heartbeat(license, license.license_key, { name: "n", region: "r", version: "v" })).status).toBe(201);
  });

  it("the organization lists its license's deployments page by page, one round trip each", async () => {
    const { owner, org, license } = await licensedOrg();
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await heartbeat(license, license.license_key, { name: `node-${i}`, region: "eu", version: "1" })).body.id);
    const { items, pages } = await allPages(org.id, owner.accessToken, 2);
    expect(pages).toBe(3);
    expect(items.map((d) => d.id)).toEqual(made);
    expect(items[0]).toEqual({
      id: made[0],
      license_id: license.id,
      name: "node-0",
      region: "eu",
      version: "1",
      last_seen_at: expect.stringMatching(ISO),
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
  });

  it("a page reads about page_size rows whatever the number of deployments", async () => {
    const { owner, org, license } = await licensedOrg();
    await seedDeployments(license.id, 600);
    const res = await get(`${listPath(org.id)}?page_size=10`, { token: owner.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(10);
    expect(res.cost.queries).toBe(1);
    expect(res.cost.rowsRead).toBeLessThanOrEqual(16);
    const next = await get(`${listPath(org.id)}?page_size=10&page_token=${encodeURIComponent(res.body.next_page_token)}`, { token: owner.accessToken });
    expect(next.cost.rowsRead).toBeLessThanOrEqual(16);
    expect(next.body.items[0].name).toBe("seeded-10");
  });

  it("no license: an empty list; a replaced license: the new license's deployments only", async () => {
    const admin = await platformAdmin();
    const owner = await createUser();
    const org = await createOrg(owner);
    expect((await get(listPath(org.id), { token: owner.accessToken })).body).toEqual({ items: [], next_page_token: "" });
    const oldLicense = await createLicense(admin, { organization_id: org.id });
    await heartbeat(oldLicense, oldLicense.license_key, { name: "old", region: "r", version: "1" });
    const newLicense = await createLicense(admin);
    await heartbeat(newLicense, newLicense.license_key, { name: "new", region: "r", version: "1" });
    await assignLicense(org.id, newLicense.id, owner);
    const res = await get(listPath(org.id), { token: owner.accessToken });
    expect(res.body.items.map((d: { name: string }) => d.name)).toEqual(["new"]);
  });

  it("a revoked license's deployments stay listed", async () => {
    const { admin, owner, org, license } = await licensedOrg();
    await heartbeat(license, license.license_key, { name: "kept", region: "r", version: "1" });
    await post(`/v1/licenses/${license.id}/revoke`, undefined, admin.as);
    expect((await get(listPath(org.id), { token: owner.accessToken })).body.items).toHaveLength(1);
  });
});

describe("errors", () => {
  it("each invalid field is named", async () => {
    const { license } = await licensedOrg();
    const cases: [unknown, string[]][] = [
      [{}, ["name", "region", "version"]],
      [{ name: "", region: " ", version: "1" }, ["name", "region"]],
      [{ name: "a\nb", region: "r", version: "1\u0000" }, ["name", "version"]],
      [{ name: "x".repeat(101), region: "r".repeat(65), version: "v".repeat(65) }, ["name", "region", "version"]],
      [{ name: 1, region: ["r"], version: null }, ["name", "region", "version"]],
    ];
    for (const [body, paths] of cases) {
      const res = await heartbeat(license, license.license_key, body as Record<string, unknown>);
      expectProblem(res, 400, "validation_failed");
      expect(sortedErrorPaths(res), JSON.stringify(body)).toEqual(paths);
    }
    const ok = await heartbeat(license, license.license_key, { name: "x".repeat(100), region: "r".repeat(64), version: "v".repeat(64) });
    expect(ok.status, ok.text).toBe(201);
  });

  it("a revoked or expired license is refused with 403 license_inactive", async () => {
    const revoked = await licensedOrg();
    const body = { name: "n", region: "r", version: "v" };
    expect((await heartbeat(revoked.license, revoked.license.license_key, body)).status).toBe(201);
    await post(`/v1/licenses/${revoked.license.id}/revoke`, undefined, revoked.admin.as);
    expect(expectProblem(await heartbeat(revoked.license, revoked.license.license_key, body), 403, "license_inactive").license_status).toBe("revoked");

    const expired = await licensedOrg({ expires_at: "2099-01-01T00:00:00Z" });
    await expireDirect(expired.license.id);
    expect(expectProblem(await heartbeat(expired.license, expired.license.license_key, body), 403, "license_inactive").license_status).toBe("expired");
    const rows = await env.DB.prepare("select count(*) as n from deployments where license_id = ?").bind(expired.license.id).first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });

  it("the organization list: a forged page token or a bad page_size is 400", async () => {
    const { owner, org } = await licensedOrg();
    expectProblem(await get(`${listPath(org.id)}?page_token=forged`, { token: owner.accessToken }), 400, "invalid_page_token");
    expectProblem(await get(`${listPath(org.id)}?page_size=-1`, { token: owner.accessToken }), 400, "validation_failed");
  });
});

describe("security", () => {
  const body = { name: "n", region: "r", version: "v" };

  it("without the license's own key: 401 with WWW-Authenticate", async () => {
    const { license } = await licensedOrg();
    const other = await licensedOrg();
    const attempts = [
      await post(heartbeatPath(license.id), body),
      await api("POST", heartbeatPath(license.id), { body, headers: { Authorization: `Basic ${btoa("a:b")}` } }),
      await heartbeat(license, "lk_not-a-real-key-at-all", body),
      await heartbeat(license, other.license.license_key, body),
      await heartbeat({ id: UNKNOWN_LICENSE }, license.license_key, body),
      await heartbeat({ id: "nope" }, license.license_key, body),
      // Org credentials are not license keys.
      await heartbeat(license, other.owner.accessToken, body),
    ];
    for (const res of attempts) {
      expectProblem(res, 401, "unauthenticated");
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
    const rows = await env.DB.prepare("select count(*) as n from deployments where license_id in (?, ?)")
      .bind(license.id, other.license.id)
      .first<{ n: number }>();
    expect(rows!.n).toBe(0);
  });

  it("an unknown key and another license's key get the same answer and the same Server-Timing", async () => {
    const { license } = await licensedOrg();
    const other = await licensedOrg();
    const unknown = await heartbeat(license, `lk_${"A".repeat(43)}`, body);
    const foreign = await heartbeat(license, other.license.license_key, body);
    const seen = (r: typeof unknown) => ({ status: r.status, code: r.body.code, detail: r.body.detail, queries: r.cost.queries, rowsRead: r.cost.rowsRead });
    expect(seen(foreign)).toEqual(seen(unknown));
  });

  it("the organization list: 401 anonymous, 404 outsider, 403 user role, 403 insufficient_scope", async () => {
    const { owner, org, license } = await licensedOrg();
    await heartbeat(license, license.license_key, body);
    const outsider = await createUser();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const memberPat = await createPat(owner, ["organization_member:read"]);
    const readerPat = await createPat(owner, ["organization:read"]);
    expectProblem(await get(listPath(org.id)), 401, "unauthenticated");
    const refused = await get(listPath(org.id), { token: outsider.accessToken });
    expectProblem(refused, 404, "not_found");
    expectProblem(await get(listPath(org.id), { token: member.accessToken }), 403, "forbidden");
    expectProblem(await get(listPath(org.id), { token: memberPat.token }), 403, "insufficient_scope");
    expect((await get(listPath(org.id), { token: readerPat.token })).body.items).toHaveLength(1);
  });

  it("another organization's deployments are not listed under one's own organization", async () => {
    const a = await licensedOrg();
    const b = await licensedOrg();
    await heartbeat(b.license, b.license.license_key, body);
    expect((await get(listPath(a.org.id), { token: a.owner.accessToken })).body.items).toEqual([]);
    expectProblem(await get(listPath(b.org.id), { token: a.owner.accessToken }), 404, "not_found");
  });

  it("no response carries the license key", async () => {
    const { owner, org, license } = await licensedOrg();
    const responses = [
      await heartbeat(license, license.license_key, body),
      await heartbeat(license, license.license_key, body),
      await get(listPath(org.id), { token: owner.accessToken }),
    ];
    for (const res of responses) expect(res.text).not.toContain((license as License).license_key);
  });
});
