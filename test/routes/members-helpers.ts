import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { newId } from "../../src/lib/ids";
import { get, post } from "../helpers/client";
import { createOrg, createUser, unique } from "../helpers/factories";

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export const membersPath = (orgId: string) => `/v1/organizations/${orgId}/members`;
export const memberPath = (orgId: string, memberId: string) => `/v1/organizations/${orgId}/members/${memberId}`;

export async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

export async function createRole(admin: { accessToken: string }, orgId: string, permissions: string[]) {
  const res = await post(`/v1/organizations/${orgId}/roles`, { name: unique("role").slice(0, 40), permissions }, { token: admin.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string; permissions: string[] };
}

export async function createServiceAccount(admin: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(`/v1/organizations/${orgId}/service-accounts`, { name: `Bot ${unique()}`, ...body }, { token: admin.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { service_account: { id: string; name: string; role: string }; key: string };
}

export async function memberCount(orgId: string, token: string) {
  const res = await get(`/v1/organizations/${orgId}`, { token });
  expect(res.status, res.text).toBe(200);
  return res.body.member_count as number;
}

/** A member row as the list test sees it: the columns the API orders and filters on. */
export interface SeededMember {
  id: string;
  type: "user" | "service_account";
  role: string;
  displayName: string;
  email: string | null;
  joinedAt: number;
}

export interface MemberSpec {
  name: string;
  email?: string | null;
  role?: string;
  type?: "user" | "service_account";
}

/**
 * Inserts member rows straight into D1 with distinct, increasing joined_at values (a second
 * apart, in the past, so the organization's creator joined last). Listing reads the members table
 * alone, so these rows need no users or service_accounts rows.
 */
export async function seedMembers(orgId: string, specs: MemberSpec[]): Promise<SeededMember[]> {
  const base = Date.now() - 10_000_000;
  const rows: SeededMember[] = specs.map((s, i) => {
    const type = s.type ?? "user";
    return {
      id: newId(type === "user" ? "user" : "serviceAccount", base + i * 1000),
      type,
      role: s.role ?? (type === "user" ? "user" : "service_account"),
      displayName: s.name,
      email: type === "service_account" ? null : (s.email ?? `${unique("m")}@list.test`).toLowerCase(),
      joinedAt: base + i * 1000,
    };
  });
  const humans = rows.filter((r) => r.type === "user").length;
  await env.DB.batch([
    ...rows.map((r) =>
      env.DB.prepare(
        "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
      ).bind(orgId, r.id, r.type, r.role, r.displayName, r.displayName.toLowerCase(), r.email ?? "", r.joinedAt),
    ),
    env.DB.prepare("update organizations set member_count = member_count + ?, user_member_count = user_member_count + ? where id = ?").bind(
      rows.length,
      humans,
      orgId,
    ),
  ]);
  return rows;
}

/** The organization's creator as a row, read back through the API so its joined_at is exact. */
export async function memberRowOf(orgId: string, memberId: string, token: string): Promise<SeededMember> {
  const res = await get(memberPath(orgId, memberId), { token });
  expect(res.status, res.text).toBe(200);
  const m = res.body;
  return { id: m.user.id, type: m.type, role: m.role, displayName: m.user.display_name, email: m.user.email, joinedAt: Date.parse(m.joined_at) };
}

/** A seeded row as the API serializes it. */
export const asMember = (r: SeededMember) => ({
  user: { id: r.id, display_name: r.displayName, email: r.email },
  role: r.role,
  type: r.type,
  joined_at: new Date(r.joinedAt).toISOString(),
});

/**
 * Follows next_page_token to the end and returns every page's items (and the page count).
 * Every page must be 200 and, but for the last, exactly page_size long.
 */
export async function collectPages(orgId: string, token: string, query: Record<string, string>, pageSize = 2, maxPages = 100) {
  const items: any[] = [];
  let pageToken = "";
  let pages = 0;
  for (;;) {
    const qs = new URLSearchParams({ ...query, page_size: String(pageSize), ...(pageToken ? { page_token: pageToken } : {}) });
    const res = await get(`${membersPath(orgId)}?${qs}`, { token });
    expect(res.status, res.text).toBe(200);
    pages++;
    items.push(...res.body.items);
    pageToken = res.body.next_page_token;
    expect(typeof pageToken).toBe("string");
    if (!pageToken) {
      expect(res.body.items.length).toBeLessThanOrEqual(pageSize);
      break;
    }
    expect(res.body.items.length).toBe(pageSize);
    expect(pages, "runaway pagination").toBeLessThan(maxPages);
  }
  return { items, pages };
}
