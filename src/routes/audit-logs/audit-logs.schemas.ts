import { AUDIT_ACTIONS, type AuditAction } from "../../audit/catalogue";
import type { auditLogs } from "../../db/schema";
import { z } from "../../lib/openapi";
import { orderByParam, PageQuery } from "../../lib/pagination";
import { iso } from "../../lib/time";

export const AuditLogListQuery = PageQuery.extend({
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description:
        'AIP-160 subset, terms joined by AND: `actor_id = "usr_…"`, `action = "member.added"`, `target_id = "…"` (exact), and a time range on `created_at` with `>=`, `>`, `<`, `<=` and an RFC 3339 value (e.g. `created_at >= "2025-01-01T00:00:00Z" AND created_at < "2025-02-01T00:00:00Z"`).',
      example: 'action = "member.added" AND created_at >= "2025-01-01T00:00:00Z"',
    }),
  order_by: orderByParam({ fields: ["created_at"], default: "created_at desc", only: true }),
});

const ACTIONS = Object.keys(AUDIT_ACTIONS) as [AuditAction, ...AuditAction[]];

export const AuditLogSchema = z
  .object({
    id: z.string().openapi({ example: "aud_01J9Z3V6G0ZQ4WQ6X8H2M5T7RB" }),
    action: z.enum(ACTIONS).openapi({ description: "What happened; the catalogue is in the README." }),
    actor: z
      .object({
        type: z.enum(["user", "service_account", "scim_directory", "system"]),
        id: z.string().nullable().openapi({ description: "`usr_…`, `sa_…`, the identity provider config id for a SCIM directory; null for the system." }),
      })
      .openapi({ description: "Who made the change." }),
    credential: z
      .enum(["session", "pat", "service_account", "scim", "system", "invitation", "saml"])
      .openapi({ description: "How the actor authenticated: `invitation` and `saml` are the public paths that act for a person." }),
    target: z.object({ type: z.string(), id: z.string().nullable() }).openapi({ description: "What was changed." }),
    changes: z.array(z.string()).nullable().openapi({ description: "The names of the fields that changed, never their values." }),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    request_id: z.string().nullable().openapi({ description: "The `X-Request-Id` of the request that made the change." }),
    created_at: z.string(),
  })
  .openapi("AuditLogEntry");

export type AuditLogRow = Pick<
  typeof auditLogs.$inferSelect,
  "id" | "action" | "actorType" | "actorId" | "credential" | "targetType" | "targetId" | "changes" | "ip" | "userAgent" | "requestId" | "createdAt"
>;

export function serializeAuditLog(r: AuditLogRow): z.infer<typeof AuditLogSchema> {
  return {
    id: r.id,
    action: r.action as AuditAction,
    actor: { type: r.actorType as z.infer<typeof AuditLogSchema>["actor"]["type"], id: r.actorId },
    credential: r.credential as z.infer<typeof AuditLogSchema>["credential"],
    target: { type: r.targetType, id: r.targetId },
    changes: r.changes ?? null,
    ip: r.ip,
    user_agent: r.userAgent,
    request_id: r.requestId,
    created_at: iso(r.createdAt),
  };
}
