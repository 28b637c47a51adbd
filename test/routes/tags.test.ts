import { describe, expect, it } from "vitest";
import { del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createPat, createUser } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import { ISO, adminAndOrg, createRole } from "./members-helpers";
import { createProject, projectPath, projectsPath, seedProjects, tagCounts, tagInfoPath, tagsPath, walk } from "./projects-helpers";

const tagPath = (orgId: string, id: string) => `${tagsPath(orgId)}/${id}`;
const byNamePath = (orgId: string, name: string) => `${tagsPath(orgId)}/by-name/${encodeURIComponent(name)}`;
const batchPath = (orgId: string) => `${tagsPath(orgId)}/batch-delete`;

async function tagsOf(orgId: string, token: string) {
  const res = await get(`${tagsPath(orgId)}?page_size=1000`, { token });
  expect(res.status, res.text).toBe(200);
  return res.body.items as { id: string; name: string }[];
}

describe("happy", () => {
  it("lists tags in case-insensitive name order, paged to the end", async () => {
    const { admin, org } = await adminAndOrg();
    await createProject(admin.accessToken, org.id, { tags: ["beta", "Alpha", "alpha", "gamma"] });
    await createProject(admin.accessToken, org.id, { tags: ["delta", "beta"], private: true });
    const { items, costs, pages } = await walk((pt) => get(`${tagsPath(org.id)}?page_size=2${pt ? `&page_token=${pt}` : ""}`, { token: admin.accessToken }));
    expect(items.map((t) => t.name)).toEqual(["Alpha", "alpha", "beta", "delta", "gamma"]);
    expect(pages).toBe(3);
    expect(items[0]).toEqual({
      id: expect.stringMatching(/^tag_[0-9A-Z]{26}$/),
      name: "Alpha",
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    for (const c of costs) {
      expect(c.queries).toBe(1);
      expect(c.rowsRead).toBeLessThanOrEqual(2 * 3 + 10);
    }
  });

  it("filters by name: exact (case-sensitive) and prefix (case-insensitive)", async () => {
    const { admin, org } = await adminAndOrg();
    await createProject(admin.accessToken, org.id, { tags: ["Smoke", "smoke-fast", "slow", "e2e"] });
    const names = async (filter: string) =>
      (await get(`${tagsPath(org.id)}?filter=${encodeURIComponent(filter)}`, { token: admin.accessToken })).body.items.map((t: any) => t.name);
    expect(await names('name:"SMO"')).toEqual(["Smoke", "smoke-fast"]);
    expect(await names('name = "smoke"')).toEqual([]);
    expect(await names('name = "Smoke"')).toEqual(["Smoke"]);
    expect(await names('name != "Smoke"')).toEqual(["e2e", "slow", "smoke-fast"]);
  });

  it("tag-info: counts only when asked, private projects counted, paged", async () => {
    const { admin, org } = await adminAndOrg();
    await createProject(admin.accessToken, org.id, { tags: ["a", "b"] });
    await createProject(admin.accessToken, org.id, { tags: ["a"], private: true });
    await createProject(admin.accessToken, org.id, { tags: ["c"] });
    const plain = await get(tagInfoPath(org.id), { token: admin.accessToken });
    expect(plain.body.items.map((i: any) => Object.keys(i))).toEqual([["tag"], ["tag"], ["tag"]]);
    const { items, costs } = await walk((pt) =>
      get(`${tagInfoPath(org.id)}?include_counts=true&page_size=2${pt ? `&page_token=${pt}` : ""}`, { token: admin.accessToken }),
    );
    expect(items.map((i) => [i.tag.name, i.counts.projects])).toEqual([
      ["a", 2],
      ["b", 1],
      ["c", 1],
    ]);
    for (const c of costs) expect(c.queries).toBe(1);
    // A user who cannot see the private project still gets organization-wide counts.
    const user = await createUser();
    await addMemberDirect(org.id, user, "user");
    const seen = await get(`${tagInfoPath(org.id)}?include_counts=true`, { token: user.accessToken });
    expect(seen.body.items[0]).toMatchObject({ tag: { name: "a" }, counts: { projects: 2 } });
  });

  it("deleting a tag by id untags every project, private ones included", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id, { tags: ["gone", "kept"] });
    const q = await createProject(admin.accessToken, org.id, { tags: ["gone"], private: true });
    const gone = (await tagsOf(org.id, admin.accessToken)).find((x) => x.name === "gone")!;
    expect((await del(tagPath(org.id, gone.id), t)).status).toBe(204);
    expect((await get(projectPath(org.id, p.id), t)).body.tags).toEqual(["kept"]);
    expect((await get(projectPath(org.id, q.id), t)).body.tags).toEqual([]);
    expect((await get(`${projectsPath(org.id)}?filter=${encodeURIComponent('tag = "gone"')}`, t)).body.items).toEqual([]);
    expectProblem(await del(tagPath(org.id, gone.id), t), 404, "not_found");
    // Naming it again makes a new tag.
    const again = await patch(projectPath(org.id, p.id), { tags: ["gone"] }, t);
    expect(again.body.tags).toEqual(["gone"]);
    expect((await tagsOf(org.id, admin.accessToken)).find((x) => x.name === "gone")!.id).not.toBe(gone.id);
    expect(await tagCounts(org.id)).toEqual([
      { name: "gone", counter: 1, actual: 1 },
      { name: "kept", counter: 0, actual: 0 },
    ]);
  });

  it("deletes by exact name, URL-encoded", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const p = await createProject(admin.accessToken, org.id, { tags: ["release/v1 €", "Release/v1 €"] });
    expect((await del(byNamePath(org.id, "release/v1 €"), t)).status).toBe(204);
    expect((await get(projectPath(org.id, p.id), t)).body.tags).toEqual(["Release/v1 €"]);
    expectProblem(await del(byNamePath(org.id, "release/v1 €"), t), 404, "not_found");
    expectProblem(await del(byNamePath(org.id, "nope"), t), 404, "not_found");
  });

  it("batch-delete reports each item", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    await createProject(admin.accessToken, org.id, { tags: ["a", "b", "c", "d"] });
    const tags = new Map((await tagsOf(org.id, admin.accessToken)).map((x) => [x.name, x.id]));
    const res = await post(batchPath(org.id), { ids: [tags.get("a"), "tag_00000000000000000000000000", "junk", tags.get("c")], names: ["b", "zzz", "c"] }, t);
    expect(res.status, res.text).toBe(200);
    expect(res.body.results).toEqual([
      { id: tags.get("a"), name: "a", status: "deleted" },
      { id: "tag_00000000000000000000000000", status: "not_found" },
      { id: "junk", status: "not_found" },
      { id: tags.get("c"), name: "c", status: "deleted" },
      { id: tags.get("b"), name: "b", status: "deleted" },
      { name: "zzz", status: "not_found" },
      // Named twice (by id above): deleted either way.
      { id: tags.get("c"), name: "c", status: "deleted" },
    ]);
    expect((await tagsOf(org.id, admin.accessToken)).map((x) => x.name)).toEqual(["d"]);
  });

  it("counts stay exact under concurrent retagging", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const projects = await Promise.all(Array.from({ length: 4 }, (_, i) => createProject(admin.accessToken, org.id, { name: `P${i}`, tags: ["x"] })));
    const sets = [["x", "y"], ["y", "z"], ["z"], ["x", "y", "z"], [], ["y"]];
    const alive = [...projects];
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(
        alive.flatMap((p, i) => [
          patch(projectPath(org.id, p.id), { tags: sets[(i + round) % sets.length] }, t),
          patch(projectPath(org.id, p.id), { tags: sets[(i + round + 3) % sets.length] }, t),
        ]),
      );
      for (const r of results) expect(r.status, r.text).toBe(200);
      // Deletions and creations race the retagging too.
      await Promise.all([
        del(projectPath(org.id, alive.shift()!.id), t),
        createProject(admin.accessToken, org.id, { tags: ["x", "z", `r${round}`] }),
        patch(projectPath(org.id, projects[3]!.id), { tags: ["x"] }, t),
      ]);
      for (const c of await tagCounts(org.id)) expect(c.counter, `${c.name} after round ${round}`).toBe(c.actual);
    }
    const info = await get(`${tagInfoPath(org.id)}?include_counts=true`, t);
    const counts = Object.fromEntries(info.body.items.map((i: any) => [i.tag.name, i.counts.projects]));
    expect(counts).toEqual(Object.fromEntries((await tagCounts(org.id)).map((c) => [c.name, c.actual])));
  });

  it("a page of tags costs the page, not the organization's tags", async () => {
    const { admin, org } = await adminAndOrg();
    const tags = Array.from({ length: 2000 }, (_, i) => `tag-${String(i).padStart(4, "0")}`);
    await seedProjects(
      org.id,
      Array.from({ length: 100 }, (_, i) => ({ name: `P${i}`, tags: tags.slice(i * 20, i * 20 + 20) })),
    );
    const first = await get(`${tagInfoPath(org.id)}?include_counts=true&page_size=50`, { token: admin.accessToken });
    expect(first.body.items).toHaveLength(50);
    const deep = await get(`${tagsPath(org.id)}?page_size=50&filter=${encodeURIComponent('name:"TAG-15"')}`, { token: admin.accessToken });
    expect(deep.body.items).toHaveLength(50);
    const second = await get(`${tagsPath(org.id)}?page_size=50&filter=${encodeURIComponent('name:"TAG-15"')}&page_token=${deep.body.next_page_token}`, {
      token: admin.accessToken,
    });
    expect(second.body.items[0].name).toBe("tag-1550");
    for (const res of [first, deep, second]) {
      expect(res.cost.queries).toBe(1);
      // Each listed tag: its index entry and its row.
      expect(res.cost.rowsRead).toBeLessThanOrEqual(2 * 51 + 10);
    }
  });
});

describe("errors", () => {
  it("400 for a batch-delete naming nothing, more than 100, or bad names", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    expectProblem(await post(batchPath(org.id), {}, t), 400, "validation_failed");
    expectProblem(await post(batchPath(org.id), { ids: [], names: [] }, t), 400, "validation_failed");
    const many = await post(
      batchPath(org.id),
      { ids: Array.from({ length: 60 }, (_, i) => `tag_${i}`), names: Array.from({ length: 41 }, (_, i) => `n${i}`) },
      t,
    );
    expectProblem(many, 400, "validation_failed");
    const bad = await post(batchPath(org.id), { names: ["", "x".repeat(65), "a\nb", "dup", "dup"] }, t);
    expectProblem(bad, 400, "validation_failed");
    expect(errorPaths(bad).sort()).toEqual(["names", "names.0", "names.1", "names.2"]);
  });

  it("400 for a bad filter or page token", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    expectProblem(await get(`${tagsPath(org.id)}?filter=${encodeURIComponent('color = "x"')}`, t), 400, "invalid_filter");
    expectProblem(await get(`${tagsPath(org.id)}?page_token=nope`, t), 400, "invalid_page_token");
    expectProblem(await get(`${tagInfoPath(org.id)}?include_counts=yes`, t), 400, "validation_failed");
    await createProject(admin.accessToken, org.id, { tags: ["a", "b"] });
    const first = await get(`${tagsPath(org.id)}?page_size=1`, t);
    // A token of /tags is not one of /tag-info, nor of another filter.
    expectProblem(await get(`${tagInfoPath(org.id)}?page_size=1&page_token=${first.body.next_page_token}`, t), 400, "invalid_page_token");
    expectProblem(
      await get(`${tagsPath(org.id)}?page_size=1&filter=${encodeURIComponent('name:"a"')}&page_token=${first.body.next_page_token}`, t),
      400,
      "invalid_page_token",
    );
  });

  it("401 without a credential; 404 for malformed and unknown ids", async () => {
    const { admin, org } = await adminAndOrg();
    expectProblem(await get(tagsPath(org.id)), 401, "unauthenticated");
    expectProblem(await del(tagPath(org.id, "tag_00000000000000000000000000")), 401, "unauthenticated");
    for (const bad of ["nope", "tag_00000000000000000000000000"])
      expectProblem(await del(tagPath(org.id, bad), { token: admin.accessToken }), 404, "not_found");
  });
});

describe("security", () => {
  it("another organization's tag is 404 by id and by name, and not deleted by a batch", async () => {
    const a = await adminAndOrg();
    const b = await adminAndOrg();
    await createProject(b.admin.accessToken, b.org.id, { tags: ["theirs"] });
    const theirs = (await tagsOf(b.org.id, b.admin.accessToken))[0]!;
    const t = { token: a.admin.accessToken };
    expectProblem(await del(tagPath(a.org.id, theirs.id), t), 404, "not_found");
    expectProblem(await del(byNamePath(a.org.id, "theirs"), t), 404, "not_found");
    const batch = await post(batchPath(a.org.id), { ids: [theirs.id], names: ["theirs"] }, t);
    expect(batch.body.results.map((r: any) => r.status)).toEqual(["not_found", "not_found"]);
    expect(await tagsOf(b.org.id, b.admin.accessToken)).toEqual([theirs]);
    expect(await tagsOf(a.org.id, a.admin.accessToken)).toEqual([]);
  });

  it("deleting tags needs projects:admin: 403 for a user, and a PAT needs organization:write", async () => {
    const { admin, org } = await adminAndOrg();
    await createProject(admin.accessToken, org.id, { tags: ["t"] });
    const tag = (await tagsOf(org.id, admin.accessToken))[0]!;
    const user = await createUser();
    await addMemberDirect(org.id, user, "user");
    expect((await get(tagsPath(org.id), { token: user.accessToken })).status).toBe(200);
    expectProblem(await del(tagPath(org.id, tag.id), { token: user.accessToken }), 403, "forbidden");
    expectProblem(await del(byNamePath(org.id, "t"), { token: user.accessToken }), 403, "forbidden");
    expectProblem(await post(batchPath(org.id), { names: ["t"] }, { token: user.accessToken }), 403, "forbidden");
    const reader = await createPat(admin, ["organization:read"]);
    expect((await get(tagInfoPath(org.id), { token: reader.token })).status).toBe(200);
    const denied = await del(tagPath(org.id, tag.id), { token: reader.token });
    expectProblem(denied, 403, "insufficient_scope");
    expect(denied.body.required_scope).toBe("organization:write");
    const members = await createPat(admin, ["organization_member:read"]);
    expectProblem(await get(tagsPath(org.id), { token: members.token }), 403, "insufficient_scope");
    const noRead = await createUser();
    await addMemberDirect(org.id, noRead, (await createRole(admin, org.id, ["organization:read"])).name);
    expectProblem(await get(tagsPath(org.id), { token: noRead.accessToken }), 403, "forbidden");
    expect((await tagsOf(org.id, admin.accessToken)).map((x) => x.name)).toEqual(["t"]);
  });
});
