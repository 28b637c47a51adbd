import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { auditStatements, afterCommit } from "../../src/audit/record";
import { createDb, newDbStats } from "../../src/db/client";
import { systemCtx } from "../../src/env";
import { DISABLE_AFTER_MS, MAX_ATTEMPTS, RETRY_SCHEDULE_SECONDS, WEBHOOK_TIMEOUT_MS } from "../../src/queue/webhook-consumer";
import { DELIVERY_RETENTION_MS, pruneWebhookDeliveries, redeliverStuckWebhooks } from "../../src/queue/webhook-outbox";
import { patch, post, testEnv } from "../helpers/client";
import { addMemberDirect, createUser, createVerifiedUser } from "../helpers/factories";
import {
  adminAndOrg,
  attemptsOf,
  auditOf,
  createWebhook,
  deliveriesOf,
  deliveryRow,
  recordingQueue,
  runWebhookQueue,
  seedDeliveries,
  stubReceiver,
  WEBHOOK_DLQ,
  webhookPath,
  webhookRow,
  type Received,
} from "../routes/webhooks-helpers";
import { mailboxFor, queueDown } from "../routes/invitations-helpers";

let logged: string[] = [];
beforeEach(() => {
  logged = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

const DAY = 86_400_000;
const verify = (secret: string, r: Received) => new Webhook(secret).verify(r.body, r.headers);

/** An endpoint for member.role_changed and one real event through PATCH …/members/{id}; returns its delivery, not yet sent. */
async function oneEvent(opts: { url?: string } = {}) {
  const { admin, org } = await adminAndOrg();
  const queue = recordingQueue();
  const w = await createWebhook(admin, org.id, { url: opts.url ?? "https://hooks.example.com/in", events: ["member.role_changed"] });
  const member = await createVerifiedUser();
  await addMemberDirect(org.id, member, "user");
  const res = await patch(`/v1/organizations/${org.id}/members/${member.id}`, { role: "admin" }, { token: admin.accessToken, env: queue.env });
  expect(res.status, res.text).toBe(200);
  const [delivery] = queue.take();
  expect(delivery).toMatch(/^whd_/);
  return { admin, org, w, queue, delivery: delivery!, member };
}

describe("signed delivery", () => {
  it("POSTs the stored body with Standard Webhooks headers that the standardwebhooks package verifies", async () => {
    const { w, queue, delivery, member } = await oneEvent();
    const { received } = stubReceiver();
    const before = Math.floor(Date.now() / 1000);
    const { acked } = await runWebhookQueue([delivery], { env: queue.env });
    expect(acked).toEqual([delivery]);

    const [r, ...more] = received;
    expect(more).toEqual([]);
    const row = (await deliveryRow(delivery))!;
    expect(r!.url).toBe("https://hooks.example.com/in");
    expect(r!.body).toBe(row.payload);
    expect(r!.headers["content-type"]).toBe("application/json");
    expect(r!.headers["webhook-id"]).toBe(row.event_id);
    expect(Number(r!.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(before);
    expect(r!.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    const payload = verify(w.secret, r!) as { type: string; timestamp: string; data: Record<string, unknown> };
    expect(payload).toMatchObject({ type: "member.role_changed", data: { user: { id: member.id }, role: "admin", previous_role: "user" } });
    // Another secret, or a body changed by one byte, does not verify.
    expect(() => verify(`whsec_${btoa("x".repeat(32))}`, r!)).toThrow();
    expect(() => verify(w.secret, { ...r!, body: r!.body.replace("admin", "Admin") })).toThrow();

    expect(row).toMatchObject({
      status: "succeeded",
      attempts: 1,
      last_response_code: 200,
      last_error: null,
      next_attempt_at: null,
      delivered_at: expect.any(Number),
    });
    expect(await attemptsOf(delivery)).toMatchObject([{ attempt: 1, response_code: 200, error: null }]);
    for (const line of logged) {
      expect(line).not.toContain(w.secret.slice(6));
      expect(line).not.toContain(r!.body);
    }
  });

  it("during a rotation both signatures are sent and either secret verifies; after the grace only the new one", async () => {
    const { admin, org, w, queue, delivery } = await oneEvent();
    const rotated = await post(`${webhookPath(org.id, w.id)}/rotate-secret`, { grace_seconds: 600 }, { token: admin.accessToken });
    expect(rotated.status, rotated.text).toBe(200);
    const { received } = stubReceiver(() => new Response(null, { status: 500 }));
    await runWebhookQueue([delivery], { env: queue.env });
    const during = received[0]!;
    expect(during.headers["webhook-signature"]).toMatch(/^v1,\S+ v1,\S+$/);
    expect(verify(rotated.body.secret, during)).toBeTruthy();
    expect(verify(w.secret, during)).toBeTruthy();

    await env.DB.prepare("update webhooks set previous_secret_expires_at = ? where id = ?")
      .bind(Date.now() - 1, w.id)
      .run();
    await runWebhookQueue([delivery], { env: queue.env, attempts: 2 });
    const after = received[1]!;
    expect(after.headers["webhook-signature"]).toMatch(/^v1,\S+$/);
    expect(verify(rotated.body.secret, after)).toBeTruthy();
    expect(() => verify(w.secret, after)).toThrow();
    expect(after.headers["webhook-id"]).toBe(during.headers["webhook-id"]);
  });
});

describe("retries", () => {
  it("a failure is retried on the documented schedule with ±20 % jitter, recorded per attempt; the last attempt fails it", async () => {
    const { w, queue, delivery } = await oneEvent();
    const { received } = stubReceiver(() => new Response("down", { status: 500 }));
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const started = Date.now();
      const { retried, acked } = await runWebhookQueue([delivery], { env: queue.env, attempts: attempt });
      expect(acked).toEqual([]);
      const delay = retried.get(delivery)!;
      const base = RETRY_SCHEDULE_SECONDS[attempt - 1]!;
      expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
      expect(delay).toBeLessThanOrEqual(Math.min(43_200, Math.ceil(base * 1.2)));
      const row = (await deliveryRow(delivery))!;
      expect(row).toMatchObject({ status: "queued", attempts: attempt, last_response_code: 500, last_error: "HTTP 500" });
      expect(row.next_attempt_at).toBeGreaterThanOrEqual(started + delay * 1000);
      expect(row.next_attempt_at).toBeLessThanOrEqual(Date.now() + delay * 1000);
    }
    const last = await runWebhookQueue([delivery], { env: queue.env, attempts: MAX_ATTEMPTS });
    expect(last.acked).toEqual([delivery]);
    expect(await deliveryRow(delivery)).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, next_attempt_at: null, last_error: "HTTP 500" });
    expect((await attemptsOf(delivery)).map((a) => a.attempt)).toEqual([...Array(MAX_ATTEMPTS).keys()].map((i) => i + 1));
    expect(received).toHaveLength(MAX_ATTEMPTS);
    // A copy of the message arriving after the end sends nothing.
    await runWebhookQueue([delivery], { env: queue.env, attempts: 1 });
    expect(received).toHaveLength(MAX_ATTEMPTS);
    expect((await webhookRow(w.id))!.failing_since).toEqual(expect.any(Number));
  });

  it("a redirect, a timeout and a network error are failures with their reason; a success after them clears failing_since", async () => {
    const { w, queue, delivery } = await oneEvent();
    const answers: (() => Response | Promise<Response>)[] = [
      () => new Response(null, { status: 302, headers: { location: "https://elsewhere.example.com" } }),
      () => Promise.reject(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
      () => Promise.reject(new TypeError("Network connection lost.")),
      () => new Response(null, { status: 204 }),
    ];
    stubReceiver((_r, n) => answers[n - 1]!());
    for (let attempt = 1; attempt <= answers.length; attempt++) await runWebhookQueue([delivery], { env: queue.env, attempts: attempt });
    expect((await attemptsOf(delivery)).map((a) => [a.response_code, a.error])).toEqual([
      [302, "redirect (HTTP 302) not followed"],
      [null, `timed out after ${WEBHOOK_TIMEOUT_MS / 1000} s`],
      [null, "request failed: Network connection lost."],
      [204, null],
    ]);
    expect(await deliveryRow(delivery)).toMatchObject({ status: "succeeded", attempts: 4, last_response_code: 204 });
    expect((await webhookRow(w.id))!.failing_since).toBeNull();
  });

  it("the dead-letter queue marks a delivery failed and keeps its last error; a finished one is left alone", async () => {
    const { w, org, queue, delivery } = await oneEvent();
    stubReceiver(() => new Response(null, { status: 503 }));
    await runWebhookQueue([delivery], { env: queue.env });
    const [done] = await seedDeliveries(w.id, org.id, 1, { status: "succeeded" });
    const { acked } = await runWebhookQueue([delivery, done!], { queue: WEBHOOK_DLQ, env: queue.env });
    expect(acked.sort()).toEqual([delivery, done!].sort());
    expect(await deliveryRow(delivery)).toMatchObject({ status: "failed", last_error: "HTTP 503", next_attempt_at: null });
    expect(await deliveryRow(done!)).toMatchObject({ status: "succeeded" });
    // With no attempt on record, the reason is the queue's.
    const [never] = await seedDeliveries(w.id, org.id, 1);
    await runWebhookQueue([never!], { queue: WEBHOOK_DLQ, env: queue.env });
    expect(await deliveryRow(never!)).toMatchObject({ status: "failed", last_error: "gave up: the queue's retries ran out" });
  });

  it("malformed messages, unknown deliveries and deleted endpoints are acked without a request", async () => {
    const { admin, org, w, queue, delivery } = await oneEvent();
    const { received } = stubReceiver();
    const del = await (await import("../helpers/client")).del(webhookPath(org.id, w.id), { token: admin.accessToken });
    expect(del.status).toBe(204);
    const { acked } = await runWebhookQueue([delivery, "whd_00000000000000000000000000000000"], { env: queue.env });
    expect(acked).toHaveLength(2);
    expect(received).toEqual([]);
  });
});

describe("endpoint health", () => {
  async function failingFor(ms: number | null) {
    const { admin, org, w, queue, delivery, member } = await oneEvent();
    const second = await createVerifiedUser();
    await addMemberDirect(org.id, second, "admin");
    const plain = await createUser();
    await addMemberDirect(org.id, plain, "user");
    if (ms !== null)
      await env.DB.prepare("update webhooks set failing_since = ? where id = ?")
        .bind(Date.now() - ms, w.id)
        .run();
    return { admin, org, w, queue, delivery, second, plain, member };
  }

  const outboxFor = async (webhookId: string) =>
    (
      await env.DB.prepare("select * from outbox where subject_id = ? and template = 'webhook_disabled' order by recipient")
        .bind(webhookId)
        .all<Record<string, any>>()
    ).results;

  it("the first failure after a success sets failing_since; younger than 5 days it stays enabled", async () => {
    const { w, queue, delivery } = await failingFor(null);
    stubReceiver(() => new Response(null, { status: 500 }));
    const before = Date.now();
    await runWebhookQueue([delivery], { env: queue.env });
    const row = (await webhookRow(w.id))!;
    expect(row.failing_since).toBeGreaterThanOrEqual(before);
    await runWebhookQueue([delivery], { env: queue.env, attempts: 2 });
    expect((await webhookRow(w.id))!.failing_since).toBe(row.failing_since);

    await env.DB.prepare("update webhooks set failing_since = ? where id = ?")
      .bind(Date.now() - DISABLE_AFTER_MS + 60_000, w.id)
      .run();
    await runWebhookQueue([delivery], { env: queue.env, attempts: 3 });
    expect(await webhookRow(w.id)).toMatchObject({ disabled_at: null });
  });

  it("failing for more than 5 days: the next failure disables it once, with one audit entry and an email to each admin", async () => {
    const { admin, org, w, queue, delivery, second, plain, member } = await failingFor(DISABLE_AFTER_MS + DAY);
    const [other] = await seedDeliveries(w.id, org.id, 1);
    const { received } = stubReceiver(() => new Response(null, { status: 500 }));
    // Two messages failing at once: one disables, the other finds it done.
    const { acked, retried } = await runWebhookQueue([delivery, other!], { env: { ...queue.env, ...queueDown } });
    expect(acked.length + retried.size).toBe(2);
    expect(received).toHaveLength(2);

    const row = (await webhookRow(w.id))!;
    expect(row).toMatchObject({ disabled_at: expect.any(Number), disabled_reason: "consecutive_failures" });
    const shown = await (await import("../helpers/client")).get(webhookPath(org.id, w.id), { token: admin.accessToken });
    expect(shown.body).toMatchObject({ enabled: false, disabled_reason: "consecutive_failures" });

    const entries = await auditOf(org.id, "webhook.disabled");
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actor_type: "system", actor_id: null, credential: "system", target_type: "webhook", target_id: w.id, request_id: null });

    const emails = await outboxFor(w.id);
    // Every human admin: the owner, the one added as admin, and the member the event made admin.
    expect(emails.map((e) => e.recipient).sort()).toEqual([admin.email, second.email, member.email].sort());
    expect(emails.map((e) => e.recipient)).not.toContain(plain.email);
    expect(JSON.parse(emails[0]!.payload)).toMatchObject({ organization_name: org.name, webhook_id: w.id, webhook_url: w.url, organization_id: org.id });
    // The email queue was down: the rows stay pending for the cron, nothing lost.
    expect(emails.every((e) => e.status === "pending")).toBe(true);

    // Later messages for it are closed without a request; a further failure changes nothing.
    await runWebhookQueue([delivery], { env: queue.env, attempts: 2 });
    expect(received).toHaveLength(2);
    expect(await deliveryRow(delivery)).toMatchObject({ status: "failed", last_error: "the endpoint is disabled" });
    expect(await auditOf(org.id, "webhook.disabled")).toHaveLength(1);
    expect(await outboxFor(w.id)).toHaveLength(3);
  });

  it("the webhook_disabled email renders through the email consumer", async () => {
    const { admin, w, queue, delivery } = await failingFor(DISABLE_AFTER_MS + DAY);
    stubReceiver(() => new Response(null, { status: 500 }));
    await runWebhookQueue([delivery], { env: { ...queue.env, ...queueDown } });
    const [email] = (await outboxFor(w.id)).filter((e) => e.recipient === admin.email);
    const { runOne } = await import("./queue-helpers");
    vi.restoreAllMocks();
    const { result } = await runOne(email!.id);
    expect(result.outcome).toBe("ok");
    const [mail] = await mailboxFor(admin.email);
    expect(mail!.subject).toMatch(/^A webhook endpoint of .* was disabled$/);
    expect(mail!.text).toContain(w.url);
    expect(mail!.text).toContain(`{"enabled": true}`);
  });
});

describe("nothing lost", () => {
  it("a burst of 1,000 events is acknowledged exactly once each, whatever failed first or arrived twice", async () => {
    const { org, w } = await (async () => {
      const { admin, org } = await adminAndOrg();
      return { admin, org, w: await createWebhook(admin, org.id, { events: ["member.added"] }) };
    })();
    const queue = recordingQueue();
    const ctx = systemCtx(testEnv(queue.env), { waitUntil: () => undefined });
    const waits: Promise<unknown>[] = [];
    ctx.waitUntil = (p) => void waits.push(p);
    // 1,000 entries with events in one batch, as a set-based route writes them: two statements.
    const prepared = auditStatements(ctx, {
      organizationId: org.id,
      entries: Array.from({ length: 1000 }, (_, i) => ({
        action: "member.added" as const,
        target: { type: "user", id: `usr_burst${i}` },
        event: { type: "member.added" as const, data: { n: i } },
      })),
    });
    expect(prepared.statements).toHaveLength(2);
    const results = await ctx.db.batch(prepared.statements as [any, ...any[]]);
    afterCommit(ctx, prepared, results as unknown[]);
    await Promise.all(waits);
    const ids = queue.take();
    expect(ids).toHaveLength(1000);
    expect(new Set(ids).size).toBe(1000);

    // The receiver fails the first attempt of every seventh event; it acknowledges with 2xx.
    const acknowledged = new Map<string, number>();
    const tried = new Set<string>();
    let refused = 0;
    stubReceiver((r) => {
      const id = r.headers["webhook-id"]!;
      const n = Number(JSON.parse(r.body).data.n);
      const first = !tried.has(id);
      tried.add(id);
      if (first && n % 7 === 0) {
        refused++;
        return new Response(null, { status: 502 });
      }
      acknowledged.set(id, (acknowledged.get(id) ?? 0) + 1);
      return new Response(null, { status: 200 });
    });
    let pending = ids;
    let round = 1;
    while (pending.length > 0) {
      const next = new Set<string>();
      for (let i = 0; i < pending.length; i += 100) {
        const chunk = pending.slice(i, i + 100);
        // The queue delivers at least once: copies arrive in the same batch and in later ones.
        const { retried } = await runWebhookQueue([...chunk, ...chunk.slice(0, 5)], { env: queue.env, attempts: round });
        await runWebhookQueue(
          chunk.filter((_, j) => j % 10 === 0),
          { env: queue.env, attempts: round },
        );
        for (const id of retried.keys()) next.add(id);
      }
      // A retried message whose copy has since succeeded comes back too, and is acked unsent.
      pending = [...next];
      round++;
      expect(round).toBeLessThan(5);
    }
    expect(acknowledged.size).toBe(1000);
    expect([...acknowledged.values()].every((n) => n === 1)).toBe(true);
    expect(refused).toBe(Math.ceil(1000 / 7));
    const statuses = await env.DB.prepare(
      "select status, count(*) as n, sum(attempts) as attempts from webhook_deliveries where webhook_id = ? group by status",
    )
      .bind(w.id)
      .all();
    expect(statuses.results).toEqual([{ status: "succeeded", n: 1000, attempts: 1000 + refused }]);
  }, 180_000);

  it("deliveries whose message never reached the queue, or was lost, are sent again by redeliverStuckWebhooks", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id, { events: ["member.role_changed"] });
    const member = await createVerifiedUser();
    await addMemberDirect(org.id, member, "user");
    // The queue is down during the request: the delivery stays pending.
    const down = recordingQueue({ down: true });
    const res = await patch(`/v1/organizations/${org.id}/members/${member.id}`, { role: "admin" }, { token: admin.accessToken, env: down.env });
    expect(res.status, res.text).toBe(200);
    const [pending] = await deliveriesOf(w.id);
    expect(pending).toMatchObject({ status: "pending" });
    // Queued long ago, its message dropped: next_attempt_at is 20 minutes past.
    const [lost] = await seedDeliveries(w.id, org.id, 1, { status: "queued", nextAttemptAt: Date.now() - 20 * 60_000 });
    // Not stuck: a fresh pending row, a queued one waiting for its retry, and a finished one.
    const [fresh] = await seedDeliveries(w.id, org.id, 1, { status: "pending" });
    const [waiting] = await seedDeliveries(w.id, org.id, 1, { status: "queued", nextAttemptAt: Date.now() + 3_600_000 });
    const [done] = await seedDeliveries(w.id, org.id, 1, { status: "succeeded", nextAttemptAt: Date.now() - DAY });

    const queue = recordingQueue();
    const ctx = systemCtx(testEnv(queue.env), { waitUntil: () => undefined });
    // Only the first minute has passed for the pending one: not yet.
    expect(await redeliverStuckWebhooks(ctx)).toBe(1);
    expect(queue.take()).toEqual([lost]);
    await env.DB.prepare("update webhook_deliveries set updated_at = ? where id = ?")
      .bind(Date.now() - 61_000, pending!.id)
      .run();
    expect(await redeliverStuckWebhooks(ctx)).toBe(1);
    expect(queue.take()).toEqual([pending!.id]);
    // Re-enqueued rows were bumped: the next run (a minute later) does not send them again.
    expect(await redeliverStuckWebhooks(ctx)).toBe(0);
    expect(await deliveryRow(lost!)).toMatchObject({ status: "queued" });

    const { received } = stubReceiver();
    await runWebhookQueue([lost!, pending!.id], { env: queue.env });
    expect(received).toHaveLength(2);
    expect(await deliveryRow(lost!)).toMatchObject({ status: "succeeded" });
    expect(await deliveryRow(pending!.id)).toMatchObject({ status: "succeeded" });
    expect(await deliveryRow(fresh!)).toMatchObject({ status: "pending" });
    expect(await deliveryRow(waiting!)).toMatchObject({ status: "queued" });
    expect(await deliveryRow(done!)).toMatchObject({ status: "succeeded", attempts: 0 });
  });

  it("pruneWebhookDeliveries deletes finished deliveries past 30 days, with their attempts, and nothing in flight", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const old = Date.now() - DELIVERY_RETENTION_MS - DAY;
    const [oldDone] = await seedDeliveries(w.id, org.id, 1, { status: "succeeded", createdAt: old });
    const [oldFailed] = await seedDeliveries(w.id, org.id, 1, { status: "failed", createdAt: old });
    const [oldStuck] = await seedDeliveries(w.id, org.id, 1, { status: "queued", createdAt: old });
    const [recent] = await seedDeliveries(w.id, org.id, 1, { status: "succeeded" });
    await env.DB.prepare("insert into webhook_attempts values ('wha_prune1', ?, 1, 200, 3, null, ?)").bind(oldDone, old).run();
    const ctx = systemCtx(testEnv(), { waitUntil: () => undefined });
    expect(await pruneWebhookDeliveries(ctx)).toBeGreaterThanOrEqual(2);
    expect(await deliveryRow(oldDone!)).toBeNull();
    expect(await deliveryRow(oldFailed!)).toBeNull();
    expect(await attemptsOf(oldDone!)).toEqual([]);
    expect(await deliveryRow(oldStuck!)).not.toBeNull();
    expect(await deliveryRow(recent!)).not.toBeNull();
  });

  it("pruning reads the old rows it deletes, not every endpoint or recent delivery", async () => {
    const { admin, org } = await adminAndOrg();
    const old = Date.now() - DELIVERY_RETENTION_MS - DAY;
    const endpoints = await Promise.all(Array.from({ length: 20 }, () => createWebhook(admin, org.id)));
    for (const w of endpoints) await seedDeliveries(w.id, org.id, 25, { status: "succeeded" });
    // The platform's other endpoints (other organizations' in production; copies here, past the per-organization limit).
    await env.DB.prepare(
      `with recursive seq(i) as (select 0 union all select i + 1 from seq where i + 1 < 300)
       insert into webhooks (id, organization_id, url, events, secret_ciphertext, created_at, updated_at)
       select 'whk_copy' || i, organization_id, url, events, secret_ciphertext, created_at, updated_at from webhooks, seq where id = ?`,
    )
      .bind(endpoints[0]!.id)
      .run();
    const doomed = await seedDeliveries(endpoints[0]!.id, org.id, 3, { status: "failed", createdAt: old });
    const stats = newDbStats();
    const ctx = { ...systemCtx(testEnv(), { waitUntil: () => undefined }), db: createDb(env.DB, stats) };
    expect(await pruneWebhookDeliveries(ctx)).toBeGreaterThanOrEqual(doomed.length);
    for (const id of doomed) expect(await deliveryRow(id)).toBeNull();
    expect(stats.queries).toBe(1);
    // Neither the 320 endpoints nor the 500 recent deliveries are read.
    expect(stats.rowsRead).toBeLessThan(60);
  });
});
