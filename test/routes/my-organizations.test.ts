import { describe, expect, it } from "vitest";
import { get, patch, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, seedOrganizations, unique, type TestUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

const list = (user: { accessToken: string }, query: Record<string, string> = {}) =>
  get(`/v1/me/organizations?${new URLSearchParams(query)}`, { token: user.accessToken });

const idsOf = (res: ApiResponse) => (res.body.items as { organization: { id: string } }[]).map((i) => i.organization.id);
const namesOf = (res: ApiResponse) => (res.body.items as { organization: { name: string } }[]).map((i) => i.organization.name);

/** Follows next_page_token to the end; returns every page. */
async function walk(user: TestUser, query: Record<string, string>, maxPages = 100) {
  const pages: ApiResponse[] = [];
  let token = "";
  do {
    const res = await list(user, token ? { ...query, page_token: token } : query);
    expect(res.status, res.text).toBe(200);
    pages.push(res);
    token = res.body.next_page_token;
  } while (token && pages.length < maxPages);
  expect(token).toBe("");
  return pages;
}

/** Flips the last character of the token's signature (or body) so it no longer verifies. */
const tamper = (token: string, part: "sig" | "body") => {
  const [body, sig] = token.split(".") as [string, string];
  const flip = (s: string) => s.slice(0, -1) + (s.endsWith("A") ? "B" : "A");
  return part === "sig" ? `${body}.${flip(sig)}` : `${flip(body)}.${sig}`;
};

/** A user who is admin of several organizations with distinct name prefixes, and `user` in one more. */
async function userWithNamedOrgs() {
  const user = await createUser();
  const other = await createUser();
  const tag = unique("q");
  const alpha = await createOrg(user, { name: `${tag} Alpha` });
  const alphabet = await createOrg(user, { name: `${tag} alphabet soup` });
  const beta = await createOrg(user, { name: `${tag} Beta` });
  const foreign = await createOrg(other, { name: `${tag} Alpine` });
  await addMemberDirect(foreign.id, user, "user");
  return { user, tag, alpha, alphabet, beta, foreign };
}

describe("happy", () => {
  it("lists {organization, role} ordered by organization id ascending", async () => {
    const { user, alpha, alphabet, beta, foreign } = await userWithNamedOrgs();
    const res = await list(user);
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    const ids = idsOf(res);
    expect(ids).toEqual([alpha.id, alphabet.id, beta.id, foreign.id].sort());
    expect([...ids].sort()).toEqual(ids);
    const byId = Object.fromEntries(res.body.items.map((i: any) => [i.organization.id, i]));
    expect(byId[alpha.id]).toEqual({ organization: alpha, role: "admin" });
    expect(byId[foreign.id].role).toBe("user");
    expect(byId[foreign.id].organization).toMatchObject({ id: foreign.id, name: foreign.name, member_count: 2, active: true });
  });

  it("pages of 2 concatenate to the single full page, with no duplicates", async () => {
    const user = await createUser();
    const seeded = await seedOrganizations(user, 7, `Pg ${unique()}`);
    const full = await list(user, { page_size: "1000" });
    expect(idsOf(full)).toEqual([...seeded].sort());
    const pages = await walk(user, { page_size: "2" });
    expect(pages.length).toBe(4);
    expect(pages.slice(0, 3).every((p) => p.body.items.length === 2)).toBe(true);
    expect(pages[3]!.body.items.length).toBe(1);
    const walked = pages.flatMap(idsOf);
    expect(walked).toEqual(idsOf(full));
    expect(new Set(walked).size).toBe(walked.length);
    expect(pages.flatMap((p) => p.body.items)).toEqual(full.body.items);
  });

  it("a page that ends exactly at the last row has an empty next_page_token", async () => {
    const user = await createUser();
    await seedOrganizations(user, 4, `Ex ${unique()}`);
    const pages = await walk(user, { page_size: "2" });
    expect(pages.map((p) => p.body.items.length)).toEqual([2, 2]);
  });

  it("page_size above 1000 is coerced to 1000", async () => {
    const user = await createUser();
    const seeded = await seedOrganizations(user, 1001, `Big ${unique()}`);
    const res = await list(user, { page_size: "5000" });
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    expect(res.body.items.length).toBe(1000);
    expect(res.body.next_page_token).not.toBe("");
    const rest = await list(user, { page_size: "5000", page_token: res.body.next_page_token });
    expect(idsOf(rest)).toEqual([[...seeded].sort()[1000]]);
    expect(rest.body.next_page_token).toBe("");
  });

  it("filters by exact name, name !=, case-insensitive prefix, role, and AND", async () => {
    const { user, tag, alpha, alphabet, beta, foreign } = await userWithNamedOrgs();
    const ids = async (filter: string) => {
      const res = await list(user, { filter });
      expect(res.status, res.text).toBe(200);
      return idsOf(res);
    };
    expect(await ids(`name = "${tag} Alpha"`)).toEqual([alpha.id]);
    // `=` is exact: case matters and a prefix is not enough.
    expect(await ids(`name = "${tag} alpha"`)).toEqual([]);
    expect(await ids(`name = "${tag} Alph"`)).toEqual([]);
    expect(await ids(`name != "${tag} Alpha"`)).toEqual([alphabet.id, beta.id, foreign.id].sort());
    expect(await ids(`name:"${tag.toUpperCase()} AL"`)).toEqual([alpha.id, alphabet.id, foreign.id].sort());
    expect(await ids(`name:"${tag} alpha"`)).toEqual([alpha.id, alphabet.id].sort());
    expect(await ids(`role = "admin"`)).toEqual([alpha.id, alphabet.id, beta.id].sort());
    expect(await ids(`role = "user"`)).toEqual([foreign.id]);
    expect(await ids(`role != "admin"`)).toEqual([foreign.id]);
    expect(await ids(`name:"${tag} al" AND role = "admin"`)).toEqual([alpha.id, alphabet.id].sort());
    expect(await ids(`name:"${tag} al" AND role = "admin" AND name != "${tag} Alpha"`)).toEqual([alphabet.id]);
    expect(await ids(`  role="user"   AND   name:"${tag}"  `)).toEqual([foreign.id]);
  });

  it("LIKE wildcards in a prefix are literal", async () => {
    const user = await createUser();
    const tag = unique("w");
    const pct = await createOrg(user, { name: `${tag} 100% Co` });
    await createOrg(user, { name: `${tag} 1000 Co` });
    await createOrg(user, { name: `${tag}_x` });
    const res = await list(user, { filter: `name:"${tag} 100%"` });
    expect(idsOf(res)).toEqual([pct.id]);
    expect(idsOf(await list(user, { filter: `name:"${tag.slice(0, -1)}_"` }))).toEqual([]);
  });

  it("a filter with a quote escaped inside the value matches it exactly", async () => {
    const user = await createUser();
    const name = `The "Best" ${unique()}`;
    const org = await createOrg(user, { name });
    const res = await list(user, { filter: `name = "${name.replace(/"/g, '\\"')}"` });
    expect(res.status, res.text).toBe(200);
    expect(idsOf(res)).toEqual([org.id]);
  });

  it("filtered pages walk to the same rows as the filtered full page", async () => {
    const user = await createUser();
    const tag = unique("f");
    await seedOrganizations(user, 5, `${tag} keep`);
    await seedOrganizations(user, 4, `${tag} drop`);
    const filter = `name:"${tag} KEEP"`;
    const full = await list(user, { filter });
    expect(full.body.items.length).toBe(5);
    const pages = await walk(user, { filter, page_size: "2" });
    expect(pages.length).toBe(3);
    expect(pages.flatMap(idsOf)).toEqual(idsOf(full));
  });

  it("active_only=true hides inactive organizations", async () => {
    const user = await createUser();
    const on = await createOrg(user);
    const off = await createOrg(user);
    expect((await patch(`/v1/organizations/${off.id}`, { active: false }, { token: user.accessToken })).status).toBe(200);
    expect(idsOf(await list(user))).toEqual([on.id, off.id].sort());
    expect(idsOf(await list(user, { active_only: "false" }))).toEqual([on.id, off.id].sort());
    const active = await list(user, { active_only: "true" });
    expect(active.status, active.text).toBe(200);
    expect(idsOf(active)).toEqual([on.id]);
  });

  it("a user in 300 organizations: every page is O(page_size) and the walk returns each once", async () => {
    const user = await createUser();
    const seeded = await seedOrganizations(user, 300, `Cost ${unique()}`);
    const pages = await walk(user, { page_size: "50" });
    expect(pages.length).toBe(6);
    const walked = pages.flatMap(idsOf);
    expect(walked).toEqual([...seeded].sort());
    expect(new Set(walked).size).toBe(300);
    for (const [i, page] of pages.entries()) {
      expect(page.body.items.length, `page ${i + 1}`).toBe(50);
      expect(page.cost.queries, `page ${i + 1}`).toBeLessThanOrEqual(2);
      expect(page.cost.kvReads, `page ${i + 1}`).toBeLessThanOrEqual(1);
      expect(page.cost.rowsRead, `page ${i + 1}`).toBeLessThanOrEqual(3 * 50 + 10);
    }
    // A filtered deep page stays bounded too.
    const filtered = await list(user, { page_size: "50", filter: `role = "admin"` });
    expect(filtered.cost.rowsRead).toBeLessThanOrEqual(3 * 50 + 10);
    expect(namesOf(filtered).length).toBe(50);
  });

  it("a user with no organizations gets an empty page", async () => {
    const user = await createUser();
    const res = await list(user);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [], next_page_token: "" });
  });
});

describe("errors", () => {
  it.each([["0"], ["-1"], ["abc"], ["1.5"]])("page_size=%s → 400", async (size) => {
    const user = await createUser();
    const res = await list(user, { page_size: size });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: any) => e.path)).toEqual(["page_size"]);
  });

  it("active_only=maybe → 400", async () => {
    const user = await createUser();
    const res = await list(user, { active_only: "maybe" });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: any) => e.path)).toEqual(["active_only"]);
  });

  it.each([
    ["an unknown field", 'color = "red"', /filterable fields: name, role/],
    ["a value without quotes", "name = Acme", /double-quoted/],
    ["OR", 'name = "a" OR name = "b"', /only AND/],
    ["an unterminated string", 'name = "Acme', /Unterminated/],
    ["a missing operator", 'name "Acme"', /Expected =, != or :/],
    ["a missing field", '= "Acme"', /Expected a field name/],
    ["a prefix match on role", 'role:"ad"', /`role` supports `=`, `!=` only/],
    ["a dangling AND", 'name = "a" AND', /Expected a field name/],
  ])("a filter with %s → 400 invalid_filter saying what was expected", async (_label, filter, detail) => {
    const user = await createUser();
    await createOrg(user);
    const res = await list(user, { filter });
    expectProblem(res, 400, "invalid_filter");
    expect(res.body.detail).toMatch(detail);
  });

  it("a page token replayed with another filter or active_only → 400 invalid_page_token", async () => {
    const user = await createUser();
    await seedOrganizations(user, 3, `Rp ${unique()}`);
    const first = await list(user, { page_size: "1" });
    const token = first.body.next_page_token;
    expect(token).not.toBe("");
    expect((await list(user, { page_size: "1", page_token: token })).status).toBe(200);
    expectProblem(await list(user, { page_size: "1", page_token: token, filter: 'role = "admin"' }), 400, "invalid_page_token");
    expectProblem(await list(user, { page_size: "1", page_token: token, active_only: "true" }), 400, "invalid_page_token");
  });

  it("a tampered, truncated or made-up page token → 400 invalid_page_token", async () => {
    const user = await createUser();
    await seedOrganizations(user, 3, `Tp ${unique()}`);
    const token = (await list(user, { page_size: "1" })).body.next_page_token as string;
    for (const bad of [tamper(token, "sig"), tamper(token, "body"), token.split(".")[0]!, `${token}.x`, "abc", "..", "e30.AAAA"]) {
      expectProblem(await list(user, { page_size: "1", page_token: bad }), 400, "invalid_page_token");
    }
  });
});

describe("security", () => {
  it("lists only the caller's memberships", async () => {
    const a = await createUser();
    const b = await createUser();
    const orgA = await createOrg(a);
    const orgB = await createOrg(b);
    expect(idsOf(await list(a))).toEqual([orgA.id]);
    expect(idsOf(await list(b))).toEqual([orgB.id]);
    // A filter cannot widen the set to other users' organizations.
    expect(idsOf(await list(a, { filter: `name = "${orgB.name}"` }))).toEqual([]);
  });

  it("a page token minted for one user is refused for another", async () => {
    const a = await createUser();
    const b = await createUser();
    await seedOrganizations(a, 3, `Ua ${unique()}`);
    await seedOrganizations(b, 3, `Ub ${unique()}`);
    const token = (await list(a, { page_size: "1" })).body.next_page_token;
    expectProblem(await list(b, { page_size: "1", page_token: token }), 400, "invalid_page_token");
  });

  it("needs a credential; a PAT needs organization:read", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    expectProblem(await get("/v1/me/organizations"), 401, "unauthenticated");
    const read = await createPat(user, ["organization:read"]);
    const res = await get("/v1/me/organizations", { token: read.token });
    expect(res.status, res.text).toBe(200);
    expect(idsOf(res)).toEqual([org.id]);
    const memberRead = await createPat(user, ["organization_member:read"]);
    expectProblem(await get("/v1/me/organizations", { token: memberRead.token }), 403, "insufficient_scope");
  });

  it("injection strings in the filter are just values", async () => {
    const user = await createUser();
    await createOrg(user);
    const res = await list(user, { filter: `name = "x' OR '1'='1" AND role != "') --"` });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toEqual([]);
  });
});
