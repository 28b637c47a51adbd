import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import { webhookDeliveries, webhooks } from "../../db/schema";
import { outer } from "../../db/schema/columns";
import type { Config, OrgCtx } from "../../env";
import { commit, noChange } from "../../audit/record";
import { eventReadPermissions, type EventType } from "../../audit/catalogue";
import { encryptString } from "../../lib/crypto";
import { ApiError, notFound, validationError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter, orderBy } from "../../lib/pagination";
import { enqueueWebhookDeliveries } from "../../audit/deliveries";
import { newWebhookSecret, webhookSecretAad } from "../../queue/webhook-signing";
import { webhookUrlProblem } from "../../queue/webhook-url";
import {
  DEFAULT_ROTATION_GRACE_SECONDS,
  MAX_WEBHOOKS_PER_ORGANIZATION,
  serializeDelivery,
  serializeWebhook,
  type DeliveryRow,
  type WebhookRow,
} from "./webhooks.schemas";

// The sealed secrets are never selected for an API response.
const columns = {
  id: webhooks.id,
  url: webhooks.url,
  description: webhooks.description,
  events: webhooks.events,
  failingSince: webhooks.failingSince,
  disabledAt: webhooks.disabledAt,
  disabledReason: webhooks.disabledReason,
  previousSecretExpiresAt: webhooks.previousSecretExpiresAt,
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};

const deliveryColumns = {
  id: webhookDeliveries.id,
  eventId: webhookDeliveries.eventId,
  eventType: webhookDeliveries.eventType,
  status: webhookDeliveries.status,
  attempts: webhookDeliveries.attempts,
  lastResponseCode: webhookDeliveries.lastResponseCode,
  lastDurationMs: webhookDeliveries.lastDurationMs,
  lastError: webhookDeliveries.lastError,
  nextAttemptAt: webhookDeliveries.nextAttemptAt,
  createdAt: webhookDeliveries.createdAt,
  deliveredAt: webhookDeliveries.deliveredAt,
};

/** Delivery ids are minted inside the fan-out statement (src/audit/record.ts): `whd_` + 32 hex digits. */
const isDeliveryId = (id: string) => /^whd_[0-9a-f]{32}$/.test(id);

/** The dev exception is judged here, where the environment is known; the schema has checked everything else. */
function assertUrlAllowed(ctx: OrgCtx, url: string) {
  const problem = webhookUrlProblem(url, { development: ctx.config.environment === "development" });
  if (problem) throw validationError([{ path: "url", message: problem }]);
}

/** Subscribing is reading: each event needs what reading its data through the API needs. */
function assertMayReceive(ctx: OrgCtx, events: string[]) {
  const lacking = [...new Set(events.flatMap((e) => eventReadPermissions(e as EventType).filter((p) => !ctx.org.permissions.has(p))))];
  if (lacking.length === 0) return;
  throw new ApiError(
    "forbidden",
    `Subscribing to these events hands their data to the endpoint; your role lacks ${lacking.map((p) => `\`${p}\``).join(", ")}.`,
    {
      extra: { required_permission: lacking[0] },
    },
  );
}

// ---- Reads (run in the seam's authorization batch) ------------------------------------------

const listFingerprint = (orgId: string) => `webhooks|${orgId}`;

/** A page in creation order: one range of webhooks_org_idx, page_size + 1 rows. */
export async function webhookListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const page = db
    .select(columns)
    .from(webhooks)
    .where(and(org.inOrg(webhooks.organizationId), after ? gt(webhooks.id, after) : undefined))
    .orderBy(asc(webhooks.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function webhookPage(ctx: OrgCtx, q: { page_size: number }, rows: WebhookRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  const now = Date.now();
  return { items: page.rows.map((r) => serializeWebhook(r, now)), next_page_token: page.nextPageToken };
}

/** One endpoint of the organization; nothing to read for a malformed id. */
export function webhookQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("webhook", id)) return undefined;
  return db
    .select(columns)
    .from(webhooks)
    .where(and(eq(webhooks.id, org.guard(id)), eq(webhooks.organizationId, org.id)))
    .limit(1);
}

function found(rows: WebhookRow[] | undefined): WebhookRow {
  const row = rows?.[0];
  if (!row) throw notFound("webhook");
  return row;
}

export const getWebhookFrom = (rows: WebhookRow[] | undefined) => serializeWebhook(found(rows));

const deliveriesFingerprint = (orgId: string, webhookId: string) => `webhook-deliveries|${orgId}|${webhookId}`;
const ATTEMPTS_SHOWN = 10;

/**
 * A page of an endpoint's deliveries, newest first: one range of webhook_deliveries_webhook_idx
 * (the guard on its leading column), each row carrying its last 10 attempts from
 * webhook_attempts_delivery_idx. About 11 × page_size rows at most, one round trip with the
 * endpoint itself (for the 404).
 */
export async function deliveryListQuery(db: ReadDb, org: OrgScope, config: Config, webhookId: string, q: { page_size: number; page_token?: string }) {
  if (!isId("webhook", webhookId)) return { webhook: undefined, page: undefined };
  const keys = [
    { column: webhookDeliveries.createdAt, desc: true },
    { column: webhookDeliveries.id, desc: true },
  ];
  const after = q.page_token
    ? keysetAfter(keys, await decodePageToken(config.hmacSecret, deliveriesFingerprint(org.id, webhookId), q.page_token, 2))
    : undefined;
  const attemptsLog =
    sql<string>`(select json_group_array(json_object('attempt', a.attempt, 'response_code', a.response_code, 'duration_ms', a.duration_ms, 'error', a.error, 'created_at', a.created_at))
      from (select * from webhook_attempts a where a.delivery_id = ${outer(webhookDeliveries.id)} order by a.attempt desc limit ${ATTEMPTS_SHOWN}) a)`.as(
      "attempts_log",
    );
  const page = db
    .select({ ...deliveryColumns, attemptsLog })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.webhookId, org.guard(webhookId)), eq(webhookDeliveries.organizationId, org.id), after))
    .orderBy(...orderBy(keys))
    .limit(q.page_size + 1);
  return { webhook: webhookQuery(db, org, webhookId), page };
}

/** `loaded` is undefined when the id was malformed (nothing was read). */
type Maybe<T> = { [K in keyof T]: T[K] | undefined } | undefined;

export async function deliveryPage(ctx: OrgCtx, webhookId: string, q: { page_size: number }, loaded: Maybe<{ webhook: WebhookRow[]; page: DeliveryRow[] }>) {
  found(loaded?.webhook);
  const page = await finishPage(ctx.config.hmacSecret, deliveriesFingerprint(ctx.org.id, webhookId), loaded?.page ?? [], q.page_size, (r) => [
    r.createdAt,
    r.id,
  ]);
  return { items: page.rows.map(serializeDelivery), next_page_token: page.nextPageToken };
}

/** The endpoint and one of its deliveries, for a retry. */
export function deliveryQuery(db: ReadDb, org: OrgScope, webhookId: string, deliveryId: string) {
  if (!isId("webhook", webhookId) || !isDeliveryId(deliveryId)) return { webhook: undefined, delivery: undefined };
  return {
    webhook: webhookQuery(db, org, webhookId),
    delivery: db
      .select(deliveryColumns)
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.id, org.guard(deliveryId)), eq(webhookDeliveries.webhookId, webhookId), eq(webhookDeliveries.organizationId, org.id)))
      .limit(1),
  };
}

// ---- Changes -------------------------------------------------------------------------------

export async function createWebhook(ctx: OrgCtx, input: { url: string; events: string[]; description?: string | null }) {
  assertUrlAllowed(ctx, input.url);
  assertMayReceive(ctx, input.events);
  const orgId = ctx.org.id;
  const id = newId("webhook");
  const now = Date.now();
  const secret = newWebhookSecret();
  const sealed = await encryptString(ctx.config.encryptionKey, secret, webhookSecretAad(orgId, id));
  const description = input.description ?? null;
  // The cap is checked by the insert itself: a count read first would let two concurrent
  // creates both pass.
  const [inserted] = await commit(
    ctx,
    [
      ctx.db.insert(webhooks).select(
        // Columns in table order: id, organization_id, url, description, events, secret_ciphertext, previous_secret_ciphertext,
        // previous_secret_expires_at, failing_since, disabled_at, disabled_reason, created_at, updated_at.
        sql`select ${id}, ${orgId}, ${input.url}, ${description}, ${JSON.stringify(input.events)}, ${sealed}, null, null, null, null, null, ${now}, ${now}
            where (select count(*) from webhooks w where w.organization_id = ${orgId}) < ${MAX_WEBHOOKS_PER_ORGANIZATION}`,
      ),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "webhook.created", target: { type: "webhook", id }, changes: ["url", "events", ...(description === null ? [] : ["description"])] }],
    },
  );
  if ((inserted as unknown as D1Result).meta.changes !== 1) {
    throw new ApiError("conflict", `An organization may have at most ${MAX_WEBHOOKS_PER_ORGANIZATION} webhook endpoints; delete one first.`, {
      extra: { limit: MAX_WEBHOOKS_PER_ORGANIZATION },
    });
  }
  const row: WebhookRow = {
    id,
    url: input.url,
    description,
    events: input.events,
    failingSince: null,
    disabledAt: null,
    disabledReason: null,
    previousSecretExpiresAt: null,
    createdAt: now,
    updatedAt: now,
  };
  return { ...serializeWebhook(row, now), secret };
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((v, i) => v === b[i]);

export async function updateWebhook(
  ctx: OrgCtx,
  rows: WebhookRow[] | undefined,
  input: { url?: string; events?: string[]; description?: string | null; enabled?: boolean },
) {
  const current = found(rows);
  const set: Partial<typeof webhooks.$inferInsert> = {};
  const changed: string[] = [];
  if (input.url !== undefined && input.url !== current.url) {
    assertUrlAllowed(ctx, input.url);
    set.url = input.url;
    changed.push("url");
  }
  if (input.events !== undefined && !sameList(input.events, current.events)) {
    assertMayReceive(ctx, input.events);
    set.events = input.events;
    changed.push("events");
  }
  if (input.description !== undefined && input.description !== current.description) {
    set.description = input.description;
    changed.push("description");
  }
  const now = Date.now();
  if (input.enabled !== undefined && input.enabled !== (current.disabledAt === null)) {
    // Re-enabled, the endpoint starts a fresh health record: the failures that disabled it do not count again.
    Object.assign(set, input.enabled ? { disabledAt: null, disabledReason: null, failingSince: null } : { disabledAt: now, disabledReason: "manual" });
    changed.push("enabled");
  }
  if (changed.length === 0) {
    noChange(ctx);
    return serializeWebhook(current, now);
  }
  set.updatedAt = now;
  const [updated] = await commit(
    ctx,
    [
      ctx.db
        .update(webhooks)
        .set(set)
        .where(and(eq(webhooks.id, current.id), eq(webhooks.organizationId, ctx.org.id)))
        .returning(columns),
    ],
    { onlyIf: sql`changes() = 1`, entries: [{ action: "webhook.updated", target: { type: "webhook", id: current.id }, changes: changed }] },
  );
  // Deleted by a concurrent request after the authorization read.
  if (!updated[0]) throw notFound("webhook");
  return serializeWebhook(updated[0], now);
}

/**
 * A new secret; the previous one keeps signing alongside it for `grace_seconds`, so receivers can
 * switch without dropping a delivery. Rotating again within the grace replaces the previous one
 * by the secret being replaced.
 */
export async function rotateWebhookSecret(ctx: OrgCtx, rows: WebhookRow[] | undefined, input: { grace_seconds?: number }) {
  const current = found(rows);
  const grace = input.grace_seconds ?? DEFAULT_ROTATION_GRACE_SECONDS;
  const now = Date.now();
  const secret = newWebhookSecret();
  const sealed = await encryptString(ctx.config.encryptionKey, secret, webhookSecretAad(ctx.org.id, current.id));
  const [updated] = await commit(
    ctx,
    [
      ctx.db
        .update(webhooks)
        .set({
          secretCiphertext: sealed,
          // SQLite reads the right-hand sides from the row as it was: this is the secret being replaced.
          previousSecretCiphertext: grace === 0 ? null : sql`${webhooks.secretCiphertext}`,
          previousSecretExpiresAt: grace === 0 ? null : now + grace * 1000,
          updatedAt: now,
        })
        .where(and(eq(webhooks.id, current.id), eq(webhooks.organizationId, ctx.org.id)))
        .returning(columns),
    ],
    { onlyIf: sql`changes() = 1`, entries: [{ action: "webhook.updated", target: { type: "webhook", id: current.id }, changes: ["secret"] }] },
  );
  if (!updated[0]) throw notFound("webhook");
  return { ...serializeWebhook(updated[0], now), secret };
}

/** Its deliveries and their attempts go with it (foreign keys cascade). */
export async function deleteWebhook(ctx: OrgCtx, id: string) {
  if (!isId("webhook", id)) throw notFound("webhook");
  const [removed] = await commit(
    ctx,
    [
      ctx.db
        .delete(webhooks)
        .where(and(eq(webhooks.id, id), eq(webhooks.organizationId, ctx.org.id)))
        .returning({ id: webhooks.id }),
    ],
    { onlyIf: sql`changes() = 1`, entries: [{ action: "webhook.deleted", target: { type: "webhook", id } }] },
  );
  if (removed.length === 0) throw notFound("webhook");
}

/**
 * Sends a finished delivery (succeeded or failed) again, with its original event id so a receiver
 * that already has it can tell. A delivery still in flight is 409: a second message for it would
 * start a second retry schedule.
 */
export async function retryDelivery(ctx: OrgCtx, loaded: Maybe<{ webhook: WebhookRow[]; delivery: DeliveryRow[] }>) {
  const endpoint = found(loaded?.webhook);
  const delivery = loaded?.delivery?.[0];
  if (!delivery) throw notFound("delivery");
  if (endpoint.disabledAt !== null) throw new ApiError("conflict", 'The endpoint is disabled; re-enable it first (PATCH {"enabled": true}).');
  const inFlight = () =>
    new ApiError("conflict", "This delivery is still being attempted; it can be retried once it has succeeded or failed.", {
      extra: { delivery_status: delivery.status },
    });
  if (delivery.status === "pending" || delivery.status === "queued") throw inFlight();
  const now = Date.now();
  const [rows] = await commit(
    ctx,
    [
      ctx.db
        .update(webhookDeliveries)
        .set({ status: "pending", nextAttemptAt: null, updatedAt: now })
        .where(
          and(
            eq(webhookDeliveries.id, delivery.id),
            eq(webhookDeliveries.organizationId, ctx.org.id),
            inArray(webhookDeliveries.status, ["succeeded", "failed"]),
            sql`exists (select 1 from webhooks w where w.id = ${endpoint.id} and w.disabled_at is null)`,
          ),
        )
        .returning(deliveryColumns),
    ],
    { onlyIf: sql`changes() = 1`, entries: [{ action: "webhook.delivery_retried", target: { type: "webhook_delivery", id: delivery.id } }] },
  );
  // Retried, disabled or deleted by a concurrent request since the authorization read.
  if (!rows[0]) throw inFlight();
  ctx.waitUntil(enqueueWebhookDeliveries(ctx.env, [delivery.id]));
  return serializeDelivery(rows[0]);
}
