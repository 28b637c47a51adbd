import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { post, put } from "../helpers/client";
import { createVerifiedUser, uniqueEmail, type TestUser } from "../helpers/factories";

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
export const LICENSE_ID = /^lic_[0-9A-HJKMNP-TV-Z]{26}$/;
export const DEPLOYMENT_ID = /^dep_[0-9A-HJKMNP-TV-Z]{26}$/;
export const LICENSE_KEY = /^lk_[A-Za-z0-9_-]{43}$/;
export const UNKNOWN_LICENSE = "lic_01JD6Q5W8ZK3H0V8N6C2Y4T1RB";

export interface PlatformAdmin extends TestUser {
  /** Request options that make this user a platform administrator. */
  as: { token: string; env: { PLATFORM_ADMIN_EMAILS: string } };
}

/** A verified user whose email is listed in PLATFORM_ADMIN_EMAILS (for the requests that pass `as.env`). */
export async function platformAdmin(): Promise<PlatformAdmin> {
  const user = await createVerifiedUser({ email: uniqueEmail("root") });
  return { ...user, as: { token: user.accessToken, env: { PLATFORM_ADMIN_EMAILS: user.email } } };
}

export interface License {
  id: string;
  plan: string;
  seats: number;
  features: string[];
  expires_at: string | null;
  organization_id: string | null;
  revoked_at: string | null;
  key_prefix: string;
  created_at: string;
  updated_at: string;
  license_key: string;
}

export async function createLicense(admin: PlatformAdmin, body: Record<string, unknown> = {}): Promise<License> {
  const res = await post("/v1/licenses", { plan: "team", seats: 25, features: [], ...body }, admin.as);
  expect(res.status, res.text).toBe(201);
  return res.body as License;
}

export async function assignLicense(orgId: string, licenseId: string, owner: { accessToken: string }) {
  const res = await put(`/v1/organizations/${orgId}/license`, { license_id: licenseId }, { token: owner.accessToken });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** Moves a license's expiry into the past (the API refuses to create one that is already expired). */
export async function expireDirect(licenseId: string) {
  await env.DB.prepare("update licenses set expires_at = ? where id = ?")
    .bind(Date.now() - 1000, licenseId)
    .run();
}

export async function sha256Hex(value: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Human members plus pending invitations, as the organization's counters hold them. */
export async function seatsUsedDirect(orgId: string): Promise<number> {
  const row = await env.DB.prepare("select user_member_count + pending_invitation_count as n from organizations where id = ?")
    .bind(orgId)
    .first<{ n: number }>();
  return row!.n;
}
