import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { get, type ApiResponse, type Cost } from "../helpers/client";
import { createPat } from "../helpers/factories";
import { adminAndOrg, createServiceAccount, membersPath } from "./members-helpers";

/**
 * §9: a list reads O(page_size) rows whatever the organization's size. One organization with
 * 5,000 seeded members (plus its creator); every page below must read at most page_size + 12 rows
 * in one D1 round trip (the issue allows two) and one KV read.
 */
const MEMBERS = 5000;
const PAGE = 50;
// The issue allows 2 round trips; the page read shares the authorization batch, so it takes 1.
const BUDGET = { rows: PAGE + 12, queries: 1, kvReads: 1 };

const pad = (i: number) => String(i).padStart(5, "0");
const nameOf = (i: number) => `Member ${pad(i)} Surname`;
const emailOf = (i: number) => `m${pad(i)}@scale.test`;

let orgId = "";
let token = "";
let adminId = "";
let serviceAccount: { id: string; key: string };
const measured: Record<string, Cost[]> = {};

function expectCheap(label: string, res: ApiResponse, pageSize = PAGE) {
  expect(res.status, res.text.slice(0, 300)).toBe(200);
  (measured[label] ??= []).push(res.cost);
  // The page plus the authorization read: a key's row, its account's scopes and the caller's membership (read by the batch and by the page's guard).
  expect(res.cost.rowsRead, `${label}: rows read`).toBeLessThanOrEqual(pageSize + 12);
  expect(res.cost.queries, `${label}: D1 round trips`).toBeLessThanOrEqual(BUDGET.queries);
  expect(res.cost.kvReads, `${label}: KV reads`).toBeLessThanOrEqual(BUDGET.kvReads);
}

const list = (query: Record<string, string>, t = token) =>
  get(`${membersPath(orgId)}?${new URLSearchParams({ page_size: String(PAGE), ...query })}`, { token: t });

/** The seeded members' numbers, in list order (the creator and the service account left out). */
const indexesOf = (items: any[]) =>
  items
    .map((m) => /^Member (\d{5}) Surname$/.exec(m.user.display_name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);

beforeAll(async () => {
  const { admin, org } = await adminAndOrg();
  orgId = org.id;
  token = admin.accessToken;
  adminId = admin.id;
  const base = Date.now() - 10 * 86_400_000;
  const insert = env.DB.prepare(
    "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', ?, ?, ?, ?, ?)",
  );
  for (let start = 0; start < MEMBERS; start += 200) {
    const batch: D1PreparedStatement[] = [];
    for (let i = start; i < Math.min(start + 200, MEMBERS); i++) {
      const name = nameOf(i);
      batch.push(insert.bind(orgId, newId("user", base + i), i % 50 === 0 ? "admin" : "user", name, name.toLowerCase(), emailOf(i), base + i));
    }
    await env.DB.batch(batch);
  }
  await env.DB.prepare("update organizations set member_count = member_count + ?, user_member_count = user_member_count + ? where id = ?")
    .bind(MEMBERS, MEMBERS, orgId)
    .run();
  // Joins last, as does nobody else: the newest two members are this account and the creator.
  const sa = await createServiceAccount(admin, orgId, { name: "Zz Scale Bot" });
  serviceAccount = { id: sa.service_account.id, key: sa.key };
  const count = await env.DB.prepare("select count(*) as n from members where organization_id = ?").bind(orgId).first<{ n: number }>();
  expect(count!.n).toBe(MEMBERS + 2);
});

afterAll(() => {
  const summary = Object.entries(measured).map(([label, costs]) => ({
    label,
    requests: costs.length,
    max_rows_read: Math.max(...costs.map((c) => c.rowsRead)),
    max_queries: Math.max(...costs.map((c) => c.queries)),
    max_kv_reads: Math.max(...costs.map((c) => c.kvReads)),
  }));
  console.log(`members at scale (${MEMBERS + 2} members, page_size ${PAGE}):\n${summary.map((s) => JSON.stringify(s)).join("\n")}`);
});

describe("happy", () => {
  it("the organization reports its size", async () => {
    const res = await get(`/v1/organizations/${orgId}`, { token });
    expect(res.status).toBe(200);
    expect(res.body.member_count).toBe(MEMBERS + 2);
  });

  it("the first page (joined_at desc) is cheap and holds the newest members", async () => {
    const res = await list({});
    expectCheap("first page", res);
    expect(res.body.items.slice(0, 2).map((m: any) => m.user.id)).toEqual([serviceAccount.id, adminId]);
    expect(indexesOf(res.body.items)).toEqual(Array.from({ length: PAGE - 2 }, (_, i) => MEMBERS - 1 - i));
  });

  it("a deep page, 25 page tokens in, costs what the first did", async () => {
    let pageToken = "";
    const seen: number[] = [];
    for (let page = 0; page < 26; page++) {
      const res = await list(pageToken ? { page_token: pageToken } : {});
      expectCheap(page >= 20 ? "deep page (joined_at desc, ≥ 20 tokens in)" : "pages 1-20 (joined_at desc)", res);
      seen.push(...indexesOf(res.body.items));
      pageToken = res.body.next_page_token;
      expect(pageToken).not.toBe("");
    }
    // After the service account and the creator, every seeded member from the newest, with no gap or repeat.
    expect(seen).toEqual(Array.from({ length: 26 * PAGE - 2 }, (_, i) => MEMBERS - 1 - i));
  });

  it("a PAT lists within the same budget (§9: one KV read, two D1 round trips)", async () => {
    const pat = await createPat({ accessToken: token }, ["organization_member:read"]);
    const res = await list({}, pat.token);
    expectCheap("first page (PAT)", res);
  });

  it("a service account key lists within the same budget", async () => {
    const res = await list({}, serviceAccount.key);
    expectCheap("first page (service account key)", res);
  });

  it('search:"member 012" (name prefix) pages cheaply through exactly its 100 matches', async () => {
    const first = await list({ filter: 'search:"member 012"' });
    expectCheap('search:"member 012" page 1', first);
    const second = await list({ filter: 'search:"member 012"', page_token: first.body.next_page_token });
    expectCheap('search:"member 012" page 2', second);
    expect(second.body.next_page_token).toBe("");
    expect(indexesOf([...first.body.items, ...second.body.items])).toEqual(Array.from({ length: 100 }, (_, i) => 1200 + i));
  });

  it('search:"m012" (email prefix) pages cheaply through exactly its 100 matches', async () => {
    const first = await list({ filter: 'search:"M012"' });
    expectCheap('search:"m012" page 1', first);
    const second = await list({ filter: 'search:"M012"', page_token: first.body.next_page_token });
    expectCheap('search:"m012" page 2', second);
    expect(second.body.next_page_token).toBe("");
    const items = [...first.body.items, ...second.body.items];
    expect(items.map((m) => m.user.email)).toEqual(Array.from({ length: 100 }, (_, i) => emailOf(1200 + i)));
  });

  it.each([
    ["member 0", "name"],
    ["m0", "email"],
  ])('search:"%s" (every member, by %s): a page 20 tokens deep costs what the first did', async (prefix) => {
    let pageToken = "";
    const seen: number[] = [];
    for (let page = 0; page < 21; page++) {
      const res = await list({ filter: `search:"${prefix}"`, ...(pageToken ? { page_token: pageToken } : {}) });
      expectCheap(page === 20 ? `search:"${prefix}" page 21` : `search:"${prefix}" pages 1-20`, res);
      seen.push(...indexesOf(res.body.items));
      pageToken = res.body.next_page_token;
      expect(pageToken).not.toBe("");
    }
    expect(seen).toEqual(Array.from({ length: 21 * PAGE }, (_, i) => i));
  });

  it("order_by display_name: the first page and one 20 tokens in are cheap", async () => {
    let pageToken = "";
    const seen: number[] = [];
    for (let page = 0; page < 21; page++) {
      const res = await list({ order_by: "display_name", ...(pageToken ? { page_token: pageToken } : {}) });
      expectCheap(page === 0 ? "order_by display_name page 1" : "order_by display_name pages 2-21", res);
      seen.push(...indexesOf(res.body.items));
      pageToken = res.body.next_page_token;
    }
    expect(seen).toEqual(Array.from({ length: 21 * PAGE }, (_, i) => i));
  });

  it("order_by email desc and joined_at are cheap too", async () => {
    const byEmail = await list({ order_by: "email desc" });
    expectCheap("order_by email desc page 1", byEmail);
    const deeper = await list({ order_by: "email desc", page_token: byEmail.body.next_page_token });
    expectCheap("order_by email desc page 2", deeper);
    const oldest = await list({ order_by: "joined_at" });
    expectCheap("order_by joined_at page 1", oldest);
    expect(indexesOf(oldest.body.items)).toEqual(Array.from({ length: PAGE }, (_, i) => i));
  });

  it('filter type = "service_account": one row, read cheaply', async () => {
    const res = await list({ filter: 'type = "service_account"' });
    expectCheap('type = "service_account"', res);
    expect(res.body.items).toEqual([
      expect.objectContaining({ user: { id: serviceAccount.id, display_name: "Zz Scale Bot", email: null }, type: "service_account" }),
    ]);
  });

  it('filter role = "admin": a cheap page of the 101 admins', async () => {
    const first = await list({ filter: 'role = "admin"' });
    expectCheap('role = "admin" page 1', first);
    expect(first.body.items.every((m: any) => m.role === "admin")).toBe(true);
    const second = await list({ filter: 'role = "admin"', page_token: first.body.next_page_token });
    expectCheap('role = "admin" page 2', second);
    const third = await list({ filter: 'role = "admin"', page_token: second.body.next_page_token });
    expectCheap('role = "admin" page 3', third);
    expect(third.body.items).toHaveLength(1);
    expect(third.body.next_page_token).toBe("");
  });

  it('filter type = "user" and role != "admin" stay within budget', async () => {
    expectCheap('type = "user" page 1', await list({ filter: 'type = "user"' }));
    expectCheap('role != "admin" page 1', await list({ filter: 'role != "admin"' }));
  });
});
