import { refuseRepeats, z } from "../../lib/openapi";
import { filterParam, orderByParam, PageQuery } from "../../lib/pagination";
import { iso, isoOrNull } from "../../lib/time";
import { MemberSchema, RoleNameInput } from "../members/members.schemas";
import { DisplayNameInput, EmailInput, PasswordInput, UserSchema } from "../users/users.schemas";
import { INVITATION_STATUSES, type invitations } from "../../db/schema";
import { multiLine } from "../../lib/text";

const ProjectId = z
  .string()
  .regex(/^prj_[0-9A-HJKMNP-TV-Z]{26}$/, "must be a project id (prj_…)")
  .openapi({ example: "prj_01J8ZQ4V6W3X2Y1Z0A9B8C7D6E" });

export const InvitationCreateInput = z
  .object({
    email: EmailInput,
    role: RoleNameInput.default("user"),
    message: multiLine(2000).optional(),
    project_ids: refuseRepeats(z.array(ProjectId).max(100), "must not repeat a project").default([]).openapi({
      description:
        "Projects the new member is granted access to on acceptance (those still in the organization then). Each must be a project of this organization that the inviter can see: 422 `unprocessable` naming the others.",
    }),
    send_email: z.boolean().default(true),
    combine_pending: z.boolean().default(false).openapi({ description: "Refresh an existing pending invitation for this email instead of refusing (200)." }),
    expires_in_days: z.number().int().min(1).max(30).default(7),
  })
  .openapi("InvitationCreate");

export type InvitationCreate = z.infer<typeof InvitationCreateInput>;

export const InvitationBatchInput = z
  .object({
    invitations: z
      .array(z.record(z.string(), z.unknown()))
      .min(1, "must hold at least one invitation")
      .max(100, "must hold at most 100 invitations")
      .openapi({ description: "1–100 rows of the same shape as a single invitation; each row is validated and created on its own." }),
  })
  .openapi("InvitationBatch");

export const InvitationSchema = z
  .object({
    id: z.string().openapi({ example: "inv_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    email: z.string(),
    role: z.string(),
    status: z.enum(INVITATION_STATUSES),
    message: z.string().nullable(),
    project_ids: z.array(z.string()),
    invited_by: z.object({ id: z.string().nullable(), display_name: z.string() }),
    email_status: z.enum(["queued", "sent", "failed"]).nullable().openapi({ description: "Null when no email was requested." }),
    expires_at: z.string(),
    created_at: z.string(),
    accepted_at: z.string().nullable(),
    accept_url: z
      .string()
      .optional()
      .openapi({ description: "Only when created or resent with send_email=false: the link to hand over yourself, shown once." }),
  })
  .openapi("Invitation");

export type InvitationRow = typeof invitations.$inferSelect;

/** A pending invitation past its expiry reads as expired even before the cron sweeps it. */
export function effectiveStatus(row: Pick<InvitationRow, "status" | "expiresAt">, now = Date.now()) {
  return row.status === "pending" && row.expiresAt <= now ? "expired" : row.status;
}

export function serializeInvitation(row: InvitationRow, acceptUrl?: string) {
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    status: effectiveStatus(row),
    message: row.message,
    project_ids: row.projectIds,
    invited_by: { id: row.invitedById, display_name: row.invitedByName },
    email_status: row.emailStatus,
    expires_at: iso(row.expiresAt),
    created_at: iso(row.createdAt),
    accepted_at: isoOrNull(row.acceptedAt),
    ...(acceptUrl ? { accept_url: acceptUrl } : {}),
  };
}

export const BatchResultSchema = z
  .object({
    results: z.array(
      z.object({
        email: z.string().nullable(),
        status: z.enum(["created", "combined", "error"]),
        invitation: InvitationSchema.optional(),
        error: z
          .object({
            code: z.string(),
            detail: z.string(),
            errors: z.array(z.object({ path: z.string(), message: z.string() })),
            seats: z.number().int().optional().openapi({ description: "With `seat_limit_reached`: the plan's seats." }),
          })
          .optional(),
      }),
    ),
  })
  .openapi("InvitationBatchResult");

export const InvitationListQuery = PageQuery.extend({
  status: z
    .enum(INVITATION_STATUSES)
    .optional()
    .openapi({ param: { name: "status", in: "query" }, description: 'Only invitations in this status; the same as `filter=status = "…"`.' }),
  filter: filterParam(
    '`status = "pending"` (`=`; pending, accepted, canceled or expired), `email = "ada@example.com"` (`=`, compared lower-cased), `role = "admin"` (`=`, `!=`).',
    'status = "pending" AND email = "ada@example.com"',
  ),
  order_by: orderByParam({ fields: ["created_at"], default: "created_at desc", note: "`created_at` is creation order (the time-sortable id)." }),
});

export const ResendInput = z
  .object({ expires_in_days: z.number().int().min(1).max(30).default(7), send_email: z.boolean().default(true) })
  .openapi("InvitationResend");

export const PreviewSchema = z
  .object({
    organization: z.object({ id: z.string(), name: z.string(), logo_data_uri: z.string().nullable() }),
    inviter_display_name: z.string(),
    email: z.string(),
    role: z.string(),
    expires_at: z.string(),
  })
  .openapi("InvitationPreview");

export const AcceptInput = z
  .object({
    display_name: DisplayNameInput.optional(),
    password: PasswordInput.optional(),
  })
  .openapi("InvitationAccept", { description: "Empty when signed in as the invited user; otherwise the new account's name and password." });

export const AcceptResultSchema = z
  .object({
    organization: z.object({ id: z.string(), name: z.string() }),
    member: MemberSchema,
    user: UserSchema,
    access_token: z.string().optional(),
    refresh_token: z.string().optional(),
    token_type: z.literal("Bearer").optional(),
    expires_in: z.number().int().optional(),
  })
  .openapi("InvitationAcceptResult");
