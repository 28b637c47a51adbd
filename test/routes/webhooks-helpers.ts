import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";
import { post, testEnv } from "../helpers/client";
import { createOrg, createUser, type TestUser } from "../helpers/factories";
import type { QueueResult } from "../queue/queue-helpers";

export const WEBHOOK_QUEUE = "tenancy-webhooks";
export const WEBHOOK_DLQ = "tenancy-webhooks-dlq";

export const webhooksPath = (orgId: string) => `/v1/organizations/${orgId}/webhooks`;
export const webhookPath = (orgId: string, id: string) => `${webhooksPath(orgId)}/${id}`;
export const deliveriesPath = (orgId: string, id: string) => `${webhookPath(orgId, id)}/deliveries`;

export interface Webhook {
  id: string;
  url: string;
  description: string | null;
  events: string[];
  enabled: boolean;
  disabled_reason: string | null;
  failing_since: string | null;
  secret_rotation_ends_at: string | null;
  created_at: string;
  updated_at: string;
  secret?: string;
}

let queues = 0;

/**
 * A WEBHOOK_QUEUE that records what is sent instead of handing it to the real consumer, so a
 * test drives every delivery by hand (and the background consumer never races it). `name` gives
 * each recorder its own testEnv cache entry (functions do not survive JSON.stringify).
 */
export function recordingQueue(opts: { down?: boolean } = {}) {
  const sent: string[] = [];
  const queue = {
    name: `recorder-${++queues}`,
    down: Boolean(opts.down),
    send: async (body: { delivery_id: string }) => {
      if (opts.down) throw new Error("queue unavailable");
      sent.push(body.delivery_id);
    },
    sendBatch: async (messages: { body: { delivery_id: string } }[]) => {
      if (opts.down) throw new Error("queue unavailable");
      sent.push(...messages.map((m) => m.body.delivery_id));
    },
  } as unknown as Queue;
  const overrides: Partial<Bindings> = { WEBHOOK_QUEUE: queue };
  return { sent, env: overrides, take: () => sent.splice(0, sent.length) };
}

export async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

export async function createWebhook(caller: { accessToken: string } | TestUser, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(
    webhooksPath(orgId),
    { url: "https://hooks.example.com/tenancy", events: ["member.role_changed"], ...body },
    { token: caller.accessToken },
  );
  expect(res.status, res.text).toBe(201);
  return res.body as Webhook & { secret: string };
}

export const webhookRow = (id: string) => env.DB.prepare("select * from webhooks where id = ?").bind(id).first<Record<string, any>>();
export const deliveryRow = (id: string) => env.DB.prepare("select * from webhook_deliveries where id = ?").bind(id).first<Record<string, any>>();
export const deliveriesOf = async (webhookId: string) =>
  (await env.DB.prepare("select * from webhook_deliveries where webhook_id = ? order by created_at, id").bind(webhookId).all<Record<string, any>>()).results;
export const attemptsOf = async (deliveryId: string) =>
  (await env.DB.prepare("select * from webhook_attempts where delivery_id = ? order by attempt").bind(deliveryId).all<Record<string, any>>()).results;
export const auditOf = async (orgId: string, action: string) =>
  (
    await env.DB.prepare("select * from audit_logs where organization_id = ? and action = ? order by created_at, id")
      .bind(orgId, action)
      .all<Record<string, any>>()
  ).results;

/**
 * Writes `count` deliveries straight into the outbox for one endpoint, as the fan-out statement
 * does, for tests about the consumer alone (events from real routes are tested apart).
 */
export async function seedDeliveries(
  webhookId: string,
  orgId: string,
  count: number,
  opts: { status?: string; createdAt?: number; nextAttemptAt?: number | null; updatedAt?: number } = {},
) {
  const now = opts.createdAt ?? Date.now();
  const ids: string[] = [];
  const stmts: D1PreparedStatement[] = [];
  for (let i = 0; i < count; i++) {
    const id = `whd_${crypto.randomUUID().replace(/-/g, "")}`;
    ids.push(id);
    const eventId = `evt_seed${i}_${crypto.randomUUID().slice(0, 8)}`;
    const payload = JSON.stringify({ type: "member.role_changed", timestamp: new Date(now).toISOString(), data: { n: i } });
    stmts.push(
      env.DB.prepare(
        "insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at) values (?, ?, ?, ?, 'member.role_changed', ?, ?, 0, ?, ?, ?)",
      ).bind(
        id,
        webhookId,
        orgId,
        eventId,
        payload,
        opts.status ?? "queued",
        opts.nextAttemptAt === undefined ? now : opts.nextAttemptAt,
        now + i,
        opts.updatedAt ?? now,
      ),
    );
  }
  for (let i = 0; i < stmts.length; i += 200) await env.DB.batch(stmts.slice(i, i + 200));
  return ids;
}

export interface Received {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * Stubs the receiver: every POST the consumer makes is recorded and answered by `answer`.
 * Anything not a webhook POST fails the test.
 */
export function stubReceiver(answer: (req: Received, n: number) => Response | Promise<Response> = () => new Response("ok")) {
  const received: Received[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input as RequestInfo, init as RequestInit);
    if (req.method !== "POST") throw new Error(`unexpected ${req.method} ${req.url}`);
    expect((init as RequestInit).redirect).toBe("manual");
    expect((init as RequestInit).signal).toBeInstanceOf(AbortSignal);
    const r: Received = { url: req.url, headers: Object.fromEntries(req.headers), body: await req.text() };
    received.push(r);
    return answer(r, received.length);
  });
  return { received, spy };
}

let seq = 0;

/** Runs the worker's real queue() handler on a webhook batch, as the Queues runtime would, and reports each message's fate. */
export async function runWebhookQueue(
  deliveryIds: string[],
  opts: { queue?: string; attempts?: number | ((id: string) => number); env?: Partial<Bindings> } = {},
) {
  const messages = deliveryIds.map((id) => ({
    id: `whmsg-${++seq}`,
    timestamp: new Date(),
    attempts: typeof opts.attempts === "function" ? opts.attempts(id) : (opts.attempts ?? 1),
    body: { type: "webhook", delivery_id: id },
  }));
  const batch = createMessageBatch(opts.queue ?? WEBHOOK_QUEUE, messages);
  // getQueueResult reports which messages were retried but not with what delay: watch retry() itself.
  const retries = new Map<string, number | undefined>();
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    Object.defineProperty(m, "retry", {
      value: (o?: QueueRetryOptions) => (retries.set((m.body as { delivery_id: string }).delivery_id, o?.delaySeconds), retry(o)),
    });
  }
  const ctx = createExecutionContext();
  await worker.queue(batch, testEnv(opts.env), ctx);
  const result = (await getQueueResult(batch, ctx)) as unknown as QueueResult;
  const byMessage = new Map(messages.map((m) => [m.id, m.body.delivery_id]));
  const acked = result.explicitAcks.map((id) => byMessage.get(id)!);
  expect(acked.length + retries.size).toBe(messages.length);
  return { result, acked, retried: retries };
}
