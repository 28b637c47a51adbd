import { and, eq, inArray, isNotNull, isNull, lt, ne, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { afterCommit, auditStatements } from "../audit/record";
import { outbox, webhookAttempts, webhookDeliveries, webhooks } from "../db/schema";
import { systemCtx, type Bindings, type ServiceCtx } from "../env";
import { decryptString } from "../lib/crypto";
import { DAY_MS, iso } from "../lib/time";
import { enqueueOutbox } from "./outbox";
import { WebhookMessageSchema } from "./webhook-outbox";
import { signedHeaders, webhookSecretAad } from "./webhook-signing";
import { webhookUrlProblem } from "./webhook-url";

/** The webhook queue's name as wrangler.toml declares it; its dead-letter queue adds `-dlq`. */
export const WEBHOOK_QUEUE_NAME = "tenancy-webhooks";

/** How long a receiver has to answer one attempt. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * Delays after attempts 1, 2, … 8: 30 s, 2 min, 10 min, 1 h, 3 h, 6 h, 12 h, 12 h (about 34 h in
 * all), each ±20 % so a burst that failed together does not come back together. 12 h is also the
 * longest delay Queues accepts.
 */
export const RETRY_SCHEDULE_SECONDS = [30, 120, 600, 3_600, 10_800, 21_600, 43_200, 43_200] as const;
const MAX_DELAY_SECONDS = 43_200;
/** The first attempt plus one per scheduled retry; wrangler.toml's max_retries (8) matches, so the dead-letter queue only sees messages the consumer itself could not handle. */
export const MAX_ATTEMPTS = RETRY_SCHEDULE_SECONDS.length + 1;

/** An endpoint whose every delivery has failed for this long is disabled at its next failure. */
export const DISABLE_AFTER_MS = 5 * DAY_MS;

const ERROR_MAX = 500;

export function retryDelaySeconds(attempt: number, random = Math.random()): number {
  const base = RETRY_SCHEDULE_SECONDS[Math.min(Math.max(attempt, 1), RETRY_SCHEDULE_SECONDS.length) - 1]!;
  return Math.min(MAX_DELAY_SECONDS, Math.round(base * (0.8 + 0.4 * random)));
}

/**
 * Each message names one delivery row and is handled on its own (in parallel with the batch's
 * others): a redelivered message for a delivery already done is acked, so the queue's
 * at-least-once redelivery never sends an acknowledged event again. Two copies in one batch
 * would both find it undone and both send, so only the first is handled.
 */
export async function handleWebhookBatch(batch: MessageBatch, env: Bindings, execution: ExecutionContext): Promise<void> {
  const ctx = systemCtx(env, execution);
  const deadLetter = batch.queue.endsWith("-dlq");
  const first = new Set<string>();
  const work: Promise<void>[] = [];
  for (const m of batch.messages) {
    const id = (m.body as { delivery_id?: unknown } | null)?.delivery_id;
    if (typeof id === "string" && first.has(id)) {
      m.ack();
      continue;
    }
    if (typeof id === "string") first.add(id);
    work.push(handleMessage(ctx, m, deadLetter));
  }
  await Promise.all(work);
}

async function handleMessage(ctx: ServiceCtx, message: Message, deadLetter: boolean) {
  const parsed = WebhookMessageSchema.safeParse(message.body);
  if (!parsed.success) {
    console.error(JSON.stringify({ level: "error", msg: "dropping malformed webhook queue message", id: message.id }));
    message.ack();
    return;
  }
  const deliveryId = parsed.data.delivery_id;
  try {
    if (deadLetter) {
      await markFailed(ctx, deliveryId, "gave up: the queue's retries ran out");
      message.ack();
      return;
    }
    const retryIn = await attempt(ctx, deliveryId, message.attempts);
    if (retryIn === null) message.ack();
    else message.retry({ delaySeconds: retryIn });
  } catch (err) {
    // D1 or the platform failed, not the receiver: nothing was recorded, so the message comes back.
    console.error(JSON.stringify({ level: "error", msg: "webhook delivery could not be processed", delivery_id: deliveryId, error: String(err) }));
    message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
  }
}

type Outcome = { ok: true; status: number; durationMs: number } | { ok: false; status: number | null; durationMs: number; error: string };

/** One attempt; returns the delay before the next one, or null when the message is done. */
async function attempt(ctx: ServiceCtx, deliveryId: string, queueAttempt: number): Promise<number | null> {
  const db = ctx.db;
  const [row] = await db
    .select({
      id: webhookDeliveries.id,
      webhookId: webhookDeliveries.webhookId,
      organizationId: webhookDeliveries.organizationId,
      eventId: webhookDeliveries.eventId,
      payload: webhookDeliveries.payload,
      status: webhookDeliveries.status,
      url: webhooks.url,
      secretCiphertext: webhooks.secretCiphertext,
      previousSecretCiphertext: webhooks.previousSecretCiphertext,
      previousSecretExpiresAt: webhooks.previousSecretExpiresAt,
      failingSince: webhooks.failingSince,
      disabledAt: webhooks.disabledAt,
    })
    .from(webhookDeliveries)
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(eq(webhookDeliveries.id, deliveryId))
    .limit(1);
  // Gone with its endpoint, or finished by an earlier copy of this message.
  if (!row || row.status === "succeeded" || row.status === "failed") return null;
  if (row.disabledAt !== null) {
    await markFailed(ctx, row.id, "the endpoint is disabled", { replaceError: true });
    return null;
  }
  // Stored URLs passed the policy when they were saved; this catches a policy that tightened since.
  const refused = webhookUrlProblem(row.url, { development: ctx.config.environment === "development" });
  if (refused) {
    await markFailed(ctx, row.id, `url refused: ${refused}`, { replaceError: true });
    return null;
  }

  const now = Date.now();
  const aad = webhookSecretAad(row.organizationId, row.webhookId);
  const secrets = [await decryptString(ctx.config.encryptionKey, row.secretCiphertext, aad)];
  if (row.previousSecretCiphertext && row.previousSecretExpiresAt !== null && row.previousSecretExpiresAt > now) {
    secrets.push(await decryptString(ctx.config.encryptionKey, row.previousSecretCiphertext, aad));
  }
  const headers = await signedHeaders(secrets, row.eventId, Math.floor(now / 1000), row.payload);
  const outcome = await post(row.url, headers, row.payload);

  if (outcome.ok) {
    await recordSuccess(ctx, row, outcome);
    return null;
  }
  const final = queueAttempt >= MAX_ATTEMPTS;
  const delay = final ? null : retryDelaySeconds(queueAttempt);
  await recordFailure(ctx, row, outcome, delay);
  return delay;
}

/** POSTs the exact stored body; a redirect is a failure (following it would sign a request to a URL nobody vetted). */
async function post(url: string, signature: Record<string, string>, body: string): Promise<Outcome> {
  const started = Date.now();
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "tenancy-webhooks/1", ...signature },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    // The receiver's answer is not kept; release the connection.
    await res.body?.cancel();
    const durationMs = Date.now() - started;
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, durationMs };
    const error = res.status >= 300 && res.status < 400 ? `redirect (HTTP ${res.status}) not followed` : `HTTP ${res.status}`;
    return { ok: false, status: res.status, durationMs, error };
  } catch (err) {
    const durationMs = Date.now() - started;
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    const error = timedOut ? `timed out after ${WEBHOOK_TIMEOUT_MS / 1000} s` : `request failed: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, status: null, durationMs, error: error.slice(0, ERROR_MAX) };
  }
}

type Loaded = { id: string; webhookId: string; organizationId: string; url: string; failingSince: number | null };

function attemptInsert(ctx: ServiceCtx, deliveryId: string, outcome: Outcome, now: number) {
  const error = outcome.ok ? null : outcome.error;
  // Columns in table order: id, delivery_id, attempt, response_code, duration_ms, error, created_at. The
  // number comes from the row, so concurrent copies of a message cannot both claim the same one.
  return ctx.db.insert(webhookAttempts).select(
    sql`select 'wha_' || lower(hex(randomblob(16))), d.id, d.attempts + 1, ${outcome.status}, ${outcome.durationMs}, ${error}, ${now}
        from webhook_deliveries d where d.id = ${deliveryId}`,
  );
}

async function recordSuccess(ctx: ServiceCtx, row: Loaded, outcome: Outcome) {
  const db = ctx.db;
  const now = Date.now();
  await db.batch([
    attemptInsert(ctx, row.id, outcome, now),
    db
      .update(webhookDeliveries)
      .set({
        status: "succeeded",
        attempts: sql`${webhookDeliveries.attempts} + 1`,
        lastResponseCode: outcome.status,
        lastDurationMs: outcome.durationMs,
        lastError: null,
        nextAttemptAt: null,
        deliveredAt: now,
        updatedAt: now,
      })
      .where(eq(webhookDeliveries.id, row.id)),
    db
      .update(webhooks)
      .set({ failingSince: null })
      .where(and(eq(webhooks.id, row.webhookId), isNotNull(webhooks.failingSince))),
  ]);
}

/**
 * Records a failed attempt and the endpoint's health in one batch. The endpoint is disabled by
 * one conditional UPDATE (still enabled, failing for longer than DISABLE_AFTER_MS); the audit
 * entry follows it only if it changed the row, and the admins' emails only if the entry went in,
 * so two consumers failing at once disable it, record it and email about it once.
 */
async function recordFailure(ctx: ServiceCtx, row: Loaded, outcome: Extract<Outcome, { ok: false }>, retryInSeconds: number | null) {
  const db = ctx.db;
  const now = Date.now();
  const statements: BatchItem<"sqlite">[] = [
    attemptInsert(ctx, row.id, outcome, now),
    db
      .update(webhookDeliveries)
      .set({
        status: retryInSeconds === null ? "failed" : "queued",
        attempts: sql`${webhookDeliveries.attempts} + 1`,
        lastResponseCode: outcome.status,
        lastDurationMs: outcome.durationMs,
        lastError: outcome.error,
        nextAttemptAt: retryInSeconds === null ? null : now + retryInSeconds * 1000,
        updatedAt: now,
      })
      // A concurrent copy that succeeded stays succeeded.
      .where(and(eq(webhookDeliveries.id, row.id), ne(webhookDeliveries.status, "succeeded"))),
    db
      .update(webhooks)
      .set({ failingSince: now })
      .where(and(eq(webhooks.id, row.webhookId), isNull(webhooks.failingSince))),
    db
      .update(webhooks)
      .set({ disabledAt: now, disabledReason: "consecutive_failures", updatedAt: now })
      .where(and(eq(webhooks.id, row.webhookId), isNull(webhooks.disabledAt), lt(webhooks.failingSince, now - DISABLE_AFTER_MS))),
  ];
  const disableAt = statements.length - 1;
  const audit = auditStatements(ctx, {
    organizationId: row.organizationId,
    onlyIf: sql`changes() = 1`,
    entries: [{ action: "webhook.disabled", target: { type: "webhook", id: row.webhookId }, changes: ["enabled"] }],
  });
  statements.push(...audit.statements);
  // After the audit insert: changes() is 1 only if the entry, and so the disabling, went in.
  const failingSince = iso(row.failingSince ?? now);
  statements.push(
    db
      .insert(outbox)
      // Columns in table order: id, template, recipient, payload, status, attempts, last_error, subject_id, created_at, updated_at, sent_at.
      .select(
        sql`select 'obx_' || lower(hex(randomblob(16))), 'webhook_disabled', m.email,
              json_object('organization_name', o.name, 'organization_id', o.id, 'webhook_id', ${row.webhookId}, 'webhook_url', ${row.url}, 'failing_since', ${failingSince}),
              'pending', 0, null, ${row.webhookId}, ${now}, ${now}, null
            from members m join organizations o on o.id = m.organization_id
            where m.organization_id = ${row.organizationId} and m.type = 'user' and m.role = 'admin' and changes() = 1`,
      )
      .returning({ id: outbox.id }),
  );
  const results = (await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]])) as unknown[];
  afterCommit(ctx, audit, results.slice(disableAt + 1, disableAt + 1 + audit.statements.length));
  if ((results[disableAt] as D1Result).meta.changes !== 1) return;
  console.log(
    JSON.stringify({ level: "warn", msg: "webhook endpoint disabled after failing too long", webhook_id: row.webhookId, organization_id: row.organizationId }),
  );
  await enqueueOutbox(
    ctx,
    (results[results.length - 1] as { id: string }[]).map((r) => r.id),
  );
}

/**
 * The end of the line for a delivery still in flight; a success is never overwritten. Giving up
 * keeps the last attempt's error, which says more than "gave up"; a refusal replaces it.
 */
async function markFailed(ctx: ServiceCtx, deliveryId: string, error: string, opts: { replaceError?: boolean } = {}) {
  const now = Date.now();
  await ctx.db
    .update(webhookDeliveries)
    .set({
      status: "failed",
      lastError: opts.replaceError ? error : sql`coalesce(${webhookDeliveries.lastError}, ${error})`,
      nextAttemptAt: null,
      updatedAt: now,
    })
    .where(and(eq(webhookDeliveries.id, deliveryId), inArray(webhookDeliveries.status, ["pending", "queued"])));
}
