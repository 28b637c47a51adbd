import { describe, expect, it } from "vitest";
import { get } from "../helpers/client";
import { addMemberDirect, createUser, unique } from "../helpers/factories";
import { adminAndOrg, asMember, collectPages, memberRowOf, membersPath, seedMembers, type MemberSpec, type SeededMember } from "./members-helpers";
import { errorPaths, expectProblem } from "../helpers/problems";

type Field = "display_name" | "email" | "joined_at";
interface OrderKey {
  field: Field;
  desc: boolean;
}

const parseOrder = (orderBy: string): OrderKey[] =>
  orderBy.split(",").map((part) => {
    const [field, dir] = part.trim().split(/\s+/);
    return { field: field as Field, desc: dir === "desc" };
  });

const fieldValue = (r: SeededMember, f: Field) => (f === "display_name" ? r.displayName.toLowerCase() : f === "email" ? (r.email ?? "") : r.joinedAt);

function compareBy(keys: OrderKey[]) {
  return (x: SeededMember, y: SeededMember) => {
    for (const k of keys) {
      const a = fieldValue(x, k.field);
      const b = fieldValue(y, k.field);
      if (a < b) return k.desc ? 1 : -1;
      if (a > b) return k.desc ? -1 : 1;
    }
    return 0;
  };
}

/**
 * The expected order, computed here. The data is built so that the requested keys alone decide
 * it (no ties), so the expectation does not lean on the server's tiebreaker.
 */
function expectedOrder(rows: SeededMember[], orderBy: string) {
  const cmp = compareBy(parseOrder(orderBy));
  const sorted = [...rows].sort(cmp);
  for (let i = 1; i < sorted.length; i++) expect(cmp(sorted[i - 1]!, sorted[i]!), `tie in test data under ${orderBy}`).not.toBe(0);
  return sorted;
}

/** Match order for `search:"p"`: by the matched text (the name if it matches, else the email). */
function expectedSearchOrder(rows: SeededMember[], prefix: string) {
  const p = prefix.toLowerCase();
  const key = (r: SeededMember) => (r.displayName.toLowerCase().startsWith(p) ? r.displayName.toLowerCase() : r.email!);
  const sorted = rows.filter((r) => matchesSearch(r, p)).sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) expect(key(sorted[i - 1]!)).not.toBe(key(sorted[i]!));
  return sorted;
}

const matchesSearch = (r: SeededMember, prefix: string) => {
  const p = prefix.toLowerCase();
  return r.displayName.toLowerCase().startsWith(p) || (r.email ?? "").startsWith(p);
};

function expectExactly(items: any[], expected: SeededMember[]) {
  const ids = items.map((m) => m.user.id);
  expect(new Set(ids).size, "duplicates across pages").toBe(ids.length);
  expect(items).toEqual(expected.map(asMember));
}

/**
 * Nine people whose names mix upper and lower case (so byte order and case-insensitive order
 * differ) and whose emails run in another order than their names, plus the creator (admin).
 */
async function orderingOrg() {
  const { admin, org } = await adminAndOrg();
  const tag = unique("").toLowerCase();
  const names = ["alice Zed", "Bob Young", "carol Xu", "Dave West", "eve Vance", "Frank Ury", "gina Tate", "Hank Sole", "ivy Ross"];
  const emailStarts = ["mia", "kai", "zoe", "abe", "ray", "fox", "ned", "tom", "cy"];
  const seeded = await seedMembers(
    org.id,
    names.map((name, i) => ({ name, email: `${emailStarts[i]}.${tag}@list.test` })),
  );
  const rows = [...seeded, await memberRowOf(org.id, admin.id, admin.accessToken)];
  return { admin, org, rows };
}

/**
 * People and service accounts with roles, where some names and some emails start with "pre"
 * (one member with both), and some only contain it.
 */
async function filterOrg() {
  const { admin, org } = await adminAndOrg();
  const tag = unique("").toLowerCase();
  const specs: MemberSpec[] = [
    { name: "Pre Anna", email: `anna.${tag}@list.test` },
    { name: "Bob Prefix", email: `prebob.${tag}@list.test` },
    { name: "Preston Pike", email: `preston.${tag}@list.test`, role: "admin" },
    { name: "prelude Quinn", email: `quinn.${tag}@list.test` },
    { name: "Carl Stone", email: `PREcarl.${tag}@list.test` },
    { name: "Dora Vance", email: `dora.${tag}@list.test`, role: "admin" },
    { name: "Eli Wu", email: `eli.${tag}@list.test` },
    { name: "Fay Xu", email: `fay.${tag}@list.test`, role: "admin" },
    { name: "PREMIUM Gus", email: `gus.${tag}@list.test` },
    { name: "Hal Young", email: `hal.${tag}@list.test` },
    { name: "pRetty Ida", email: `ida.${tag}@list.test`, role: "admin" },
    { name: "Jon Zane", email: `prejon.${tag}@list.test` },
    { name: "Kim Prescott", email: `kim.${tag}@list.test` },
    { name: "Pre Bot One", type: "service_account" },
    { name: "Deploy Bot", type: "service_account" },
    { name: "Build Bot", type: "service_account" },
    { name: "prep bot", type: "service_account" },
    { name: "Zeta Bot", type: "service_account" },
    { name: "Alpha Bot", type: "service_account" },
  ];
  const seeded = await seedMembers(org.id, specs);
  const rows = [...seeded, await memberRowOf(org.id, admin.id, admin.accessToken)];
  return { admin, org, rows };
}

describe("happy", () => {
  it.each([
    ["(default)", undefined, "joined_at desc"],
    ["display_name", "display_name", "display_name"],
    ["display_name desc", "display_name desc", "display_name desc"],
    ["email", "email", "email"],
    ["email desc", "email desc", "email desc"],
    ["joined_at", "joined_at", "joined_at"],
    ["joined_at desc", "joined_at desc", "joined_at desc"],
    ["display_name asc", "display_name asc", "display_name"],
    ["  email   desc ", "  email   desc ", "email desc"],
  ])("order_by %s pages through every member exactly once, in order", async (_label, orderBy, effective) => {
    const { admin, org, rows } = await orderingOrg();
    const { items, pages } = await collectPages(org.id, admin.accessToken, orderBy === undefined ? {} : { order_by: orderBy });
    expect(pages).toBe(5);
    expectExactly(items, expectedOrder(rows, effective));
  });

  it("order_by display_name is case-insensitive", async () => {
    const { admin, org, rows } = await orderingOrg();
    const { items } = await collectPages(org.id, admin.accessToken, { order_by: "display_name" }, 3);
    const names: string[] = items.map((m) => m.user.display_name);
    expect(names).toEqual(rows.map((r) => r.displayName).sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    // Byte order would put every capitalised name first.
    expect(names).not.toEqual([...names].sort());
    expect(names.slice(0, 3)).toEqual(["alice Zed", "Bob Young", "carol Xu"]);
  });

  it("a two-field order `display_name, joined_at desc` breaks name ties (any case) by the second field", async () => {
    const { admin, org } = await adminAndOrg();
    const seeded = await seedMembers(org.id, [
      { name: "sam same" },
      { name: "Ann Able" },
      { name: "SAM SAME" },
      { name: "zoe zed" },
      { name: "Sam Same" },
      { name: "Zoe Zed" },
      { name: "Mo Middle" },
      { name: "sam same" },
    ]);
    const rows = [...seeded, await memberRowOf(org.id, admin.id, admin.accessToken)];
    for (const orderBy of ["display_name, joined_at desc", "display_name desc,joined_at", "display_name, joined_at"]) {
      const { items, pages } = await collectPages(org.id, admin.accessToken, { order_by: orderBy });
      expect(pages).toBe(5);
      expectExactly(items, expectedOrder(rows, orderBy));
    }
    const { items } = await collectPages(org.id, admin.accessToken, { order_by: "display_name, joined_at desc" });
    const sams = items.filter((m) => m.user.display_name.toLowerCase() === "sam same");
    expect(sams.map((m) => m.user.id)).toEqual(
      seeded
        .filter((r) => r.displayName.toLowerCase() === "sam same")
        .map((r) => r.id)
        .reverse(),
    );
  });

  it.each([
    ['role = "admin"', undefined],
    ['role != "admin" AND type = "user"', "display_name"],
    ['type = "service_account"', "display_name desc"],
    ['type = "user" AND role = "user"', "email desc"],
    ['type != "service_account" AND role != "user"', "joined_at"],
    ['search:"pre" AND type = "user"', "joined_at"],
    ['search:"pre" AND role != "admin"', "display_name"],
    ['role != "admin" AND search:"PRE"', "display_name desc"],
    ['search:"pre" AND type = "user"', "email"],
    ['search:"pre" AND type = "user"', "display_name, joined_at desc"],
  ])("filter %s with order_by %s pages over ≥ 3 pages with no gaps or duplicates", async (filter, orderBy) => {
    const { admin, org, rows } = await filterOrg();
    const query: Record<string, string> = { filter };
    if (orderBy) query.order_by = orderBy;
    const { items, pages } = await collectPages(org.id, admin.accessToken, query);
    const terms = filter.split(" AND ").map((t) => /^(\w+)\s*(=|!=|:)\s*"(.*)"$/.exec(t.trim())!);
    const keep = rows.filter((r) =>
      terms.every(([, field, op, value]) => {
        if (field === "search") return matchesSearch(r, value!);
        const actual = field === "role" ? r.role : r.type;
        return op === "=" ? actual === value : actual !== value;
      }),
    );
    expect(keep.length).toBeGreaterThanOrEqual(5);
    expect(pages).toBeGreaterThanOrEqual(3);
    expectExactly(items, expectedOrder(keep, orderBy ?? "joined_at desc"));
  });

  it('search:"pre" without order_by pages in match order, a member matching by name and email once', async () => {
    const { admin, org, rows } = await filterOrg();
    const expected = expectedSearchOrder(rows, "pre");
    expect(expected.length).toBe(10);
    for (const prefix of ["pre", "PRE", "pRe"]) {
      const { items, pages } = await collectPages(org.id, admin.accessToken, { filter: `search:"${prefix}"` });
      expect(pages).toBe(5);
      expectExactly(items, expected);
    }
    const { items } = await collectPages(org.id, admin.accessToken, { filter: 'search:"pre"' }, 3);
    const names: string[] = items.map((m) => m.user.display_name);
    expect(names.filter((n) => n === "Preston Pike")).toHaveLength(1);
    // Prefix, not substring: a name or email that only contains "pre" is not a match.
    expect(names).not.toContain("Kim Prescott");
    expect(names).toContain("Bob Prefix"); // by email
    expect(names.slice(0, 5)).toEqual(["Pre Anna", "Pre Bot One", "Bob Prefix", "Carl Stone", "Jon Zane"]);
  });

  it("search combined with another filter and no order_by keeps match order across pages", async () => {
    const { admin, org, rows } = await filterOrg();
    for (const filter of ['search:"pre" AND type = "user"', 'type = "user" AND search:"pre"']) {
      const { items, pages } = await collectPages(org.id, admin.accessToken, { filter });
      expect(pages).toBe(4);
      expectExactly(
        items,
        expectedSearchOrder(
          rows.filter((r) => r.type === "user"),
          "pre",
        ),
      );
    }
    const admins = await collectPages(org.id, admin.accessToken, { filter: 'search:"pre" AND role = "admin"' });
    expectExactly(
      admins.items,
      expectedSearchOrder(
        rows.filter((r) => r.role === "admin"),
        "pre",
      ),
    );
    expect(admins.items.map((m) => m.user.display_name)).toEqual(["Preston Pike", "pRetty Ida"]);
  });

  it("search matches a longer prefix of the name or the email, in either case", async () => {
    const { admin, org } = await filterOrg();
    const list = async (filter: string) => (await collectPages(org.id, admin.accessToken, { filter }, 50)).items.map((m) => m.user.display_name);
    expect(await list('search:"preston"')).toEqual(["Preston Pike"]);
    expect(await list('search:"PRESTON P"')).toEqual(["Preston Pike"]);
    expect(await list('search:"precarl"')).toEqual(["Carl Stone"]);
    expect(await list('search:"kim p"')).toEqual(["Kim Prescott"]);
    expect(await list('search:"nobody-here"')).toEqual([]);
    expect(await list('search:"%"')).toEqual([]);
    expect(await list('search:"_"')).toEqual([]);
  });

  it("a filter that matches nothing gives an empty page with no token; service accounts list with a null email", async () => {
    const { admin, org, rows } = await filterOrg();
    const none = await get(`${membersPath(org.id)}?filter=${encodeURIComponent('role = "nobody"')}`, { token: admin.accessToken });
    expect(none.status, none.text).toBe(200);
    expect(none.body).toEqual({ items: [], next_page_token: "" });
    const all = await get(membersPath(org.id), { token: admin.accessToken });
    expect(all.body.items).toHaveLength(rows.length);
    expect(all.body.next_page_token).toBe("");
    for (const m of all.body.items) expect(m.user.email === null).toBe(m.type === "service_account");
  });

  it("page_size above 1000 is coerced; the default is 50", async () => {
    const { admin, org } = await adminAndOrg();
    await seedMembers(
      org.id,
      Array.from({ length: 55 }, (_, i) => ({ name: `Bulk ${String(i).padStart(2, "0")}` })),
    );
    const first = await get(membersPath(org.id), { token: admin.accessToken });
    expect(first.body.items).toHaveLength(50);
    expect(first.body.next_page_token).not.toBe("");
    const big = await get(`${membersPath(org.id)}?page_size=5000`, { token: admin.accessToken });
    expect(big.status, big.text).toBe(200);
    expect(big.body.items).toHaveLength(56);
    expect(big.body.next_page_token).toBe("");
  });

  it("the `user` role can list members", async () => {
    const { admin, org } = await adminAndOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const res = await get(membersPath(org.id), { token: member.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items.map((m: any) => m.user.id)).toContain(admin.id);
  });
});

describe("errors", () => {
  const list = (orgId: string, token: string, query: Record<string, string>) => get(`${membersPath(orgId)}?${new URLSearchParams(query)}`, { token });

  it('search:"" → 400 invalid_filter, with or without order_by', async () => {
    const { admin, org } = await adminAndOrg();
    const queries: Record<string, string>[] = [
      { filter: 'search:""' },
      { filter: 'search:""', order_by: "display_name" },
      { filter: 'type = "user" AND search:""' },
    ];
    for (const q of queries) {
      expectProblem(await list(org.id, admin.accessToken, q), 400, "invalid_filter");
    }
  });

  it.each([
    ['colour = "red"', /colour/],
    ['role:"ad"', /role/],
    ['type = "robot"', /user|service_account/],
    ['type:"user"', /type/],
    ["role = admin", /quoted/],
    ['role = "admin" OR type = "user"', /AND/],
    ['search = "pre"', /search/],
    ['search != "pre"', /search/],
    ['search:"a" AND search:"b"', /search/],
    ['role = "admin" AND', /field/],
    ['role ~ "admin"', /=/],
    ['role = "admin', /nterminated/],
  ])("filter %s → 400 invalid_filter saying what was expected", async (filter, detail) => {
    const { admin, org } = await adminAndOrg();
    const res = await list(org.id, admin.accessToken, { filter });
    expectProblem(res, 400, "invalid_filter");
    expect(res.body.detail).toMatch(detail);
  });

  it.each(["role", "name", "display_name sideways", "email, email", "joined_at desc desc", "member_id", ",", "display_name,"])(
    "order_by %j → 400 invalid_order_by",
    async (orderBy) => {
      const { admin, org } = await adminAndOrg();
      expectProblem(await list(org.id, admin.accessToken, { order_by: orderBy }), 400, "invalid_order_by");
    },
  );

  it.each(["0", "-1", "abc", "1.5"])("page_size=%s → 400 validation_failed on page_size", async (size) => {
    const { admin, org } = await adminAndOrg();
    const res = await list(org.id, admin.accessToken, { page_size: size });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["page_size"]);
  });

  it("a page token replayed with another filter, order_by or organization, or tampered with → 400 invalid_page_token", async () => {
    const { admin, org } = await filterOrg();
    const first = async (q: Record<string, string>) => {
      const res = await list(org.id, admin.accessToken, { ...q, page_size: "2" });
      expect(res.status, res.text).toBe(200);
      expect(res.body.next_page_token).not.toBe("");
      return res.body.next_page_token as string;
    };
    const plain = await first({});
    const byName = await first({ order_by: "display_name" });
    const admins = await first({ filter: 'role = "admin"' });
    const search = await first({ filter: 'search:"pre"' });
    const bad = async (q: Record<string, string>, orgId = org.id, token = admin.accessToken) =>
      expectProblem(await list(orgId, token, { page_size: "2", ...q }), 400, "invalid_page_token");

    await bad({ page_token: plain, filter: 'role = "admin"' });
    await bad({ page_token: plain, order_by: "display_name" });
    await bad({ page_token: plain, order_by: "joined_at" });
    await bad({ page_token: byName, order_by: "display_name desc" });
    await bad({ page_token: byName, order_by: "email" });
    await bad({ page_token: byName });
    await bad({ page_token: admins, filter: 'role = "user"' });
    await bad({ page_token: admins });
    await bad({ page_token: search, filter: 'search:"pr"' });
    await bad({ page_token: search, filter: 'search:"pre"', order_by: "display_name" });
    await bad({ page_token: search, filter: 'search:"pre" AND type = "user"' });
    await bad({ page_token: `${plain}x` });
    await bad({ page_token: plain.replace(/^./, (c) => (c === "e" ? "f" : "e")) });
    await bad({ page_token: "not-a-token" });
    await bad({ page_token: "a.b.c" });
    // Another organization's token, even for the same query, does not carry over.
    const other = await filterOrg();
    await bad({ page_token: plain }, other.org.id, other.admin.accessToken);

    // The same token with its own query still works.
    const ok = await list(org.id, admin.accessToken, { page_size: "2", page_token: byName, order_by: "display_name" });
    expect(ok.status, ok.text).toBe(200);
  });

  it("a member of another organization gets 404; anonymous gets 401", async () => {
    const { org } = await adminAndOrg();
    const { admin: stranger } = await adminAndOrg();
    expectProblem(await list(org.id, stranger.accessToken, {}), 404, "not_found");
    expectProblem(await get(membersPath(org.id)), 401, "unauthenticated");
    expectProblem(await list("org_00000000000000000000000000", stranger.accessToken, {}), 404, "not_found");
    expectProblem(await list("nope", stranger.accessToken, {}), 404, "not_found");
  });
});
