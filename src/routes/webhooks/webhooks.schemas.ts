import { EVENT_TYPES, type EventType } from "../../audit/catalogue";
import { refuseRepeats, z } from "../../lib/openapi";
import { multiLine } from "../../lib/text";
import { iso, isoOrNull } from "../../lib/time";
import { MAX_WEBHOOK_URL, webhookUrlProblem } from "../../queue/webhook-url";

/** An organization holds at most this many endpoints: every event fans out to each subscribed one in the change's own statement. */
export const MAX_WEBHOOKS_PER_ORGANIZATION = 20;
export const DEFAULT_ROTATION_GRACE_SECONDS = 86_400;
export const MAX_ROTATION_GRACE_SECONDS = 604_800;

/**
 * The policy's checks that do not depend on the environment. The dev exception
 * (`http://127.0.0.1:<port>`) passes here and is judged by the service, which knows ENVIRONMENT.
 */
export const WebhookUrl = z
  .string()
  .superRefine((v, ctx) => {
    const problem = webhookUrlProblem(v, { development: null });
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({
    format: "uri",
    maxLength: MAX_WEBHOOK_URL,
    pattern: "^(?:https://|http://127\\.0\\.0\\.1:)",
    example: "https://hooks.example.com/tenancy",
    description:
      "https on the default port, a public host: no credentials, IP literals of loopback, private, link-local, CGNAT, unique-local or metadata ranges, `localhost` or internal names (≤ 2048 characters). With `ENVIRONMENT=development`, `http://127.0.0.1:<port>` is allowed.",
  });

const EventTypeInput = z.enum(EVENT_TYPES as [EventType, ...EventType[]]);

export const WebhookEvents = refuseRepeats(
  z.array(EventTypeInput).min(1, "must list at least one event").max(EVENT_TYPES.length),
  "must not list an event twice",
).openapi({
  description:
    "The events to receive, each once; the catalogue is in the README and in this enum. Subscribing is reading: each event needs the permission that reads its data (member.* needs `members:read`, project.* `projects:admin`, …; see the README), or 403.",
});

const Description = multiLine(500).nullable().openapi({ description: "A note for people (≤ 500 characters); `null` clears it." });

export const WebhookCreateInput = z
  .object({
    url: WebhookUrl,
    events: WebhookEvents,
    description: Description.optional(),
  })
  .openapi("WebhookCreate");

export const WebhookUpdateInput = z
  .object({
    url: WebhookUrl.optional(),
    events: WebhookEvents.optional(),
    description: Description.optional(),
    enabled: z
      .boolean()
      .optional()
      .openapi({ description: "`true` re-enables a disabled endpoint (and clears `failing_since`); `false` stops deliveries until it is re-enabled." }),
  })
  .openapi("WebhookUpdate");

export const RotateSecretInput = z
  .object({
    grace_seconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_ROTATION_GRACE_SECONDS)
      .optional()
      .openapi({
        description: `How long the previous secret keeps signing alongside the new one (0–${MAX_ROTATION_GRACE_SECONDS}, default ${DEFAULT_ROTATION_GRACE_SECONDS}).`,
      }),
  })
  .openapi("WebhookRotateSecret");

export const WebhookSchema = z
  .object({
    id: z.string().openapi({ example: "whk_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    url: z.string(),
    description: z.string().nullable(),
    events: z.array(z.string()),
    enabled: z.boolean(),
    disabled_reason: z
      .enum(["consecutive_failures", "manual"])
      .nullable()
      .openapi({ description: "`consecutive_failures`: every delivery failed for 5 days; `manual`: disabled with `enabled: false`. Null while enabled." }),
    failing_since: z.string().nullable().openapi({ description: "Since when every delivery attempt has failed; null after a success." }),
    secret_rotation_ends_at: z.string().nullable().openapi({ description: "Until when the previous secret also signs (after a rotation); null otherwise." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Webhook");

export const WebhookWithSecretSchema = WebhookSchema.extend({
  secret: z
    .string()
    .openapi({ example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", description: "The signing secret (`whsec_` + base64): shown here only, never again." }),
}).openapi("WebhookWithSecret");

const AttemptSchema = z.object({
  attempt: z.number().int(),
  response_code: z.number().int().nullable(),
  duration_ms: z.number().int(),
  error: z.string().nullable(),
  created_at: z.string(),
});

export const DeliverySchema = z
  .object({
    id: z.string(),
    event_id: z
      .string()
      .openapi({ description: "The `webhook-id` header: the same on every attempt and on a retry by hand, so receivers de-duplicate by it." }),
    event_type: z.string(),
    status: z.enum(["pending", "queued", "succeeded", "failed"]),
    attempts: z.number().int(),
    response_code: z.number().int().nullable().openapi({ description: "The last attempt's HTTP status (null: no response)." }),
    duration_ms: z.number().int().nullable(),
    error: z.string().nullable().openapi({ description: "Why the last attempt failed." }),
    next_attempt_at: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    attempts_log: z.array(AttemptSchema).optional().openapi({ description: "The last 10 attempts, newest first." }),
  })
  .openapi("WebhookDelivery");

export interface WebhookRow {
  id: string;
  url: string;
  description: string | null;
  events: string[];
  failingSince: number | null;
  disabledAt: number | null;
  disabledReason: string | null;
  previousSecretExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export const serializeWebhook = (w: WebhookRow, now = Date.now()) => ({
  id: w.id,
  url: w.url,
  description: w.description,
  events: w.events,
  enabled: w.disabledAt === null,
  disabled_reason: w.disabledAt === null ? null : ((w.disabledReason ?? "manual") as "consecutive_failures" | "manual"),
  failing_since: isoOrNull(w.failingSince),
  secret_rotation_ends_at: w.previousSecretExpiresAt !== null && w.previousSecretExpiresAt > now ? iso(w.previousSecretExpiresAt) : null,
  created_at: iso(w.createdAt),
  updated_at: iso(w.updatedAt),
});

export interface DeliveryRow {
  id: string;
  eventId: string;
  eventType: string;
  status: "pending" | "queued" | "succeeded" | "failed";
  attempts: number;
  lastResponseCode: number | null;
  lastDurationMs: number | null;
  lastError: string | null;
  nextAttemptAt: number | null;
  createdAt: number;
  deliveredAt: number | null;
  attemptsLog?: string | null;
}

type StoredAttempt = { attempt: number; response_code: number | null; duration_ms: number; error: string | null; created_at: number };

export const serializeDelivery = (d: DeliveryRow) => ({
  id: d.id,
  event_id: d.eventId,
  event_type: d.eventType,
  status: d.status,
  attempts: d.attempts,
  response_code: d.lastResponseCode,
  duration_ms: d.lastDurationMs,
  error: d.lastError,
  next_attempt_at: d.status === "queued" ? isoOrNull(d.nextAttemptAt) : null,
  created_at: iso(d.createdAt),
  delivered_at: isoOrNull(d.deliveredAt),
  ...(d.attemptsLog === undefined
    ? {}
    : { attempts_log: (JSON.parse(d.attemptsLog ?? "[]") as StoredAttempt[]).map((a) => ({ ...a, created_at: iso(a.created_at) })) }),
});
