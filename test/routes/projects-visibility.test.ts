import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { del, get, patch, post, put, type ApiResponse, type Cost } from "../helpers/client";
import { addMemberDirect, createPat, createUser, createVerifiedUser, type TestUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { acceptPath, inviteWithToken, invitationsPath, tokenOf } from "./invitations-helpers";
import { adminAndOrg, createRole, createServiceAccount, memberPath } from "./members-helpers";
import { accessPath, createProject, grant, projectPath, projectsPath, seedProjects, walk } from "./projects-helpers";

const ids = (items: { id: string }[]) => items.map((p) => p.id).sort();
const listAll = (orgId: string, token: string, query: Record<string, string> = {}) =>
  walk((pt) => get(`${projectsPath(orgId)}?${new URLSearchParams({ page_size: "2", ...query, ...(pt ? { page_token: pt } : {}) })}`, { token }));

/**
 * One organization, seen from every kind of caller: an admin, a user granted one private project,
 * a user granted nothing, a custom role holding projects:admin, a service account with the user
 * role, and PATs of the admin.
 */
describe("visibility from every role", () => {
  let admin: TestUser;
  let granted: TestUser;
  let plain: TestUser;
  let privileged: TestUser;
  let orgId: string;
  let pub: { id: string };
  let secret: { id: string };
  let grantedSecret: { id: string };
  let byUser: { id: string };
  let robotKey: string;

  beforeAll(async () => {
    ({
      admin,
      org: { id: orgId },
    } = await adminAndOrg().then((r) => ({ admin: r.admin, org: r.org })));
    [granted, plain, privileged] = await Promise.all([createUser(), createUser(), createUser()]);
    await addMemberDirect(orgId, granted, "user");
    await addMemberDirect(orgId, plain, "user");
    await addMemberDirect(orgId, privileged, (await createRole(admin, orgId, ["projects:read", "projects:write", "projects:admin"])).name);
    robotKey = (await createServiceAccount(admin, orgId, { name: "Robot", role: "user" })).key;
    pub = await createProject(admin.accessToken, orgId, { name: "Public", tags: ["shared"] });
    secret = await createProject(admin.accessToken, orgId, { name: "Secret", private: true, tags: ["shared"] });
    grantedSecret = await createProject(admin.accessToken, orgId, { name: "Granted secret", private: true, tags: ["shared"] });
    await grant(admin.accessToken, orgId, grantedSecret.id, granted.id);
    // A private project the admin did not create (so is not granted): only projects:admin shows it.
    byUser = await createProject(privileged.accessToken, orgId, { name: "By another", private: true });
  });

  const every = () => [pub.id, secret.id, grantedSecret.id, byUser.id].sort();

  it("an admin sees every project, in lists and by id", async () => {
    expect(ids((await listAll(orgId, admin.accessToken)).items)).toEqual(expect.arrayContaining(every()));
    for (const id of every()) expect((await get(projectPath(orgId, id), { token: admin.accessToken })).status).toBe(200);
  });

  it("a custom role with projects:admin sees every project", async () => {
    expect(ids((await listAll(orgId, privileged.accessToken)).items)).toEqual(expect.arrayContaining(every()));
    expect((await get(projectPath(orgId, secret.id), { token: privileged.accessToken })).status).toBe(200);
  });

  it("a granted user sees public projects and their grant, in every order and filter", async () => {
    const expected = [pub.id, grantedSecret.id].sort();
    const queries: Record<string, string>[] = [{}, { order_by: "name" }, { order_by: "updated_at desc" }, { filter: 'tag = "shared"' }, { filter: 'name:"g"' }];
    for (const query of queries) {
      expect(ids((await listAll(orgId, granted.accessToken, query)).items), JSON.stringify(query)).toEqual(
        query.filter === 'name:"g"' ? [grantedSecret.id] : expected,
      );
    }
    expect(ids((await listAll(orgId, granted.accessToken, { filter: "private = true" })).items)).toEqual([grantedSecret.id]);
    expect((await get(projectPath(orgId, grantedSecret.id), { token: granted.accessToken })).status).toBe(200);
    expect((await get(accessPath(orgId, grantedSecret.id), { token: granted.accessToken })).status).toBe(200);
  });

  it("a user granted nothing sees only public projects; a private one is 404 on every route", async () => {
    expect(ids((await listAll(orgId, plain.accessToken)).items)).toEqual([pub.id]);
    expect(ids((await listAll(orgId, plain.accessToken, { filter: "private = true" })).items)).toEqual([]);
    expect(ids((await listAll(orgId, plain.accessToken, { filter: 'tag = "shared"' })).items)).toEqual([pub.id]);
    const t = { token: plain.accessToken };
    for (const id of [secret.id, grantedSecret.id, byUser.id]) {
      expectProblem(await get(projectPath(orgId, id), t), 404, "not_found");
      expectProblem(await patch(projectPath(orgId, id), { name: "mine now" }, t), 404, "not_found");
      expectProblem(await del(projectPath(orgId, id), t), 404, "not_found");
      expectProblem(await get(accessPath(orgId, id), t), 404, "not_found");
      // Nobody grants themself (or anyone) a project they cannot see.
      expectProblem(await put(accessPath(orgId, id, plain.id), undefined, t), 404, "not_found");
      expectProblem(await del(accessPath(orgId, id, granted.id), t), 404, "not_found");
    }
    expect((await get(projectPath(orgId, secret.id), { token: admin.accessToken })).body.name).toBe("Secret");
  });

  it("the access list of a private project the caller cannot see is not even read", async () => {
    const t = { token: plain.accessToken };
    const bare = await createProject(admin.accessToken, orgId, { private: true });
    const crowded = await createProject(admin.accessToken, orgId, { private: true });
    for (const u of [granted, privileged]) await grant(admin.accessToken, orgId, crowded.id, u.id);
    const a = await get(accessPath(orgId, bare.id), t);
    const b = await get(accessPath(orgId, crowded.id), t);
    expectProblem(b, 404, "not_found");
    expect(b.body.detail).toBe(a.body.detail);
    expect(b.cost).toEqual(a.cost);
  });

  it("a service account with the user role sees what a plain user sees", async () => {
    expect(ids((await listAll(orgId, robotKey)).items)).toEqual([pub.id]);
    expectProblem(await get(projectPath(orgId, secret.id), { token: robotKey }), 404, "not_found");
  });

  it("an admin's PAT with organization:read lacks projects:admin: public and granted only", async () => {
    const pat = await createPat(admin, ["organization:read"]);
    // The admin created Secret and Granted secret, so is on their access lists; By another is not.
    const seen = ids((await listAll(orgId, pat.token)).items);
    expect(seen).toEqual(expect.arrayContaining([pub.id, secret.id, grantedSecret.id]));
    expect(seen).not.toContain(byUser.id);
    expectProblem(await get(projectPath(orgId, byUser.id), { token: pat.token }), 404, "not_found");
    const write = await createPat(admin, ["organization:write"]);
    expect(ids((await listAll(orgId, write.token)).items)).toEqual(expect.arrayContaining(every()));
  });

  it("a granted user with projects:write manages the access list; revoking ends their own access", async () => {
    const project = await createProject(admin.accessToken, orgId, { private: true });
    await grant(admin.accessToken, orgId, project.id, granted.id);
    const res = await put(accessPath(orgId, project.id, plain.id), undefined, { token: granted.accessToken });
    expect(res.status, res.text).toBe(200);
    expect((await get(projectPath(orgId, project.id), { token: plain.accessToken })).status).toBe(200);
    expect((await del(accessPath(orgId, project.id, granted.id), { token: granted.accessToken })).status).toBe(204);
    expectProblem(await get(projectPath(orgId, project.id), { token: granted.accessToken }), 404, "not_found");
  });
});

describe("access ends with the membership", () => {
  async function privateProjectFor(member: TestUser) {
    const { admin, org } = await adminAndOrg();
    await addMemberDirect(org.id, member, "user");
    const p = await createProject(admin.accessToken, org.id, { private: true });
    await grant(admin.accessToken, org.id, p.id, member.id);
    return { admin, org, p };
  }
  const grants = async (memberId: string) =>
    (await env.DB.prepare("select count(*) as n from project_members where member_id = ?").bind(memberId).first<{ n: number }>())!.n;

  it("a removed member who rejoins does not regain old grants", async () => {
    const member = await createUser();
    const { admin, org, p } = await privateProjectFor(member);
    expect((await del(memberPath(org.id, member.id), { token: admin.accessToken })).status).toBe(204);
    expect(await grants(member.id)).toBe(0);
    await addMemberDirect(org.id, member, "user");
    expectProblem(await get(projectPath(org.id, p.id), { token: member.accessToken }), 404, "not_found");
  });

  it("leaving drops the grants too", async () => {
    const member = await createUser();
    const { org } = await privateProjectFor(member);
    expect((await del(memberPath(org.id, member.id), { token: member.accessToken })).status).toBe(204);
    expect(await grants(member.id)).toBe(0);
  });

  it("a removal refused as the last admin keeps the grants", async () => {
    const { admin, org } = await adminAndOrg();
    const p = await createProject(admin.accessToken, org.id, { private: true });
    expectProblem(await del(memberPath(org.id, admin.id), { token: admin.accessToken }), 409, "last_admin");
    expect((await get(accessPath(org.id, p.id), { token: admin.accessToken })).body.items).toHaveLength(1);
  });

  it("deleting a service account drops its grants", async () => {
    const { admin, org } = await adminAndOrg();
    const sa = await createServiceAccount(admin, org.id, { name: "Bot" });
    const p = await createProject(admin.accessToken, org.id, { private: true });
    await grant(admin.accessToken, org.id, p.id, sa.service_account.id);
    expect((await del(`/v1/organizations/${org.id}/service-accounts/${sa.service_account.id}`, { token: admin.accessToken })).status).toBe(204);
    expect(await grants(sa.service_account.id)).toBe(0);
  });

  it("deleting the account drops its grants in every organization", async () => {
    const member = await createUser();
    await privateProjectFor(member);
    await privateProjectFor(member);
    expect(await grants(member.id)).toBe(2);
    const res = await del("/v1/me", { token: member.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(await grants(member.id)).toBe(0);
  });
});

describe("invitation project_ids", () => {
  it("accepting grants the invitation's projects (signed in)", async () => {
    const { admin, org } = await adminAndOrg();
    const [a, b] = [await createProject(admin.accessToken, org.id, { private: true }), await createProject(admin.accessToken, org.id, { private: true })];
    const hidden = await createProject(admin.accessToken, org.id, { private: true });
    const user = await createUser();
    const { token } = await inviteWithToken(admin.accessToken, org.id, { email: user.email, project_ids: [a.id, b.id] });
    // A project deleted before acceptance is skipped.
    expect((await del(projectPath(org.id, b.id), { token: admin.accessToken })).status).toBe(204);
    const res = await post(acceptPath(token), undefined, { token: user.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(ids((await listAll(org.id, user.accessToken)).items)).toEqual([a.id]);
    expectProblem(await get(projectPath(org.id, hidden.id), { token: user.accessToken }), 404, "not_found");
    const list = await get(accessPath(org.id, a.id), { token: admin.accessToken });
    expect(list.body.items.find((i: any) => i.member.id === user.id)).toMatchObject({ member: { type: "user" } });
  });

  it("accepting with a new account grants them too, and combining unites project ids", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await createProject(admin.accessToken, org.id, { private: true });
    const b = await createProject(admin.accessToken, org.id, { private: true });
    const first = await inviteWithToken(admin.accessToken, org.id, { project_ids: [a.id] });
    const combined = await post(
      invitationsPath(org.id),
      { email: first.invitation.email, project_ids: [b.id], combine_pending: true, send_email: false },
      { token: admin.accessToken },
    );
    expect(combined.status, combined.text).toBe(200);
    expect([...combined.body.project_ids].sort()).toEqual([a.id, b.id].sort());
    const res = await post(acceptPath(tokenOf(combined.body.accept_url)), { display_name: "New", password: "correct horse battery staple" });
    expect(res.status, res.text).toBe(201);
    expect(ids((await listAll(org.id, res.body.access_token)).items)).toEqual([a.id, b.id].sort());
  });

  it("422 for another organization's project, naming it; nothing is created", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await adminAndOrg();
    const mine = await createProject(admin.accessToken, org.id);
    const theirs = await createProject(other.admin.accessToken, other.org.id);
    const res = await post(
      invitationsPath(org.id),
      { email: "x@example.com", project_ids: [mine.id, theirs.id], send_email: false },
      { token: admin.accessToken },
    );
    const body = expectProblem(res, 422, "unprocessable");
    expect(body.project_ids).toEqual([theirs.id]);
    expect(body.errors).toEqual([{ path: "project_ids.1", message: expect.any(String) }]);
    expect(body.detail).toContain(theirs.id);
    const pending = await get(invitationsPath(org.id), { token: admin.accessToken });
    expect(pending.body.items).toEqual([]);
  });

  it("422 for a private project the inviter cannot see; a batch fails that row alone; combine validates too", async () => {
    const { admin, org } = await adminAndOrg();
    const inviter = await createUser();
    // Enough to invite into a small custom role, and to see public projects, but granted nothing.
    const invitee = (await createRole(admin, org.id, ["organization:read"])).name;
    await addMemberDirect(org.id, inviter, (await createRole(admin, org.id, ["invitations:write", "organization:read", "projects:read"])).name);
    const hidden = await createProject(admin.accessToken, org.id, { private: true });
    const open = await createProject(admin.accessToken, org.id);
    const t = { token: inviter.accessToken };
    expectProblem(
      await post(invitationsPath(org.id), { email: "y@example.com", role: invitee, project_ids: [hidden.id], send_email: false }, t),
      422,
      "unprocessable",
    );
    const batch = await post(
      `${invitationsPath(org.id)}/batch`,
      {
        invitations: [
          { email: "z1@example.com", role: invitee, project_ids: [open.id], send_email: false },
          { email: "z2@example.com", role: invitee, project_ids: [hidden.id] },
        ],
      },
      t,
    );
    expect(batch.status, batch.text).toBe(200);
    expect(batch.body.results.map((r: any) => r.status)).toEqual(["created", "error"]);
    expect(batch.body.results[1].error).toMatchObject({ code: "unprocessable", project_ids: [hidden.id] });
    const combine = await post(
      invitationsPath(org.id),
      { email: "z1@example.com", role: invitee, project_ids: [hidden.id], combine_pending: true, send_email: false },
      t,
    );
    expectProblem(combine, 422, "unprocessable");
    // Without projects:read nothing is visible to attach.
    const blind = await createUser();
    await addMemberDirect(org.id, blind, (await createRole(admin, org.id, ["invitations:write", "organization:read"])).name);
    expectProblem(
      await post(invitationsPath(org.id), { email: "w@example.com", role: invitee, project_ids: [open.id], send_email: false }, { token: blind.accessToken }),
      422,
      "unprocessable",
    );
  });
});

/**
 * §9 at scale: 10,000 projects, 9,000 of them private, each with two tags. Every page reads
 * about page_size rows per visibility stream, whatever the organization holds.
 */
describe("at 10,000 projects, most private", () => {
  const TOTAL = 10_000;
  const PAGE = 50;
  let orgId = "";
  let admin: TestUser;
  let user: TestUser;
  let projectIds: string[] = [];
  const measured: Record<string, Cost[]> = {};
  // Per listed project: its index entry and row, and its two tags (project_tags and tags rows):
  // about 7 rows; up to two streams of page_size + 1; plus the authorization rows.
  const BUDGET = 2 * (PAGE + 1) * 7 + 30;

  const isPrivate = (i: number) => i % 10 !== 0;

  beforeAll(async () => {
    ({ admin } = await adminAndOrg().then((r) => ((orgId = r.org.id), r)));
    user = await createVerifiedUser();
    await addMemberDirect(orgId, user, "user");
    projectIds = await seedProjects(
      orgId,
      Array.from({ length: TOTAL }, (_, i) => ({ name: `Project ${String(i).padStart(5, "0")}`, private: isPrivate(i), tags: ["all", `mod${i % 7}`] })),
    );
    // The user is granted 40 private projects spread over the whole range.
    const stmts = Array.from({ length: 40 }, (_, k) => k * 250 + 1).map((i) =>
      env.DB.prepare("insert into project_members (project_id, member_id, organization_id, granted_by, granted_at) values (?, ?, ?, null, ?)").bind(
        projectIds[i]!,
        user.id,
        orgId,
        Date.now(),
      ),
    );
    await env.DB.batch(stmts);
  }, 300_000);

  afterAll(() => {
    const summary = Object.entries(measured).map(([label, costs]) => ({
      label,
      pages: costs.length,
      max_rows_read: Math.max(...costs.map((c) => c.rowsRead)),
      max_queries: Math.max(...costs.map((c) => c.queries)),
    }));
    console.log(`projects at scale (${TOTAL} projects, 90% private, page_size ${PAGE}):\n${summary.map((s) => JSON.stringify(s)).join("\n")}`);
  });

  function cheap(label: string, res: ApiResponse) {
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    (measured[label] ??= []).push(res.cost);
    expect(res.cost.queries, label).toBe(1);
    expect(res.cost.kvReads, label).toBeLessThanOrEqual(1);
    expect(res.cost.rowsRead, label).toBeLessThanOrEqual(BUDGET);
  }

  const page = (token: string, query: Record<string, string>, pageToken = "") =>
    get(`${projectsPath(orgId)}?${new URLSearchParams({ page_size: String(PAGE), ...query, ...(pageToken ? { page_token: pageToken } : {}) })}`, { token });

  async function pages(label: string, token: string, query: Record<string, string>, count: number) {
    const seen: any[] = [];
    let next = "";
    for (let i = 0; i < count; i++) {
      const res = await page(token, query, next);
      cheap(label, res);
      seen.push(...res.body.items);
      next = res.body.next_page_token;
      if (!next) break;
    }
    return { seen, next };
  }

  it.each([
    ["created_at desc", {}],
    ["name", { order_by: "name" }],
    ["updated_at desc", { order_by: "updated_at desc" }],
    ['tag = "mod3"', { filter: 'tag = "mod3"' }],
    ['name:"project 01"', { filter: 'name:"project 01"' }],
  ])("an admin's pages (%s), 10 deep, are cheap and complete", async (label, query) => {
    const { seen } = await pages(`admin ${label}`, admin.accessToken, query, 10);
    expect(new Set(seen.map((p) => p.id)).size).toBe(seen.length);
    expect(seen.length).toBe(500);
  });

  it.each([
    ["created_at desc", {}],
    ["name", { order_by: "name" }],
    ["updated_at", { order_by: "updated_at" }],
    ['tag = "mod3"', { filter: 'tag = "mod3"' }],
    ["private = true", { filter: "private = true" }],
  ])("a user's pages (%s) are cheap and hold only public and granted projects", async (label, query) => {
    const { seen } = await pages(`user ${label}`, user.accessToken, query, 5);
    const granted = new Set(Array.from({ length: 40 }, (_, k) => projectIds[k * 250 + 1]));
    for (const p of seen) {
      const i = projectIds.indexOf(p.id);
      expect(!isPrivate(i) || granted.has(p.id), p.name).toBe(true);
    }
  });

  it("a user walks every visible project to the end: 1,000 public plus 40 granted", async () => {
    const { seen, next } = await pages("user to the end", user.accessToken, {}, 30);
    expect(next).toBe("");
    expect(seen).toHaveLength(1040);
    expect(seen.filter((p) => p.private)).toHaveLength(40);
  });

  it("tag counts are maintained, not counted per page", async () => {
    const res = await get(`/v1/organizations/${orgId}/tag-info?include_counts=true`, { token: user.accessToken });
    expect(res.status).toBe(200);
    expect(res.body.items[0]).toMatchObject({ tag: { name: "all" }, counts: { projects: TOTAL } });
    expect(res.cost.rowsRead).toBeLessThan(30);
  });
});
