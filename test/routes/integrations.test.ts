import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decryptString } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { integrationSecretsAad } from "../../src/routes/integrations/integrations.service";
import { api, del, get, patch, post, testEnv } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const INT_ID = /^int_[0-9A-HJKMNP-TV-Z]{26}$/;

const intPath = (orgId: string) => `/v1/organizations/${orgId}/integrations`;
const mappingPath = (orgId: string, id: string) => `${intPath(orgId)}/${id}/environment-mapping`;

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

type Integration = {
  id: string;
  kind: string;
  display_name: string;
  config: Record<string, unknown>;
  secrets: Record<string, { set: true; updated_at: string }>;
  environment_mapping: Record<string, string>;
  created_at: string;
  updated_at: string;
};

async function install(caller: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(
    intPath(orgId),
    { kind: "vercel", display_name: `Vercel ${unique()}`, config: { team: "acme" }, ...body },
    { token: caller.accessToken },
  );
  expect(res.status, res.text).toBe(201);
  return res.body as Integration;
}

/** Projects are seeded straight into D1: the projects API is not what is under test here. */
async function seedProject(orgId: string, opts: { private?: boolean } = {}) {
  const id = newId("project");
  const now = Date.now();
  const name = `Project ${unique()}`;
  await env.DB.prepare("insert into projects (id, organization_id, name, name_key, private, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?)")
    .bind(id, orgId, name, name.toLowerCase(), opts.private ? 1 : 0, now, now)
    .run();
  return id;
}

const mappingRows = (integrationId: string) =>
  env.DB.prepare("select environment, project_id, organization_id from integration_environments where integration_id = ? order by environment")
    .bind(integrationId)
    .all()
    .then((r) => r.results);

let logged: string[] = [];
beforeEach(() => {
  logged = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

describe("happy", () => {
  it("POST installs an integration; secrets are sealed in one blob, shown only as set markers, never logged", async () => {
    const { admin, org } = await adminAndOrg();
    const token = `tok-${unique()}-value`;
    const other = `sec-${unique()}-value`;
    const config = { team_id: "team_1", nested: { regions: ["iad1", "fra1"], enabled: true }, count: 3 };
    const res = await post(
      intPath(org.id),
      { kind: "vercel", display_name: "Vercel (prod)", config, secrets: { access_token: token, "webhook.secret": other } },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(INT_ID),
      kind: "vercel",
      display_name: "Vercel (prod)",
      config,
      secrets: { access_token: { set: true, updated_at: expect.stringMatching(ISO) }, "webhook.secret": { set: true, updated_at: expect.stringMatching(ISO) } },
      environment_mapping: {},
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    for (const secret of [token, other]) expect(res.text).not.toContain(secret);

    const stored = await env.DB.prepare("select * from integrations where id = ?").bind(res.body.id).first<Record<string, unknown>>();
    for (const value of Object.values(stored!)) for (const secret of [token, other]) expect(String(value)).not.toContain(secret);
    expect(stored!.created_by).toBe(admin.id);
    const opened = JSON.parse(await decryptString(testEnv().ENCRYPTION_KEY!, String(stored!.secrets_ciphertext), integrationSecretsAad(org.id, res.body.id)));
    expect(opened).toEqual({ access_token: token, "webhook.secret": other });
    // Sealed for this organization and integration only.
    await expect(
      decryptString(testEnv().ENCRYPTION_KEY!, String(stored!.secrets_ciphertext), integrationSecretsAad(newId("organization"), res.body.id)),
    ).rejects.toThrow();

    const one = await get(`${intPath(org.id)}/${res.body.id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(res.body);
    const list = await get(intPath(org.id), { token: admin.accessToken });
    expect(list.body.items).toEqual([res.body]);
    for (const r of [one, list]) for (const secret of [token, other]) expect(r.text).not.toContain(secret);
    for (const secret of [token, other]) expect(logged.join("\n")).not.toContain(secret);
  });

  it("secrets are optional; an organization may install several of one kind", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await install(admin, org.id, { kind: "github", config: {} });
    const b = await install(admin, org.id, { kind: "github", config: {} });
    expect(a.secrets).toEqual({});
    expect(b.id).not.toBe(a.id);
    const stored = await env.DB.prepare("select secrets_ciphertext from integrations where id = ?").bind(a.id).first();
    expect(stored!.secrets_ciphertext).toBeNull();
  });

  it("environment mapping merges: keys given are set, null removes, others kept", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const i = await install(admin, org.id);
    const [p1, p2, p3] = [await seedProject(org.id), await seedProject(org.id), await seedProject(org.id, { private: true })];

    const first = await patch(mappingPath(org.id, i.id), { mapping: { production: p1, preview: p2 } }, t);
    expect(first.status, first.text).toBe(200);
    expect(first.body).toMatchObject({ id: i.id, kind: i.kind, config: i.config, environment_mapping: { production: p1, preview: p2 } });
    expect(Date.parse(first.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(i.updated_at));

    const second = await patch(mappingPath(org.id, i.id), { mapping: { preview: null, staging: p3, production: p2 } }, t);
    expect(second.status, second.text).toBe(200);
    expect(second.body.environment_mapping).toEqual({ production: p2, staging: p3 });
    // Removing an environment that is not mapped is a no-op.
    const third = await patch(mappingPath(org.id, i.id), { mapping: { "never-mapped": null } }, t);
    expect(third.status, third.text).toBe(200);
    expect(third.body.environment_mapping).toEqual({ production: p2, staging: p3 });

    expect((await get(`${intPath(org.id)}/${i.id}`, t)).body.environment_mapping).toEqual({ production: p2, staging: p3 });
    expect(await mappingRows(i.id)).toEqual([
      { environment: "production", project_id: p2, organization_id: org.id },
      { environment: "staging", project_id: p3, organization_id: org.id },
    ]);
  });

  it("one project may serve several environments and several integrations; names keep their case and symbols", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const [a, b] = [await install(admin, org.id), await install(admin, org.id, { kind: "aws_marketplace" })];
    const p = await seedProject(org.id);
    const mapping = { Production: p, "preview/feature-x": p, "Ünïcode env": p };
    expect((await patch(mappingPath(org.id, a.id), { mapping }, t)).body.environment_mapping).toEqual(mapping);
    expect((await patch(mappingPath(org.id, b.id), { mapping: { prod: p } }, t)).body.environment_mapping).toEqual({ prod: p });
  });

  it("a deleted project drops out of every mapping", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const [a, b] = [await install(admin, org.id), await install(admin, org.id, { kind: "github" })];
    const [keep, gone] = [await seedProject(org.id), await seedProject(org.id)];
    await patch(mappingPath(org.id, a.id), { mapping: { production: gone, preview: keep } }, t);
    await patch(mappingPath(org.id, b.id), { mapping: { main: gone, qa: gone } }, t);
    await env.DB.prepare("delete from projects where id = ?").bind(gone).run();
    expect((await get(`${intPath(org.id)}/${a.id}`, t)).body.environment_mapping).toEqual({ preview: keep });
    expect((await get(`${intPath(org.id)}/${b.id}`, t)).body.environment_mapping).toEqual({});
    const list = await get(intPath(org.id), t);
    expect(JSON.stringify(list.body)).not.toContain(gone);
    // And it can no longer be mapped.
    const again = await patch(mappingPath(org.id, a.id), { mapping: { production: gone } }, t);
    expectProblem(again, 422, "unprocessable");
  });

  it("DELETE uninstalls; its mapping goes with it and the project stays", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const i = await install(admin, org.id, { secrets: { k: "v" } });
    const p = await seedProject(org.id);
    await patch(mappingPath(org.id, i.id), { mapping: { production: p } }, t);
    const res = await del(`${intPath(org.id)}/${i.id}`, t);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await get(`${intPath(org.id)}/${i.id}`, t), 404, "not_found");
    expectProblem(await del(`${intPath(org.id)}/${i.id}`, t), 404, "not_found");
    expect(await mappingRows(i.id)).toEqual([]);
    expect(await env.DB.prepare("select id from projects where id = ?").bind(p).first()).not.toBeNull();
  });

  it("lists in creation order across pages to the end, one round trip per page", async () => {
    const { admin, org } = await adminAndOrg();
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await install(admin, org.id, { kind: i % 2 ? "github" : "vercel" })).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await get(`${intPath(org.id)}?page_size=3${token ? `&page_token=${encodeURIComponent(token)}` : ""}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      seen.push(...res.body.items.map((i: Integration) => i.id));
      token = res.body.next_page_token;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(created);
  });

  it('filter kind = "…" pages through one kind to the end; the token is tied to the filter', async () => {
    const { admin, org } = await adminAndOrg();
    const github: string[] = [];
    for (let i = 0; i < 6; i++) {
      const it = await install(admin, org.id, { kind: i % 3 === 0 ? "vercel" : "github" });
      if (it.kind === "github") github.push(it.id);
    }
    const filter = encodeURIComponent('kind = "github"');
    const seen: string[] = [];
    let token = "";
    let last: any;
    do {
      last = await get(`${intPath(org.id)}?filter=${filter}&page_size=3${token ? `&page_token=${encodeURIComponent(token)}` : ""}`, {
        token: admin.accessToken,
      });
      expect(last.status, last.text).toBe(200);
      expect(last.cost.queries).toBe(1);
      seen.push(...last.body.items.map((i: Integration) => i.id));
      token = last.body.next_page_token;
      if (token) {
        // The same token with another filter, or none, is refused.
        expectProblem(await get(`${intPath(org.id)}?page_token=${encodeURIComponent(token)}`, { token: admin.accessToken }), 400, "invalid_page_token");
        expectProblem(
          await get(`${intPath(org.id)}?filter=${encodeURIComponent('kind = "vercel"')}&page_token=${encodeURIComponent(token)}`, { token: admin.accessToken }),
          400,
          "invalid_page_token",
        );
      }
    } while (token);
    expect(seen).toEqual(github);
    const none = await get(`${intPath(org.id)}?filter=${encodeURIComponent('kind = "slack"')}`, { token: admin.accessToken });
    expect(none.body).toEqual({ items: [], next_page_token: "" });
  });

  it("a page reads about page_size rows (plus mappings) whatever the organization holds, filtered or not", async () => {
    const { admin, org } = await adminAndOrg();
    const now = Date.now();
    const seed = Array.from({ length: 300 }, (_, i) =>
      env.DB.prepare(
        "insert into integrations (id, organization_id, kind, display_name, config, secret_names, created_at, updated_at) values (?, ?, ?, ?, '{}', '{}', ?, ?)",
      ).bind(newId("integration", now - 1000 + i), org.id, i % 50 === 0 ? "slack" : "vercel", `i${i}`, now, now),
    );
    for (let i = 0; i < seed.length; i += 100) await env.DB.batch(seed.slice(i, i + 100));
    const baseline = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    const budget = 5 + 1 + 2;
    const plain = await get(`${intPath(org.id)}?page_size=5`, { token: admin.accessToken });
    expect(plain.body.items.length).toBe(5);
    expect(plain.cost.queries).toBe(1);
    expect(plain.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(budget);
    // Six slack integrations among 300: the kind index reads only them.
    const slack = await get(`${intPath(org.id)}?page_size=5&filter=${encodeURIComponent('kind = "slack"')}`, { token: admin.accessToken });
    expect(slack.body.items.length).toBe(5);
    expect(slack.body.items.every((i: Integration) => i.kind === "slack")).toBe(true);
    expect(slack.cost.queries).toBe(1);
    expect(slack.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(budget);
    const rest = await get(
      `${intPath(org.id)}?page_size=5&filter=${encodeURIComponent('kind = "slack"')}&page_token=${encodeURIComponent(slack.body.next_page_token)}`,
      { token: admin.accessToken },
    );
    expect(rest.body.items.length).toBe(1);
    expect(rest.body.next_page_token).toBe("");
    expect(rest.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(budget);

    // Mapped environments add their own rows, at most 100 per integration.
    const [first] = plain.body.items as Integration[];
    const p = await seedProject(org.id);
    await patch(
      mappingPath(org.id, first!.id),
      { mapping: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`env${i}`, p])) },
      { token: admin.accessToken },
    );
    const mapped = await get(`${intPath(org.id)}?page_size=5`, { token: admin.accessToken });
    expect(Object.keys(mapped.body.items[0].environment_mapping).length).toBe(10);
    expect(mapped.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(budget + 10);
  });

  it("GET and PATCH cost: one round trip to read, two to change the mapping", async () => {
    const { admin, org } = await adminAndOrg();
    const i = await install(admin, org.id);
    const p = await seedProject(org.id);
    const one = await get(`${intPath(org.id)}/${i.id}`, { token: admin.accessToken });
    expect(one.cost.queries).toBe(1);
    const res = await patch(mappingPath(org.id, i.id), { mapping: { production: p } }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(2);
  });

  it("changing the mapping reads rows bounded by the mapping, not by the organization's projects", async () => {
    /** An organization with `projects` projects, and the cost of mapping 1 and then 100 environments to its first ones. */
    async function costs(projects: number) {
      const { admin, org } = await adminAndOrg();
      const i = await install(admin, org.id);
      const now = Date.now();
      const ids = Array.from({ length: projects }, (_, k) => newId("project", now - 1000 + k));
      const seed = ids.map((id, k) =>
        env.DB.prepare("insert into projects (id, organization_id, name, name_key, private, created_at, updated_at) values (?, ?, ?, ?, 0, ?, ?)").bind(
          id,
          org.id,
          `P${k}`,
          `p${k}`,
          now,
          now,
        ),
      );
      for (let k = 0; k < seed.length; k += 100) await env.DB.batch(seed.slice(k, k + 100));
      const one = await patch(mappingPath(org.id, i.id), { mapping: { env0: ids[0] } }, { token: admin.accessToken });
      const hundred = await patch(
        mappingPath(org.id, i.id),
        { mapping: Object.fromEntries(ids.slice(0, 100).map((id, k) => [`env${k}`, id])) },
        { token: admin.accessToken },
      );
      for (const r of [one, hundred]) {
        expect(r.status, r.text).toBe(200);
        expect(r.cost.queries).toBe(2);
      }
      return { one: one.cost.rowsRead, hundred: hundred.cost.rowsRead };
    }
    const small = await costs(100);
    const large = await costs(1000);
    // Equal but for a B-tree level or so: nothing walks the organization's projects.
    expect(Math.abs(large.one - small.one)).toBeLessThanOrEqual(4);
    expect(Math.abs(large.hundred - small.hundred)).toBeLessThanOrEqual(10);
    expect(small.one).toBeLessThan(40);
    // About a dozen index probes per environment: the project check, the upsert and its foreign-key checks, both guards, the read-back.
    expect(small.hundred).toBeLessThan(100 * 15);
  });

  it("PAT with organization_integration:read reads, :write writes", async () => {
    const { admin, org } = await adminAndOrg();
    const reader = await createPat(admin, ["organization_integration:read"]);
    const writer = await createPat(admin, ["organization_integration:write"]);
    const i = await install({ accessToken: writer.token }, org.id);
    expect((await get(`${intPath(org.id)}/${i.id}`, { token: reader.token })).status).toBe(200);
    expect((await get(intPath(org.id), { token: reader.token })).status).toBe(200);
    const p = await seedProject(org.id);
    expect((await patch(mappingPath(org.id, i.id), { mapping: { prod: p } }, { token: writer.token })).status).toBe(200);
  });
});

describe("errors", () => {
  it("POST validates every field and lists each bad one", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      intPath(org.id),
      { kind: "Vercel", display_name: " ", config: [], secrets: { "bad name": "x", ok: "" } },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["config", "display_name", "kind", "secrets.bad name", "secrets.ok"].sort());
    const missing = await post(intPath(org.id), {}, { token: admin.accessToken });
    expectProblem(missing, 400, "validation_failed");
    expect(errorPaths(missing).sort()).toEqual(["config", "display_name", "kind"]);
  });

  it.each(["a", "1vercel", "_x", "vercel-app", "VERCEL", "aws marketplace", "x".repeat(41), "vercél"])("kind %j is refused", async (kind) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(intPath(org.id), { kind, display_name: "x", config: {} }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["kind"]);
  });

  it("config over 16 KiB, or not an object, is refused; exactly at the limit is accepted", async () => {
    const { admin, org } = await adminAndOrg();
    const pad = (n: number) => ({ blob: "x".repeat(n - '{"blob":""}'.length) });
    const at = await post(intPath(org.id), { kind: "vercel", display_name: "x", config: pad(16 * 1024) }, { token: admin.accessToken });
    expect(at.status, at.text).toBe(201);
    const over = await post(intPath(org.id), { kind: "vercel", display_name: "x", config: pad(16 * 1024 + 1) }, { token: admin.accessToken });
    expectProblem(over, 400, "validation_failed");
    expect(errorPaths(over)).toEqual(["config"]);
    for (const config of ["string", 5, null, [1, 2]]) {
      const res = await post(intPath(org.id), { kind: "vercel", display_name: "x", config }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["config"]);
    }
  });

  it("too many or too long secrets are refused", async () => {
    const { admin, org } = await adminAndOrg();
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`s${i}`, "v"]));
    expectProblem(
      await post(intPath(org.id), { kind: "vercel", display_name: "x", config: {}, secrets: many }, { token: admin.accessToken }),
      400,
      "validation_failed",
    );
    const long = await post(intPath(org.id), { kind: "vercel", display_name: "x", config: {}, secrets: { k: "x".repeat(8193) } }, { token: admin.accessToken });
    expectProblem(long, 400, "validation_failed");
    expect(long.text).not.toContain("x".repeat(100));
    expectProblem(
      await post(intPath(org.id), { kind: "vercel", display_name: "x", config: {}, secrets: { k: 5 } }, { token: admin.accessToken }),
      400,
      "validation_failed",
    );
  });

  it("mapping validation: shape, names and counts are 400", async () => {
    const { admin, org } = await adminAndOrg();
    const i = await install(admin, org.id);
    const p = await seedProject(org.id);
    const t = { token: admin.accessToken };
    for (const body of [{}, { mapping: {} }, { mapping: [] }, { mapping: "prod" }, { mapping: { prod: 5 } }, { mapping: { prod: "prj_".padEnd(65, "x") } }]) {
      const res = await patch(mappingPath(org.id, i.id), body, t);
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)[0]).toMatch(/^mapping/);
    }
    for (const name of ["", " prod", "prod ", "a\nb", "tab\there", "x".repeat(101)]) {
      const res = await patch(mappingPath(org.id, i.id), { mapping: { [name]: p } }, t);
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual([`mapping.${name}`]);
    }
    const tooMany = Object.fromEntries(Array.from({ length: 101 }, (_, k) => [`env${k}`, p]));
    expectProblem(await patch(mappingPath(org.id, i.id), { mapping: tooMany }, t), 400, "validation_failed");
    expect(await mappingRows(i.id)).toEqual([]);
  });

  it("an integration maps at most 100 environments in all; the refused request changes nothing", async () => {
    const { admin, org } = await adminAndOrg();
    const i = await install(admin, org.id);
    const p = await seedProject(org.id);
    const t = { token: admin.accessToken };
    const full = Object.fromEntries(Array.from({ length: 100 }, (_, k) => [`env${String(k).padStart(3, "0")}`, p]));
    const ok = await patch(mappingPath(org.id, i.id), { mapping: full }, t);
    expect(ok.status, ok.text).toBe(200);
    expect(Object.keys(ok.body.environment_mapping).length).toBe(100);
    const over = await patch(mappingPath(org.id, i.id), { mapping: { extra: p, env000: null } }, t);
    // Removing one and adding one nets to 100: allowed.
    expect(over.status, over.text).toBe(200);
    const refused = await patch(mappingPath(org.id, i.id), { mapping: { another: p } }, t);
    expectProblem(refused, 400, "validation_failed");
    expect(errorPaths(refused)).toEqual(["mapping"]);
    expect((await mappingRows(i.id)).length).toBe(100);
    expect((await get(`${intPath(org.id)}/${i.id}`, t)).body.environment_mapping.another).toBeUndefined();
  });

  it("values that are not projects of this organization are 422 naming each key; nothing is applied", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    const i = await install(admin, org.id);
    const mine = await seedProject(org.id);
    const theirs = await seedProject(other.id);
    const t = { token: admin.accessToken };
    await patch(mappingPath(org.id, i.id), { mapping: { keep: mine } }, t);
    const res = await patch(
      mappingPath(org.id, i.id),
      { mapping: { good: mine, foreign: theirs, unknown: newId("project"), malformed: "prj_nope", wrongkind: newId("proxy"), keep: null } },
      t,
    );
    const body = expectProblem(res, 422, "unprocessable");
    expect(errorPaths(res).sort()).toEqual(["mapping.foreign", "mapping.malformed", "mapping.unknown", "mapping.wrongkind"]);
    expect(JSON.stringify(body)).not.toContain("Project ");
    // Applied whole or not at all: `good` was not set, `keep` was not removed.
    expect((await get(`${intPath(org.id)}/${i.id}`, t)).body.environment_mapping).toEqual({ keep: mine });
  });

  it("unknown and malformed integration ids are 404 on every id route", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await seedProject(org.id);
    const t = { token: admin.accessToken };
    for (const id of [newId("integration"), "nope", "int_", newId("proxy")]) {
      expectProblem(await get(`${intPath(org.id)}/${id}`, t), 404, "not_found");
      expectProblem(await del(`${intPath(org.id)}/${id}`, t), 404, "not_found");
      expectProblem(await patch(mappingPath(org.id, id), { mapping: { prod: p } }, t), 404, "not_found");
    }
  });

  it("a bad filter, page_size or page token is 400", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    for (const f of ['display_name = "x"', 'kind != "vercel"', 'kind:"ver"', "kind = vercel", 'kind = "a" OR kind = "b"']) {
      expectProblem(await get(`${intPath(org.id)}?filter=${encodeURIComponent(f)}`, t), 400, "invalid_filter");
    }
    expectProblem(await get(`${intPath(org.id)}?page_size=-1`, t), 400, "validation_failed");
    expectProblem(await get(`${intPath(org.id)}?page_token=abc.def`, t), 400, "invalid_page_token");
  });

  it("an inactive organization is read-only: writes are 409, reads work", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const i = await install(admin, org.id);
    const p = await seedProject(org.id);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, t)).status).toBe(200);
    expectProblem(await post(intPath(org.id), { kind: "vercel", display_name: "x", config: {} }, t), 409, "organization_inactive");
    expectProblem(await patch(mappingPath(org.id, i.id), { mapping: { prod: p } }, t), 409, "organization_inactive");
    expectProblem(await del(`${intPath(org.id)}/${i.id}`, t), 409, "organization_inactive");
    expect((await get(intPath(org.id), t)).status).toBe(200);
    expect((await get(`${intPath(org.id)}/${i.id}`, t)).status).toBe(200);
  });
});

describe("security", () => {
  async function setup() {
    const { admin, org } = await adminAndOrg();
    const secret = `sk-${unique()}-hidden`;
    const i = await install(admin, org.id, { secrets: { api_key: secret } });
    const project = await seedProject(org.id);
    return { admin, org, i, secret, project };
  }

  const routes = (orgId: string, id: string, project: string): [string, string, unknown?][] => [
    ["GET", intPath(orgId)],
    ["POST", intPath(orgId), { kind: "slack", display_name: "x", config: {} }],
    ["GET", `${intPath(orgId)}/${id}`],
    ["DELETE", `${intPath(orgId)}/${id}`],
    ["PATCH", mappingPath(orgId, id), { mapping: { prod: project } }],
  ];

  it("every route: 401 without a credential", async () => {
    const { org, i, project } = await setup();
    for (const [method, path, body] of routes(org.id, i.id, project)) expectProblem(await api(method, path, { body }), 401, "unauthenticated");
  });

  it("every route: the built-in user role is 403 (it lacks integrations:*)", async () => {
    const { org, i, project } = await setup();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    for (const [method, path, body] of routes(org.id, i.id, project)) {
      const res = await api(method, path, { body, token: member.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.body.required_permission).toMatch(/^integrations:(read|write)$/);
    }
  });

  it("a custom role with integrations:read only may read but not write", async () => {
    const { admin, org, i, project, secret } = await setup();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("viewer").slice(0, 30), permissions: ["integrations:read"] },
      { token: admin.accessToken },
    );
    const viewer = await createUser();
    await addMemberDirect(org.id, viewer, role.body.name);
    for (const [method, path, body] of routes(org.id, i.id, project)) {
      const res = await api(method, path, { body, token: viewer.accessToken });
      if (method === "GET") {
        expect(res.status, res.text).toBe(200);
        expect(res.text).not.toContain(secret);
      } else expectProblem(res, 403, "forbidden");
    }
  });

  it("every route: a PAT without the scope is 403 insufficient_scope", async () => {
    const { admin, org, i, project } = await setup();
    const wrong = await createPat(admin, ["organization:write", "organization_member:write"]);
    const reader = await createPat(admin, ["organization_integration:read"]);
    for (const [method, path, body] of routes(org.id, i.id, project)) {
      const res = await api(method, path, { body, token: wrong.token });
      expectProblem(res, 403, "insufficient_scope");
      expect(res.body.required_scope).toBe(method === "GET" ? "organization_integration:read" : "organization_integration:write");
      if (method !== "GET") expectProblem(await api(method, path, { body, token: reader.token }), 403, "insufficient_scope");
    }
  });

  it("another organization's integration is 404 on every id route, and its mapping is untouched", async () => {
    const a = await setup();
    const b = await setup();
    const t = { token: a.admin.accessToken };
    await patch(mappingPath(b.org.id, b.i.id), { mapping: { prod: b.project } }, { token: b.admin.accessToken });
    expectProblem(await get(`${intPath(a.org.id)}/${b.i.id}`, t), 404, "not_found");
    expectProblem(await del(`${intPath(a.org.id)}/${b.i.id}`, t), 404, "not_found");
    expectProblem(await patch(mappingPath(a.org.id, b.i.id), { mapping: { prod: a.project } }, t), 404, "not_found");
    expectProblem(await patch(mappingPath(a.org.id, b.i.id), { mapping: { prod: null } }, t), 404, "not_found");
    expect(await mappingRows(b.i.id)).toEqual([{ environment: "prod", project_id: b.project, organization_id: b.org.id }]);
    const list = await get(intPath(a.org.id), t);
    expect(list.body.items.map((x: Integration) => x.id)).toEqual([a.i.id]);
  });

  it("mapping one's own integration to another organization's project is 422, and reveals nothing of it", async () => {
    const a = await setup();
    const b = await setup();
    const res = await patch(mappingPath(a.org.id, a.i.id), { mapping: { prod: b.project } }, { token: a.admin.accessToken });
    expectProblem(res, 422, "unprocessable");
    expect(errorPaths(res)).toEqual(["mapping.prod"]);
    // The same answer as for a project that never existed.
    const unknown = await patch(mappingPath(a.org.id, a.i.id), { mapping: { prod: newId("project") } }, { token: a.admin.accessToken });
    expect(unknown.body.detail).toBe(res.body.detail);
    expect(await mappingRows(a.i.id)).toEqual([]);
  });

  it("an outsider gets 404 on every route of an organization it is not in", async () => {
    const { org, i, project } = await setup();
    const outsider = await createUser();
    await createOrg(outsider);
    for (const [method, path, body] of routes(org.id, i.id, project))
      expectProblem(await api(method, path, { body, token: outsider.accessToken }), 404, "not_found");
  });

  it("secret values never appear in any response or in the console", async () => {
    const { admin, org, i, secret, project } = await setup();
    const t = { token: admin.accessToken };
    const responses = [
      await get(intPath(org.id), t),
      await get(`${intPath(org.id)}/${i.id}`, t),
      await patch(mappingPath(org.id, i.id), { mapping: { prod: project } }, t),
      await patch(mappingPath(org.id, i.id), { mapping: { prod: newId("project") } }, t),
      await post(intPath(org.id), { kind: "BAD", display_name: "x", config: {}, secrets: { api_key: secret } }, t),
    ];
    for (const r of responses) expect(r.text).not.toContain(secret);
    expect(logged.join("\n")).not.toContain(secret);
  });

  it("a project deleted between the authorization read and the write leaves no dangling mapping", async () => {
    const { admin, org, i } = await setup();
    const t = { token: admin.accessToken };
    const [stays, vanishes] = [await seedProject(org.id), await seedProject(org.id)];
    // The project goes as the write batch starts: the request must then not map it.
    // Requests run on a D1 session (src/db/client.ts): intercept the session's batch.
    const realWithSession = env.DB.withSession.bind(env.DB);
    let fired = false;
    const spy = vi.spyOn(env.DB, "withSession").mockImplementation((start?: string) => {
      const session = realWithSession(start as D1SessionBookmark);
      return new Proxy(session, {
        get(target, prop) {
          if (prop !== "batch") return Reflect.get(target, prop).bind?.(target) ?? Reflect.get(target, prop);
          return async (statements: D1PreparedStatement[]) => {
            if (!fired && statements.length > 3) {
              fired = true;
              await env.DB.prepare("delete from projects where id = ?").bind(vanishes).run();
            }
            return target.batch(statements);
          };
        },
      });
    });
    const res = await patch(mappingPath(org.id, i.id), { mapping: { a: stays, b: vanishes } }, t);
    spy.mockRestore();
    expect(fired).toBe(true);
    expectProblem(res, 422, "unprocessable");
    expect(errorPaths(res)).toEqual(["mapping.b"]);
    // Applied whole or not at all.
    expect(await mappingRows(i.id)).toEqual([]);
  });

  it("deleting the organization removes its integrations and mappings", async () => {
    const { admin, org, i, project } = await setup();
    await patch(mappingPath(org.id, i.id), { mapping: { prod: project } }, { token: admin.accessToken });
    const res = await del(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(await env.DB.prepare("select id from integrations where id = ?").bind(i.id).first()).toBeNull();
    expect(await mappingRows(i.id)).toEqual([]);
  });
});
