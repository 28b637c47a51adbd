import { and, eq, ne, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import { invitations, outbox } from "../db/schema";
import { systemCtx, type Bindings, type ServiceCtx } from "../env";
import { decryptString } from "../lib/crypto";
import { EmailMessageSchema } from "./messages";
import { PROVIDERS, ProviderError } from "./providers";
import { templates, type TemplateName } from "./templates";

/** Backoff between attempts: 10 s, 20 s, 40 s … capped at 10 minutes. */
export const retryDelaySeconds = (attempt: number) => Math.min(600, 10 * 2 ** Math.max(0, attempt - 1));

/** Queue names; the dead-letter queue's consumer records the final failure. */
export const DEAD_LETTER_SUFFIX = "-dlq";

export async function handleEmailBatch(batch: MessageBatch, env: Bindings, execution: ExecutionContext): Promise<void> {
  const ctx = systemCtx(env, execution);
  const isDeadLetter = batch.queue.endsWith(DEAD_LETTER_SUFFIX);
  for (const message of batch.messages) {
    // Each message on its own: one failure never holds back the others.
    const parsed = EmailMessageSchema.safeParse(message.body);
    if (!parsed.success) {
      console.error(JSON.stringify({ level: "error", msg: "dropping malformed queue message", id: message.id }));
      message.ack();
      continue;
    }
    if (isDeadLetter) {
      await markFailed(ctx, parsed.data.outbox_id, "gave up after the last retry");
      message.ack();
      continue;
    }
    try {
      await deliver(ctx, parsed.data.outbox_id);
      message.ack();
    } catch (err) {
      const retryable = !(err instanceof ProviderError) || err.retryable;
      await recordAttempt(ctx, parsed.data.outbox_id, String(err instanceof Error ? err.message : err));
      if (retryable) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
      else {
        await markFailed(ctx, parsed.data.outbox_id, String(err instanceof Error ? err.message : err));
        message.ack();
      }
    }
  }
}

async function deliver(ctx: ServiceCtx, outboxId: string): Promise<void> {
  const { db, config } = ctx;
  const [row] = await db.select().from(outbox).where(eq(outbox.id, outboxId)).limit(1);
  // Already sent (a redelivery) or gone: nothing to do.
  if (!row || row.status === "sent" || row.status === "failed") return;
  if (row.template === "invitation" && !(await invitationStillWantsEmail(ctx, row.id))) {
    await db
      .update(outbox)
      .set({ status: "failed", lastError: "superseded: the invitation is no longer pending with this email", updatedAt: Date.now() })
      .where(eq(outbox.id, row.id));
    return;
  }
  const { sealed = {}, ...payload } = row.payload as Record<string, unknown> & { sealed?: Record<string, string> };
  const secrets: Record<string, string> = {};
  for (const [k, v] of Object.entries(sealed)) secrets[k] = await decryptString(config.encryptionKey, v, `outbox:${row.id}:${k}`);
  const render = templates[row.template as TemplateName] as ((p: Record<string, unknown>) => ReturnType<(typeof templates)[TemplateName]>) | undefined;
  if (!render) throw new ProviderError(`unknown template ${row.template}`, false);
  const email = render({ ...payload, ...secrets, app_base_url: config.appBaseUrl });
  await PROVIDERS[config.emailProvider]({ ...email, to: row.recipient, from: config.emailFrom, idempotencyKey: row.id }, ctx.env, config);
  const now = Date.now();
  await db.batch([
    db
      .update(outbox)
      // Sent, its token is of no further use here: the sealed copy goes.
      .set({
        status: "sent",
        sentAt: now,
        updatedAt: now,
        attempts: sql`${outbox.attempts} + 1`,
        lastError: null,
        payload: sql`json_remove(${outbox.payload}, '$.sealed')`,
      })
      .where(and(eq(outbox.id, row.id), ne(outbox.status, "sent"))),
    invitationEmailStatus(db, row.id, "sent"),
  ]);
}

async function recordAttempt(ctx: ServiceCtx, outboxId: string, error: string) {
  await ctx.db
    .update(outbox)
    .set({ attempts: sql`${outbox.attempts} + 1`, lastError: error.slice(0, 500), updatedAt: Date.now() })
    .where(eq(outbox.id, outboxId));
}

async function markFailed(ctx: ServiceCtx, outboxId: string, error: string) {
  const db = ctx.db;
  await db.batch([
    db
      .update(outbox)
      // Keep the provider's last error if there is one: it says more than "gave up".
      .set({ status: "failed", lastError: sql`coalesce(${outbox.lastError}, ${error.slice(0, 500)})`, updatedAt: Date.now() })
      .where(and(eq(outbox.id, outboxId), ne(outbox.status, "sent"))),
    invitationEmailStatus(db, outboxId, "failed"),
  ]);
}

/** The queue consumer asks before sending: an invitation canceled, accepted, deleted or re-sent since no longer wants this email (its link is dead). */
async function invitationStillWantsEmail(ctx: ServiceCtx, outboxId: string): Promise<boolean> {
  const [live] = await ctx.db
    .select({ id: invitations.id })
    .from(invitations)
    .where(and(eq(invitations.outboxId, outboxId), eq(invitations.status, "pending")))
    .limit(1);
  return Boolean(live);
}

/** The invitation's email_status follows its current email's outcome; a sent one is never marked failed. */
function invitationEmailStatus(db: Db, outboxId: string, status: "sent" | "failed") {
  return db
    .update(invitations)
    .set({ emailStatus: status })
    .where(and(eq(invitations.outboxId, outboxId), status === "failed" ? ne(invitations.emailStatus, "sent") : undefined));
}
