import { and, desc, eq, lt, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Ctx } from "../../env";
import { invitations, members, organizations } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound, zodIssues, type ErrorCode, type FieldError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import type { OrgAccess } from "../../lib/permissions";
import { DAY_MS } from "../../lib/time";
import { authorizedRead } from "../../middleware/authorize";
import { enqueueOutbox, outboxInsert } from "../../queue/outbox";
import { link } from "../../queue/templates";
import { seatLimit, seatLimitReached } from "../members/members.service";
import { assertWithinCaller, permissionsOfRoles } from "../roles/roles.service";
import { InvitationCreateInput, effectiveStatus, serializeInvitation, type InvitationCreate, type InvitationRow } from "./invitations.schemas";

export const acceptUrl = (c: Ctx, token: string) => link(c.var.config.appBaseUrl, "/invitations/accept", token);

/** A row's refusal is the very error a single create throws; the batch response serializes it. */
export type BatchResult =
  | { email: string | null; status: "created" | "combined"; invitation: ReturnType<typeof serializeInvitation> }
  | { email: string | null; status: "error"; error: ApiError };

const rowError = (code: ErrorCode, detail: string, errors: FieldError[] = []) => new ApiError(code, detail, { errors });

export function serializeBatchResults(results: BatchResult[]) {
  return results.map((r) =>
    r.status === "error" ? { email: r.email, status: r.status, error: { ...r.error.extra, code: r.error.code, detail: r.error.message, errors: r.error.errors } } : r,
  );
}

/** The SQL of "no pending invitation for this email yet and a seat is free" for one row. */
function insertGuard(orgId: string, email: string, seats: number) {
  return sql`not exists (select 1 from members where organization_id = ${orgId} and email = ${email})
    and not exists (select 1 from invitations where organization_id = ${orgId} and email = ${email} and status = 'pending')
    and (select user_member_count + pending_invitation_count from organizations where id = ${orgId}) < ${seats}`;
}

/**
 * Creates (or, with combine_pending, refreshes) invitations. One path for one row and for a
 * batch of 100: every row becomes a few conditional statements and all rows run in one D1 batch,
 * so each row succeeds or fails on its own while the seat limit counts the whole batch (the
 * counter moves inside the transaction, row after row). A second read tells the failures apart.
 */
export async function createInvitations(c: Ctx, access: OrgAccess, rawRows: unknown[]): Promise<BatchResult[]> {
  const orgId = access.organization.id;
  const db = c.var.db;
  const now = Date.now();
  const seats = seatLimit(c);
  const results: (BatchResult | undefined)[] = new Array(rawRows.length);
  const parsed: { index: number; row: InvitationCreate }[] = [];
  const seen = new Set<string>();
  rawRows.forEach((raw, index) => {
    const r = InvitationCreateInput.safeParse(raw);
    if (r.success && seen.has(r.data.email)) {
      // A second row for one email would refresh (or be refused by) the first row's invitation
      // inside the same batch, leaving the first row's result and link wrong.
      results[index] = { email: r.data.email, status: "error", error: rowError("validation_failed", "This email appears earlier in the batch.", [{ path: "email", message: "appears earlier in this batch" }]) };
    } else if (r.success) {
      seen.add(r.data.email);
      parsed.push({ index, row: r.data });
    } else {
      const email = typeof (raw as { email?: unknown })?.email === "string" ? ((raw as { email: string }).email.trim().toLowerCase() || null) : null;
      results[index] = { email, status: "error", error: rowError("validation_failed", "The invitation is not valid.", zodIssues(r.error)) };
    }
  });

  // Roles are resolved once for the whole batch; a caller may only invite into roles within its power.
  const rolePerms = await permissionsOfRoles(c, orgId, [...new Set(parsed.map((p) => p.row.role))]);
  const planned: { index: number; row: InvitationCreate; id: string; token: string; tokenHash: string; outboxId: string | null }[] = [];
  const statements: BatchItem<"sqlite">[] = [];
  for (const { index, row } of parsed) {
    const perms = rolePerms.get(row.role);
    if (!perms) {
      results[index] = { email: row.email, status: "error", error: rowError("validation_failed", `The organization has no role \`${row.role}\`.`, [{ path: "role", message: "no such role in this organization" }]) };
      continue;
    }
    try {
      assertWithinCaller(access.permissions, perms, `invite into the role \`${row.role}\``);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      results[index] = { email: row.email, status: "error", error: err };
      continue;
    }
    const id = newId("invitation");
    const token = newSecret("inv");
    const tokenHash = await sha256Hex(token);
    const expiresAt = now + row.expires_in_days * DAY_MS;
    const emailStatus = row.send_email ? "queued" : null;
    let outboxId: string | null = null;
    const mail = row.send_email
      ? await outboxInsert(db, c.var.config, {
          template: "invitation",
          recipient: row.email,
          payload: { organization_name: access.organization.name, inviter_name: access.memberName, role: row.role, message: row.message ?? null },
          secrets: { token },
          subjectId: sql`(select id from invitations where token_hash = ${tokenHash})`,
          // Only if this row's invitation went in (created or combined) with this token.
          onlyIf: sql`exists (select 1 from invitations where token_hash = ${tokenHash})`,
        })
      : undefined;
    if (mail) outboxId = mail.id;

    // 1. This email's pending invitation that has already expired stops blocking (and holding a seat).
    statements.push(
      db
        .update(invitations)
        .set({ status: "expired", updatedAt: now })
        .where(and(eq(invitations.organizationId, orgId), eq(invitations.email, row.email), eq(invitations.status, "pending"), sql`${invitations.expiresAt} <= ${now}`)),
      db
        .update(organizations)
        .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} - 1` })
        .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
    );
    // 2. combine_pending: refresh the live one — new token and expiry, the new role, projects united.
    if (row.combine_pending) {
      statements.push(
        db
          .update(invitations)
          .set({
            tokenHash,
            role: row.role,
            message: row.message === undefined ? sql`${invitations.message}` : row.message,
            projectIds: sql`(select json_group_array(value) from (select value from json_each(${invitations.projectIds}) union select value from json_each(${JSON.stringify(row.project_ids)})))`,
            expiresAt,
            // The old email carries the old token, dead from here on: unlinking it keeps the
            // consumer from sending it if it is still on its way (as resend does).
            outboxId,
            emailStatus,
            updatedAt: now,
          })
          .where(and(eq(invitations.organizationId, orgId), eq(invitations.email, row.email), eq(invitations.status, "pending"))),
      );
    }
    // 3. A new invitation, only for a non-member without a pending invitation while a seat is free,
    //    and the counter only if it went in.
    statements.push(
      db
        .insert(invitations)
        .select(
          sql`select ${id}, ${orgId}, ${row.email}, ${row.role}, ${row.message ?? null}, ${JSON.stringify(row.project_ids)}, 'pending', ${tokenHash},
                     ${memberIdOf(c.var.actor!)}, ${access.memberName}, ${outboxId}, ${emailStatus}, ${expiresAt}, null, null, ${now}, ${now}
              where ${insertGuard(orgId, row.email, seats)}`,
        ),
      db
        .update(organizations)
        .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} + 1` })
        .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
    );
    if (mail) statements.push(mail.statement);
    planned.push({ index, row, id, token, tokenHash, outboxId });
  }

  if (planned.length > 0) {
    const hashes = JSON.stringify(planned.map((p) => p.tokenHash));
    const emails = JSON.stringify(planned.map((p) => p.row.email));
    // The read-back closes the same batch: it sees exactly what the writes did, in one round trip.
    statements.push(
      db.select().from(invitations).where(sql`${invitations.tokenHash} in (select value from json_each(${hashes}))`),
      db
        .select({ email: members.email })
        .from(members)
        .where(and(eq(members.organizationId, orgId), sql`${members.email} in (select value from json_each(${emails}))`)),
      db
        .select({ email: invitations.email })
        .from(invitations)
        .where(and(eq(invitations.organizationId, orgId), eq(invitations.status, "pending"), sql`${invitations.email} in (select value from json_each(${emails}))`)),
    );
    const written = await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
    const [landed, memberEmails, pendingEmails] = written.slice(-3) as [InvitationRow[], { email: string }[], { email: string }[]];
    const byHash = new Map(landed.map((r) => [r.tokenHash, r]));
    const isMember = new Set(memberEmails.map((r) => r.email));
    const isPending = new Set(pendingEmails.map((r) => r.email));
    const toSend: string[] = [];
    for (const p of planned) {
      const inv = byHash.get(p.tokenHash);
      if (inv) {
        if (p.outboxId) toSend.push(p.outboxId);
        const url = p.row.send_email ? undefined : acceptUrl(c, p.token);
        results[p.index] = { email: p.row.email, status: inv.id === p.id ? "created" : "combined", invitation: serializeInvitation(inv, url) };
      } else if (isMember.has(p.row.email)) {
        results[p.index] = { email: p.row.email, status: "error", error: rowError("already_member", "This email already belongs to a member.") };
      } else if (isPending.has(p.row.email)) {
        results[p.index] = {
          email: p.row.email,
          status: "error",
          error: rowError("invitation_pending", "A pending invitation for this email exists; resend it, or pass combine_pending: true."),
        };
      } else {
        results[p.index] = { email: p.row.email, status: "error", error: seatLimitReached(seats) };
      }
    }
    await enqueueOutbox(c.env, toSend, c.executionCtx);
  }
  return results as BatchResult[];
}

async function findInvitation(c: Ctx, orgId: string, id: string): Promise<InvitationRow> {
  if (!isId("invitation", id)) throw notFound("invitation");
  const [row] = await authorizedRead(
    c,
    c.var.db
      .select()
      .from(invitations)
      .where(and(eq(invitations.id, id), eq(invitations.organizationId, orgId)))
      .limit(1),
  );
  if (!row) throw notFound("invitation");
  return row;
}

export async function getInvitation(c: Ctx, orgId: string, id: string) {
  return serializeInvitation(await findInvitation(c, orgId, id));
}

/**
 * Newest first. Every branch walks the (organization_id, status, id) or (organization_id, id)
 * index in id order, so a page reads about page_size rows whatever the organization's size.
 * `+expires_at` keeps SQLite off the global (status, expires_at) index, which would read every
 * organization's pending invitations and sort them. `expired` also looks for pending rows past
 * their expiry that the cron has not swept yet, among the organization's pending invitations:
 * those hold seats, so that part is bounded by the seats, not by the organization's history.
 */
export async function listInvitations(c: Ctx, orgId: string, q: { page_size: number; page_token?: string; status?: InvitationRow["status"] }) {
  const fingerprint = `invitations|${orgId}|${q.status ?? ""}`;
  const now = Date.now();
  const db = c.var.db;
  const after = q.page_token ? String((await decodePageToken(c.var.config.hmacSecret, fingerprint, q.page_token, 1))[0]) : undefined;
  const page = (...conds: SQL[]) =>
    db
      .select()
      .from(invitations)
      .where(and(eq(invitations.organizationId, orgId), ...conds, after === undefined ? undefined : lt(invitations.id, after)))
      .orderBy(desc(invitations.id))
      .limit(q.page_size + 1);
  const live = sql`+${invitations.expiresAt} > ${now}`;
  const lapsed = sql`+${invitations.expiresAt} <= ${now}`;
  let rows: InvitationRow[];
  if (q.status === "expired") {
    // Two index walks merged here (an OR would scan the organization's history); the rare
    // status pays a second round trip.
    const swept = await authorizedRead(c, page(eq(invitations.status, "expired")));
    const unswept = await page(eq(invitations.status, "pending"), lapsed);
    rows = [...swept, ...unswept].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, q.page_size + 1);
  } else if (q.status === "pending") rows = await authorizedRead(c, page(eq(invitations.status, "pending"), live));
  else if (q.status) rows = await authorizedRead(c, page(eq(invitations.status, q.status)));
  else rows = await authorizedRead(c, page());
  const result = await finishPage(c.var.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
  return { items: result.rows.map((r) => serializeInvitation(r)), next_page_token: result.nextPageToken };
}

const notPending = (row: InvitationRow) =>
  new ApiError("conflict", `The invitation is ${serializeInvitation(row).status}; only pending invitations can be changed.`);

export async function cancelInvitation(c: Ctx, orgId: string, id: string) {
  const current = await findInvitation(c, orgId, id);
  const db = c.var.db;
  const now = Date.now();
  const [updated] = await db.batch([
    db
      .update(invitations)
      .set({ status: "canceled", updatedAt: now })
      // Past its expiry it reads as expired, so it answers like one whether or not the cron swept it.
      .where(and(eq(invitations.id, current.id), eq(invitations.status, "pending"), sql`${invitations.expiresAt} > ${now}`))
      .returning(),
    db
      .update(organizations)
      .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} - 1` })
      .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
  ]);
  if (!updated[0]) throw notPending(current);
  return serializeInvitation(updated[0]);
}

/** New token, new expiry, new email; the previous link stops working at once. */
export async function resendInvitation(c: Ctx, orgId: string, id: string, input: { expires_in_days: number; send_email: boolean }) {
  const current = await findInvitation(c, orgId, id);
  const access = c.var.access;
  const now = Date.now();
  if (effectiveStatus(current, now) !== "pending") throw notPending(current);
  const db = c.var.db;
  const token = newSecret("inv");
  const tokenHash = await sha256Hex(token);
  const mail = input.send_email
    ? await outboxInsert(db, c.var.config, {
        template: "invitation",
        recipient: current.email,
        payload: { organization_name: access.organization.name, inviter_name: current.invitedByName, role: current.role, message: current.message },
        secrets: { token },
        subjectId: current.id,
        onlyIf: sql`exists (select 1 from invitations where token_hash = ${tokenHash})`,
      })
    : undefined;
  const statements: BatchItem<"sqlite">[] = [
    db
      .update(invitations)
      .set({
        tokenHash,
        expiresAt: now + input.expires_in_days * DAY_MS,
        outboxId: mail?.id ?? null,
        emailStatus: mail ? "queued" : null,
        updatedAt: now,
      })
      .where(and(eq(invitations.id, current.id), eq(invitations.status, "pending"), sql`${invitations.expiresAt} > ${now}`)),
  ];
  if (mail) statements.push(mail.statement);
  statements.push(db.select().from(invitations).where(eq(invitations.tokenHash, tokenHash)));
  const results = await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  const row = (results[results.length - 1] as InvitationRow[])[0];
  if (!row) throw notPending(current);
  if (mail) await enqueueOutbox(c.env, [mail.id], c.executionCtx);
  return serializeInvitation(row, input.send_email ? undefined : acceptUrl(c, token));
}

/** The invitation a token names, with its organization; null for unknown tokens. */
export async function invitationByToken(c: Ctx, token: string) {
  if (!/^inv_[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
  const [row] = await c.var.db
    .select({
      invitation: invitations,
      orgName: organizations.name,
      orgLogo: organizations.logoDataUri,
      orgActive: organizations.active,
    })
    .from(invitations)
    .innerJoin(organizations, eq(organizations.id, invitations.organizationId))
    .where(eq(invitations.tokenHash, await sha256Hex(token)))
    .limit(1);
  return row ?? null;
}

