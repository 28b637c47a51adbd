import { sql } from "drizzle-orm";
import { index, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { json, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

export const INVITATION_STATUSES = ["pending", "accepted", "canceled", "expired"] as const;
export const EMAIL_STATUSES = ["queued", "sent", "failed"] as const;

export const invitations = sqliteTable(
  "invitations",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    email: text("email").notNull(),
    role: text("role").notNull(),
    message: text("message"),
    projectIds: json<string[]>("project_ids").notNull(),
    // `pending` rows past expires_at read as `expired`; the cron sweeps them to `expired`.
    status: text("status", { enum: INVITATION_STATUSES }).notNull(),
    tokenHash: text("token_hash").notNull(),
    invitedById: text("invited_by_id"),
    // Copied at creation so the list needs no join.
    invitedByName: text("invited_by_name").notNull(),
    // The outbox row of the latest email; only its outcome moves email_status.
    outboxId: text("outbox_id"),
    emailStatus: text("email_status", { enum: EMAIL_STATUSES }),
    expiresAt: ms("expires_at").notNull(),
    acceptedAt: ms("accepted_at"),
    acceptedBy: text("accepted_by"),
    ...timestamps,
  },
  (t) => [
    uniqueIndex("invitations_token_idx").on(t.tokenHash),
    // At most one pending invitation per email and organization, enforced by the database.
    uniqueIndex("invitations_pending_email_idx").on(t.organizationId, t.email).where(sql`status = 'pending'`),
    index("invitations_org_status_idx").on(t.organizationId, t.status, t.id),
    index("invitations_org_id_idx").on(t.organizationId, t.id),
    // The list's `email =` and `role =` filters: a page stays one range of an index.
    index("invitations_org_email_idx").on(t.organizationId, t.email, t.id),
    index("invitations_org_role_idx").on(t.organizationId, t.role, t.id),
    index("invitations_expiry_idx").on(t.status, t.expiresAt),
    index("invitations_outbox_idx").on(t.outboxId),
  ],
);
