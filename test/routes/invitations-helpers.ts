import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { Bindings } from "../../src/env";
import { get, post } from "../helpers/client";
import { uniqueEmail } from "../helpers/factories";

export const invitationsPath = (orgId: string) => `/v1/organizations/${orgId}/invitations`;
export const invitationPath = (orgId: string, id: string) => `/v1/organizations/${orgId}/invitations/${id}`;
export const previewPath = (token: string) => `/v1/invitations/${encodeURIComponent(token)}`;
export const acceptPath = (token: string) => `/v1/invitations/${encodeURIComponent(token)}/accept`;

/**
 * An EMAIL_QUEUE whose sends fail, as when the Queues service is down. The invitation and its
 * outbox row are already committed by then, so this is also how a test keeps the real queue's
 * consumer away from a row it wants to drive by hand. (`down` gives the override its own
 * testEnv cache key: functions do not survive JSON.stringify.)
 */
const downQueue = {
  down: true,
  send: () => Promise.reject(new Error("queue unavailable")),
  sendBatch: () => Promise.reject(new Error("queue unavailable")),
} as unknown as Queue;
export const queueDown: Partial<Bindings> = { EMAIL_QUEUE: downQueue };

/** Creates one invitation through the API and expects 201. */
export async function invite(token: string, orgId: string, body: Record<string, unknown> = {}, opts: { env?: Partial<Bindings> } = {}) {
  const res = await post(invitationsPath(orgId), { email: uniqueEmail("invitee"), ...body }, { token, env: opts.env });
  expect(res.status, res.text).toBe(201);
  return res.body as Invitation;
}

/** An invitation without an email, whose accept link (and so its token) comes back in the response. */
export async function inviteWithToken(token: string, orgId: string, body: Record<string, unknown> = {}) {
  const inv = await invite(token, orgId, { ...body, send_email: false });
  return { invitation: inv, token: tokenOf(inv.accept_url!) };
}

export const tokenOf = (acceptUrl: string) => new URL(acceptUrl).searchParams.get("token")!;

export interface Invitation {
  id: string;
  email: string;
  role: string;
  status: string;
  message: string | null;
  project_ids: string[];
  invited_by: { id: string | null; display_name: string };
  email_status: "queued" | "sent" | "failed" | null;
  expires_at: string;
  created_at: string;
  accepted_at: string | null;
  accept_url?: string;
}

/** The stored rows behind an invitation, read straight from D1. */
export async function invitationRow(id: string) {
  return env.DB.prepare("select * from invitations where id = ?").bind(id).first<Record<string, any>>();
}

export async function outboxRow(id: string) {
  return env.DB.prepare("select * from outbox where id = ?").bind(id).first<Record<string, any>>();
}

export async function orgCounters(orgId: string) {
  return (await env.DB.prepare("select member_count, user_member_count, pending_invitation_count from organizations where id = ?").bind(orgId).first<{
    member_count: number;
    user_member_count: number;
    pending_invitation_count: number;
  }>())!;
}

/** Moves an invitation's expiry into the past, as if its days had run out. */
export async function expireDirect(id: string) {
  await env.DB.prepare("update invitations set expires_at = ? where id = ?")
    .bind(Date.now() - 1000, id)
    .run();
}

/** Emails the outbox provider delivered to `to`, newest first. */
export async function mailboxFor(to: string) {
  const res = await get(`/v1/dev/emails?to=${encodeURIComponent(to)}`);
  expect(res.status, res.text).toBe(200);
  return res.body.items as { id: string; to: string; subject: string; text: string; html: string }[];
}

/** Polls until `check` holds: the real queue's consumer runs in the background, batching for up to a second. */
export async function eventually<T>(read: () => Promise<T>, check: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (check(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
