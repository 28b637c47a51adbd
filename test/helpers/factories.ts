import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { newId } from "../../src/lib/ids";
import { post } from "./client";

let counter = 0;
export const unique = (prefix = "t") => `${prefix}${Date.now().toString(36)}${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
export const uniqueEmail = (prefix = "user") => `${unique(prefix)}@example.com`;
export const PASSWORD = "correct horse battery staple";

export interface TestUser {
  id: string;
  email: string;
  password: string;
  displayName: string;
  accessToken: string;
  refreshToken: string;
}

export async function createUser(opts: { email?: string; displayName?: string; password?: string } = {}): Promise<TestUser> {
  const email = opts.email ?? uniqueEmail();
  const password = opts.password ?? PASSWORD;
  const displayName = opts.displayName ?? `User ${unique("")}`;
  const res = await post("/v1/auth/signup", { email, password, display_name: displayName });
  expect(res.status, res.text).toBe(201);
  return { id: res.body.user.id, email: res.body.user.email, password, displayName, accessToken: res.body.access_token, refreshToken: res.body.refresh_token };
}

export async function createOrg(owner: { accessToken: string }, body: Record<string, unknown> = {}) {
  const res = await post("/v1/organizations", { name: `Org ${unique("")}`, ...body }, { token: owner.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string; slug: string; [k: string]: unknown };
}

export async function createPat(user: { accessToken: string }, scopes: string[], extra: Record<string, unknown> = {}) {
  const res = await post("/v1/me/tokens", { name: `pat ${unique("")}`, scopes, ...extra }, { token: user.accessToken });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; token: string; [k: string]: unknown };
}

/**
 * Direct seeding through the real D1 binding, for states the API under test cannot create yet
 * or would create too slowly (hundreds of rows).
 */

export async function addMemberDirect(orgId: string, user: { id: string; email: string; displayName: string }, role = "user") {
  const now = Date.now();
  await env.DB.batch([
    env.DB.prepare(
      "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', ?, ?, ?, ?, ?)",
    ).bind(orgId, user.id, role, user.displayName, user.displayName.toLowerCase(), user.email, now),
    env.DB.prepare("update organizations set member_count = member_count + 1, user_member_count = user_member_count + 1 where id = ?").bind(orgId),
  ]);
}

/** Creates `count` organizations owned by `userId`, who is admin of each; returns their ids in creation order. */
export async function seedOrganizations(user: { id: string; email: string; displayName: string }, count: number, namePrefix = "Seeded"): Promise<string[]> {
  const ids: string[] = [];
  const base = Date.now() - count;
  const stmts: D1PreparedStatement[] = [];
  for (let i = 0; i < count; i++) {
    const id = newId("organization", base + i);
    ids.push(id);
    const now = base + i;
    stmts.push(
      env.DB.prepare(
        "insert into organizations (id, name, slug, owner_id, member_count, user_member_count, created_at, updated_at) values (?, ?, ?, ?, 1, 1, ?, ?)",
      ).bind(id, `${namePrefix} ${String(i).padStart(4, "0")}`, `${namePrefix.toLowerCase()}-${id.slice(4).toLowerCase()}`, user.id, now, now),
      env.DB.prepare(
        "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', 'admin', ?, ?, ?, ?)",
      ).bind(id, user.id, user.displayName, user.displayName.toLowerCase(), user.email, now),
    );
  }
  for (let i = 0; i < stmts.length; i += 200) await env.DB.batch(stmts.slice(i, i + 200));
  return ids;
}

/** Marks a user's email verified (the email round trip is tested on its own). */
export async function verifyUserDirect(userId: string) {
  await env.DB.prepare("update users set email_verified_at = ? where id = ?").bind(Date.now(), userId).run();
}

/** A user whose address is verified, as members added by email must be. */
export async function createVerifiedUser(opts: { email?: string; displayName?: string; password?: string } = {}): Promise<TestUser> {
  const user = await createUser(opts);
  await verifyUserDirect(user.id);
  return user;
}
