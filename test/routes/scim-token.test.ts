import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { SCIM_LOG_PRUNE_BATCH, SCIM_LOG_RETENTION_MS } from "../../src/routes/identity-providers/scim.service";
import { del, get, patch, post, testEnv } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { createRole } from "./members-helpers";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const configsPath = (orgId: string) => `/v1/organizations/${orgId}/identity-provider-configs`;
const tokenPath = (orgId: string, idpId: string) => `${configsPath(orgId)}/${idpId}/scim-token`;
const logsPath = (orgId: string, idpId: string, query = "") => `${configsPath(orgId)}/${idpId}/scim-logs${query}`;
const SPC = "/scim/v2/ServiceProviderConfig";

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

async function createIdp(admin: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(
    configsPath(orgId),
    { name: `Okta ${unique()}`, saml_entity_id: "http://www.okta.com/exk123", scim_enabled: true, ...body },
    { token: admin.accessToken },
  );
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string } & Record<string, unknown>;
}

async function mint(admin: { accessToken: string }, orgId: string, idpId: string): Promise<string> {
  const res = await post(tokenPath(orgId, idpId), undefined, { token: admin.accessToken });
  expect(res.status, res.text).toBe(200);
  return res.body.token as string;
}

/** An organization with a SCIM-enabled config and its token. */
async function directory() {
  const { admin, org } = await adminAndOrg();
  const idp = await createIdp(admin, org.id);
  const token = await mint(admin, org.id, idp.id);
  return { admin, org, idp, token };
}

const configRow = (id: string) =>
  env.DB.prepare("select scim_token_hash, scim_token_prefix, scim_token_created_at from identity_provider_configs where id = ?")
    .bind(id)
    .first<{ scim_token_hash: string | null; scim_token_prefix: string | null; scim_token_created_at: number | null }>();

async function insertLogs(configId: string, orgId: string, rows: { status: number; createdAt?: number }[]) {
  const stmt = env.DB.prepare(
    "insert into scim_logs (id, config_id, organization_id, method, path, status, summary, created_at) values (?, ?, ?, 'GET', '/scim/v2/Users', ?, 'seeded', ?)",
  );
  const now = Date.now();
  const ids: string[] = [];
  const batch = rows.map((r, i) => {
    const at = r.createdAt ?? now - (rows.length - i) * 1000;
    const id = newId("scimLog", at);
    ids.push(id);
    return stmt.bind(id, configId, orgId, r.status, at);
  });
  for (let i = 0; i < batch.length; i += 500) await env.DB.batch(batch.slice(i, i + 500));
  return ids;
}

async function cron() {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), testEnv(), ctx);
  await waitOnExecutionContext(ctx);
}

describe("happy", () => {
  it("POST …/scim-token returns the config and a scim_ token once; only its hash is stored", async () => {
    const { admin, org } = await adminAndOrg();
    const idp = await createIdp(admin, org.id);
    const res = await post(tokenPath(org.id, idp.id), undefined, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    const { token, scim_token_prefix, scim_token_created_at, ...config } = res.body;
    expect(token).toMatch(/^scim_[A-Za-z0-9_-]{40,}$/);
    expect(scim_token_prefix).toBe(token.slice(0, 12));
    expect(scim_token_created_at).toMatch(ISO);
    const { updated_at: _a, ...before } = idp;
    const { updated_at: _b, ...after } = config;
    expect(after).toEqual(before);
    const row = await configRow(idp.id);
    expect(row!.scim_token_hash).toBe(await sha256Hex(token));
    expect(row!.scim_token_prefix).toBe(scim_token_prefix);
    // Never shown again.
    const again = await get(`${configsPath(org.id)}/${idp.id}`, { token: admin.accessToken });
    expect(again.text).not.toContain(token);
    expect(again.text).not.toContain(row!.scim_token_hash!);
  });

  it("the token works on /scim/v2 at once; a new token replaces it and the old one is refused on its next request", async () => {
    const { admin, org, idp, token } = await directory();
    expect((await get(SPC, { token })).status).toBe(200);
    const second = await mint(admin, org.id, idp.id);
    expect(second).not.toBe(token);
    const old = await get(SPC, { token });
    expect(old.status).toBe(401);
    expect(old.headers.get("content-type")).toContain("application/scim+json");
    expect(old.body).toMatchObject({ schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "401" });
    expect((await get(SPC, { token: second })).status).toBe(200);
  });

  it("each authenticated SCIM request is logged; the log lists newest first, keyset paged to the end", async () => {
    const { admin, org, idp, token } = await directory();
    await get(SPC, { token });
    await get("/scim/v2/Schemas/urn:nope", { token });
    await get("/scim/v2/ResourceTypes?filter=x", { token });
    await get("/scim/v2/ResourceTypes/User?secret=abc", { token });
    // Not logged: no token names this config.
    await get(SPC, { token: "scim_unknown" });

    const first = await get(logsPath(org.id, idp.id, "?page_size=3"), { token: admin.accessToken });
    expect(first.status, first.text).toBe(200);
    expect(first.cost.queries).toBe(1);
    expect(first.body.items).toHaveLength(3);
    expect(first.body.next_page_token).not.toBe("");
    expect(first.body.items[0]).toEqual({
      id: expect.stringMatching(/^scl_/),
      method: "GET",
      path: "/scim/v2/ResourceTypes/User",
      status: 200,
      summary: "read ResourceType User",
      created_at: expect.stringMatching(ISO),
    });
    expect(first.body.items.map((i: { status: number }) => i.status)).toEqual([200, 403, 404]);
    // No query string in the log (filters and parameters may carry personal data).
    expect(JSON.stringify(first.body)).not.toContain("secret=abc");
    const rest = await get(logsPath(org.id, idp.id, `?page_size=3&page_token=${encodeURIComponent(first.body.next_page_token)}`), { token: admin.accessToken });
    expect(rest.status, rest.text).toBe(200);
    expect(rest.body.items.map((i: { path: string; status: number }) => [i.path, i.status])).toEqual([[SPC, 200]]);
    expect(rest.body.next_page_token).toBe("");
    // Token never logged.
    expect(JSON.stringify([first.body, rest.body])).not.toContain(token);
  });

  it("filters on status: `status = 404`, also quoted; each page is one query reading about page_size rows", async () => {
    const { admin, org, idp } = await directory();
    await insertLogs(idp.id, org.id, [
      ...Array.from({ length: 30 }, () => ({ status: 200 })),
      { status: 404 },
      { status: 409 },
      { status: 404 },
      { status: 201 },
    ]);
    const list = async (filter: string, extra = "") => {
      const res = await get(logsPath(org.id, idp.id, `?filter=${encodeURIComponent(filter)}${extra}`), { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      return res;
    };
    expect((await list("status = 404")).body.items.map((i: { status: number }) => i.status)).toEqual([404, 404]);
    expect((await list('status = "409"')).body.items.map((i: { status: number }) => i.status)).toEqual([409]);
    expect((await list("status=201")).body.items.map((i: { status: number }) => i.status)).toEqual([201]);
    expect((await list("status = 500")).body.items).toEqual([]);
    const paged = await list("status = 404", "&page_size=1");
    expect(paged.cost.queries).toBe(1);
    // The config row, the page (page_size + 1) and the seam's membership: not the 30 rows of 200s.
    expect(paged.cost.rowsRead).toBeLessThan(12);
    const next = await get(
      logsPath(org.id, idp.id, `?filter=${encodeURIComponent("status = 404")}&page_size=1&page_token=${encodeURIComponent(paged.body.next_page_token)}`),
      {
        token: admin.accessToken,
      },
    );
    expect(next.body.items).toHaveLength(1);
    expect(next.body.next_page_token).toBe("");
    // A token issued for one filter is refused with another.
    const other = await get(
      logsPath(org.id, idp.id, `?filter=${encodeURIComponent("status = 200")}&page_token=${encodeURIComponent(paged.body.next_page_token)}`),
      { token: admin.accessToken },
    );
    expectProblem(other, 400, "invalid_page_token");
  });

  it("a page's rows read do not grow with the log", async () => {
    const { admin, org, idp } = await directory();
    await insertLogs(
      idp.id,
      org.id,
      Array.from({ length: 1500 }, () => ({ status: 200 })),
    );
    const res = await get(logsPath(org.id, idp.id, "?page_size=10"), { token: admin.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(10);
    expect(res.cost.queries).toBe(1);
    expect(res.cost.rowsRead).toBeLessThan(25);
  });

  it(`the cron deletes log entries older than 30 days, at most ${SCIM_LOG_PRUNE_BATCH} a run, and keeps the rest`, async () => {
    const { org, idp } = await directory();
    const now = Date.now();
    const [old1, old2] = await insertLogs(idp.id, org.id, [
      { status: 200, createdAt: now - SCIM_LOG_RETENTION_MS - 60_000 },
      { status: 500, createdAt: now - SCIM_LOG_RETENTION_MS - 1000 },
    ]);
    const [fresh] = await insertLogs(idp.id, org.id, [{ status: 200, createdAt: now - SCIM_LOG_RETENTION_MS + 3_600_000 }]);
    await cron();
    const left = await env.DB.prepare("select id from scim_logs where id in (?, ?, ?)").bind(old1, old2, fresh).all<{ id: string }>();
    expect(left.results.map((r) => r.id)).toEqual([fresh]);
  });
});

describe("errors", () => {
  it("another organization's config, an unknown id and a malformed id are 404, for the token and the logs", async () => {
    const { admin, org } = await adminAndOrg();
    const b = await directory();
    for (const id of [b.idp.id, newId("identityProvider"), "nope"]) {
      expectProblem(await post(tokenPath(org.id, id), undefined, { token: admin.accessToken }), 404, "not_found");
      expectProblem(await get(logsPath(org.id, id), { token: admin.accessToken }), 404, "not_found");
    }
    // B's token is untouched.
    expect((await get(SPC, { token: b.token })).status).toBe(200);
  });

  it("invalid filters are 400 invalid_filter", async () => {
    const { admin, org, idp } = await directory();
    for (const f of [
      'method = "GET"',
      "status = 4040",
      'status = "abc"',
      'status:"4"',
      "status != 200",
      "status > 400",
      "status = 404 AND status = 409",
      "status = 404 OR status = 409",
    ]) {
      expectProblem(await get(logsPath(org.id, idp.id, `?filter=${encodeURIComponent(f)}`), { token: admin.accessToken }), 400, "invalid_filter");
    }
  });
});

describe("security", () => {
  it("no token, a bad token, /v1 credentials on /scim/v2 → 401; a SCIM token on /v1 → 401", async () => {
    const { admin, org, token } = await directory();
    expect((await get(SPC)).status).toBe(401);
    expect((await get(SPC, { token: "scim_forged" })).status).toBe(401);
    expect((await get(SPC, { token: admin.accessToken })).status).toBe(401);
    const pat = await createPat(admin, ["organization:read", "organization:write"]);
    expect((await get(SPC, { token: pat.token })).status).toBe(401);
    const r = await get(SPC, { headers: { Authorization: `Basic ${btoa(`x:${token}`)}` } });
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toContain("Bearer");

    expectProblem(await get(`/v1/organizations/${org.id}`, { token }), 401, "unauthenticated");
    expectProblem(await get("/v1/me", { token }), 401, "unauthenticated");
  });

  it("a config with scim_enabled false: its token gets 403, and works again once enabled", async () => {
    const { admin, org, idp, token } = await directory();
    expect((await patch(`${configsPath(org.id)}/${idp.id}`, { scim_enabled: false }, { token: admin.accessToken })).status).toBe(200);
    const res = await get(SPC, { token });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "403" });
    expect((await patch(`${configsPath(org.id)}/${idp.id}`, { scim_enabled: true }, { token: admin.accessToken })).status).toBe(200);
    expect((await get(SPC, { token })).status).toBe(200);
  });

  it("deleting the config ends its token", async () => {
    const { admin, org, idp, token } = await directory();
    expect((await del(`${configsPath(org.id)}/${idp.id}`, { token: admin.accessToken })).status).toBe(204);
    expect((await get(SPC, { token })).status).toBe(401);
  });

  it("roles and scopes: minting needs sso:write, the log sso:read", async () => {
    const { admin, org, idp } = await directory();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    expectProblem(await post(tokenPath(org.id, idp.id), undefined, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await get(logsPath(org.id, idp.id), { token: member.accessToken }), 403, "forbidden");

    const reader = await createUser();
    const role = await createRole(admin, org.id, ["organization:read", "sso:read"]);
    await addMemberDirect(org.id, reader, role.name);
    expectProblem(await post(tokenPath(org.id, idp.id), undefined, { token: reader.accessToken }), 403, "forbidden");
    expect((await get(logsPath(org.id, idp.id), { token: reader.accessToken })).status).toBe(200);

    const readPat = await createPat(admin, ["organization:read"]);
    expectProblem(await post(tokenPath(org.id, idp.id), undefined, { token: readPat.token }), 403, "insufficient_scope");
    expect((await get(logsPath(org.id, idp.id), { token: readPat.token })).status).toBe(200);
    const memberPat = await createPat(admin, ["organization_member:read"]);
    expectProblem(await get(logsPath(org.id, idp.id), { token: memberPat.token }), 403, "insufficient_scope");
    const writePat = await createPat(admin, ["organization:write"]);
    expect((await post(tokenPath(org.id, idp.id), undefined, { token: writePat.token })).status).toBe(200);

    expect((await post(tokenPath(org.id, idp.id))).status).toBe(401);
    expect((await get(logsPath(org.id, idp.id))).status).toBe(401);
  });

  it("a refused request's cost does not depend on the other organization's log", async () => {
    const { admin } = await adminAndOrg();
    const b = await directory();
    await insertLogs(
      b.idp.id,
      b.org.id,
      Array.from({ length: 50 }, () => ({ status: 200 })),
    );
    const res = await get(logsPath(b.org.id, b.idp.id), { token: admin.accessToken });
    expect(res.status).toBe(404);
    expect(res.cost.rowsRead).toBeLessThan(5);
  });
});

describe("SCIM-managed members and /v1 (409)", () => {
  async function managed() {
    const { admin, org, idp } = await directory();
    const person = await createUser();
    await addMemberDirect(org.id, person, "user");
    await env.DB.prepare("update members set scim_config_id = ? where organization_id = ? and member_id = ?").bind(idp.id, org.id, person.id).run();
    return { admin, org, idp, person };
  }
  const memberPath = (orgId: string, id: string) => `/v1/organizations/${orgId}/members/${id}`;

  it("PATCH and DELETE of a SCIM-managed member → 409 conflict naming the config; leaving is refused too", async () => {
    const { admin, org, idp, person } = await managed();
    const p = await patch(memberPath(org.id, person.id), { role: "admin" }, { token: admin.accessToken });
    expectProblem(p, 409, "conflict");
    expect(p.body.detail).toContain(idp.id);
    expect(p.body.identity_provider_config_id).toBe(idp.id);
    expect(p.cost.queries).toBe(1);
    expectProblem(await del(memberPath(org.id, person.id), { token: admin.accessToken }), 409, "conflict");
    expectProblem(await del(memberPath(org.id, person.id), { token: person.accessToken }), 409, "conflict");
    const still = await get(memberPath(org.id, person.id), { token: admin.accessToken });
    expect(still.status).toBe(200);
    expect(still.body.role).toBe("user");
  });

  it("once released (scim_config_id cleared), /v1 manages the member again", async () => {
    const { admin, org, person } = await managed();
    await env.DB.prepare("update members set scim_config_id = null where organization_id = ? and member_id = ?").bind(org.id, person.id).run();
    expect((await patch(memberPath(org.id, person.id), { role: "admin" }, { token: admin.accessToken })).status).toBe(200);
    expect((await del(memberPath(org.id, person.id), { token: admin.accessToken })).status).toBe(204);
  });

  it("the permission checks still come first: a caller who may not manage the member gets 403, not 409", async () => {
    const { org, person } = await managed();
    const plain = await createUser();
    await addMemberDirect(org.id, plain, "user");
    expectProblem(await patch(memberPath(org.id, person.id), { role: "user" }, { token: plain.accessToken }), 403, "forbidden");
  });
});
