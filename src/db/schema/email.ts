import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { json, ms } from "./columns";

/**
 * Every email the API decides to send is first a row here, written in the same D1 batch as the
 * change that caused it, so a failed queue send can never lose it (the cron re-enqueues).
 */
export const outbox = sqliteTable(
  "outbox",
  {
    id: text("id").primaryKey(),
    template: text("template").notNull(),
    recipient: text("recipient").notNull(),
    payload: json<Record<string, unknown>>("payload").notNull(),
    status: text("status", { enum: ["pending", "queued", "sent", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    // Optional link to the invitation (or other subject) whose email_status mirrors this row.
    subjectId: text("subject_id"),
    createdAt: ms("created_at").notNull(),
    updatedAt: ms("updated_at").notNull(),
    sentAt: ms("sent_at"),
  },
  (t) => [index("outbox_status_idx").on(t.status, t.createdAt), index("outbox_subject_idx").on(t.subjectId)],
);

/** The `outbox` provider's mailbox: rendered emails kept in D1 (dev and tests). */
export const mailbox = sqliteTable(
  "mailbox",
  {
    id: text("id").primaryKey(),
    outboxId: text("outbox_id").notNull().unique(),
    recipient: text("recipient").notNull(),
    subject: text("subject").notNull(),
    text: text("text").notNull(),
    html: text("html").notNull(),
    createdAt: ms("created_at").notNull(),
  },
  (t) => [index("mailbox_recipient_idx").on(t.recipient, t.id)],
);
