import { expect } from "vitest";
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
