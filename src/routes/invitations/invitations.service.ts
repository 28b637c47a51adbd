import { and, desc, eq, lt, sql, type SQL } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { invitations, members, organizations, projects } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound, zodIssues, type ErrorCode, type FieldError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import type { Permission } from "../../lib/permissions";
import { DAY_MS } from "../../lib/time";
import { enqueueOutbox, outboxInsert } from "../../queue/outbox";
import { link } from "../../queue/templates";
import { seatFreeSql, seatLimitReached, seatsInForce } from "../licenses/seats";
import { assertWithinCaller, customRolesQuery, permissionsOfRole, permissionsOfRoles } from "../roles/roles.service";
import { InvitationCreateInput, effectiveStatus, serializeInvitation, type InvitationCreate, type InvitationRow } from "./invitations.schemas";

export const acceptUrl = (config: Config, token: string) => link(config.appBaseUrl, "/invitations/accept", token);

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
function insertGuard(orgId: string, email: string, seatFree: SQL) {
  return sql`not exists (select 1 from members where organization_id = ${orgId} and email = ${email})
    and not exists (select 1 from invitations where organization_id = ${orgId} and email = ${email} and status = 'pending')
    and ${seatFree}`;
}

/** Rows as far as they parse: what a create's load needs to know before the rows are judged one by one. */
function roughRows(rawRows: unknown[]) {
  return rawRows.flatMap((raw) => {
    const r = InvitationCreateInput.safeParse(raw);
    return r.success ? [r.data] : [];
  });
}

/**
 * What creating invitations reads, in the authorization batch: the organization's name (for the
 * email), the custom roles the rows name, and the pending invitations that combine_pending would
 * refresh (whose role the caller must also cover).
 */
export function createContextQueries(db: ReadDb, org: OrgScope, rawRows: unknown[]) {
  const rows = roughRows(rawRows);
  const combining = [...new Set(rows.filter((r) => r.combine_pending).map((r) => r.email))];
  // One probe of the (organization_id, email) pending index per email: a filter on the
  // organization's pending invitations would read all of them.
  const pendingRole = sql`(select i.role from invitations i where i.organization_id = ${org.guard(org.id)} and i.email = j.value and i.status = 'pending')`;
  const pendingProjects = sql`(select i.project_ids from invitations i where i.organization_id = ${org.guard(org.id)} and i.email = j.value and i.status = 'pending')`;
  return {
    org: db.select({ name: organizations.name }).from(organizations).where(eq(organizations.id, org.guard(org.id))),
    roles: customRolesQuery(db, org, rows.map((r) => r.role)),
    projects: visibleProjectIdsQuery(db, org, [...new Set(rows.flatMap((r) => r.project_ids))]),
    pending: combining.length
      ? db
          .select({
            email: sql<string>`j.value`,
            role: sql<string | null>`${pendingRole}`,
            rolePermissions: sql<string | null>`(select r.permissions from roles r where r.organization_id = ${org.id} and r.name = ${pendingRole})`,
            hiddenProjects: hiddenProjectsSql(org, pendingProjects),
          })
          .from(sql`json_each(${JSON.stringify(combining)}) j`)
      : undefined,
  };
}

/**
 * How many projects in a JSON list of ids are projects of this organization that the caller
 * cannot see. Resend and combine mint a new link to an existing invitation's projects: like its
 * role, they must be within what the caller could grant by inviting anew. The cross join keeps
 * SQLite on the id list first (one primary-key probe per id), never walking the organization's
 * projects, and the guard keeps a refused caller from probing at all.
 */
const hiddenProjectsSql = (org: OrgScope, idsJson: SQL) =>
  sql<number>`(select count(*) from json_each(${idsJson}) hp cross join projects p on p.id = hp.value
    where p.organization_id = ${org.guard(org.id)} and not (${org.holds("projects:read")} and (p.private = 0 or ${org.holds("projects:admin")}
      or exists (select 1 from project_members v where v.project_id = p.id and v.member_id = ${org.callerId}))))`;

const hiddenProjectsError = (what: string) =>
  new ApiError("forbidden", `You cannot ${what}: it grants access to projects you cannot see.`);

/**
 * Which of `ids` are projects of this organization the caller can see (holding `projects:read`,
 * and for a private one `projects:admin` or a grant): the only ones an invitation may grant. One
 * primary-key probe per id; the guard wraps the id list, so a refused caller probes nothing.
 */
function visibleProjectIdsQuery(db: ReadDb, org: OrgScope, ids: string[]) {
  if (ids.length === 0) return undefined;
  return db
    .select({ id: projects.id })
    .from(projects)
    .where(
      and(
        sql`${projects.id} in (select value from json_each(${org.guard(JSON.stringify(ids))}))`,
        eq(projects.organizationId, org.id),
        org.holds("projects:read"),
        sql`(${outer(projects.private)} = 0 or ${org.holds("projects:admin")} or exists (select 1 from project_members v where v.project_id = ${outer(projects.id)} and v.member_id = ${org.callerId}))`,
      ),
    );
}

/** A row naming projects the caller cannot grant: 422, naming them. */
function unknownProjects(row: InvitationCreate, visible: Set<string>): ApiError | null {
  const bad = row.project_ids.filter((id) => !visible.has(id));
  if (bad.length === 0) return null;
  return new ApiError("unprocessable", `Not a project of this organization that you can see: ${bad.join(", ")}.`, {
    errors: row.project_ids.flatMap((id, i) => (visible.has(id) ? [] : [{ path: `project_ids.${i}`, message: "not a project of this organization that you can see" }])),
    extra: { project_ids: bad },
  });
}

/** The stored permissions of the role an invitation names (null for a built-in role). */
const rolePermissionsOf = (role: typeof invitations.role) =>
  sql<string | null>`(select r.permissions from roles r where r.organization_id = ${outer(invitations.organizationId)} and r.name = ${outer(role)})`;

type CreateContext = {
  org: { name: string }[];
  roles: { name: string; permissions: string[] }[];
  projects?: { id: string }[] | undefined;
  pending: { email: string; role: string | null; rolePermissions: string | null; hiddenProjects: number }[] | undefined;
};

/**
 * Creates (or, with combine_pending, refreshes) invitations. One path for one row and for a
 * batch of 100: every row becomes a few conditional statements and all rows run in one D1 batch,
 * so each row succeeds or fails on its own while the seat limit counts the whole batch (the
 * counter moves inside the transaction, row after row). A second read tells the failures apart.
 *
 * Every link minted here is for a role within the caller's power, and a combined invitation's
 * old role must be within it too: refreshing it hands out its new link.
 */
export async function createInvitations(ctx: OrgCtx, rawRows: unknown[], context: CreateContext): Promise<BatchResult[]> {
  const orgId = ctx.org.id;
  const db = ctx.db;
  const now = Date.now();
  const seatFree = seatFreeSql(orgId, now, ctx.config.freePlanSeats);
  const orgName = context.org[0]?.name ?? "";
  const visibleProjects = new Set((context.projects ?? []).map((p) => p.id));
  const pendingByEmail = new Map(
    (context.pending ?? []).flatMap((p) => (p.role === null ? [] : [[p.email, { role: p.role, rolePermissions: p.rolePermissions, hiddenProjects: p.hiddenProjects }] as const])),
  );
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
  const rolePerms = permissionsOfRoles([...new Set(parsed.map((p) => p.row.role))], context.roles);
  const planned: { index: number; row: InvitationCreate; id: string; token: string; tokenHash: string; outboxId: string | null }[] = [];
  const statements: BatchItem<"sqlite">[] = [];
  for (const { index, row } of parsed) {
    const perms = rolePerms.get(row.role);
    if (!perms) {
      results[index] = { email: row.email, status: "error", error: rowError("validation_failed", `The organization has no role \`${row.role}\`.`, [{ path: "role", message: "no such role in this organization" }]) };
      continue;
    }
    try {
      assertWithinCaller(ctx.org.permissions, perms, `invite into the role \`${row.role}\``);
      const badProjects = unknownProjects(row, visibleProjects);
      if (badProjects) throw badProjects;
      const existing = row.combine_pending ? pendingByEmail.get(row.email) : undefined;
      if (existing) assertWithinCaller(ctx.org.permissions, permissionsOfRole(existing.role, existing.rolePermissions), `replace a pending invitation whose role is \`${existing.role}\``);
      if (existing && existing.hiddenProjects > 0) throw hiddenProjectsError("combine with this pending invitation");
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
      ? await outboxInsert(db, ctx.config, {
          template: "invitation",
          recipient: row.email,
          payload: { organization_name: orgName, inviter_name: ctx.org.memberName, role: row.role, message: row.message ?? null },
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
            projectIds: sql`(select json_group_array(value) from (select value from json_each(${outer(invitations.projectIds)}) union select value from json_each(${JSON.stringify(row.project_ids)})))`,
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
                     ${memberIdOf(ctx.actor)}, ${ctx.org.memberName}, ${outboxId}, ${emailStatus}, ${expiresAt}, null, null, ${now}, ${now}
              where ${insertGuard(orgId, row.email, seatFree)}`,
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
    let seats: number | undefined;
    const isPending = new Set(pendingEmails.map((r) => r.email));
    const toSend: string[] = [];
    for (const p of planned) {
      const inv = byHash.get(p.tokenHash);
      if (inv) {
        if (p.outboxId) toSend.push(p.outboxId);
        const url = p.row.send_email ? undefined : acceptUrl(ctx.config, p.token);
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
        seats ??= await seatsInForce(ctx, orgId);
        results[p.index] = { email: p.row.email, status: "error", error: seatLimitReached(seats) };
      }
    }
    await enqueueOutbox(ctx, toSend);
  }
  return results as BatchResult[];
}

/**
 * One invitation of the organization, with what acting on it needs: its role's stored
 * permissions and the organization's name. Nothing to read for a malformed id.
 */
export function invitationQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("invitation", id)) return undefined;
  return db
    .select({
      invitation: invitations,
      rolePermissions: rolePermissionsOf(invitations.role),
      orgName: sql<string>`(select o.name from organizations o where o.id = ${outer(invitations.organizationId)})`,
      hiddenProjects: hiddenProjectsSql(org, outer(invitations.projectIds)),
    })
    .from(invitations)
    .where(and(eq(invitations.id, org.guard(id)), eq(invitations.organizationId, org.id)))
    .limit(1);
}

type FoundInvitation = { invitation: InvitationRow; rolePermissions: string | null; orgName: string; hiddenProjects: number };

function found(rows: FoundInvitation[] | undefined): FoundInvitation {
  const row = rows?.[0];
  if (!row) throw notFound("invitation");
  return row;
}

export const getInvitation = (rows: FoundInvitation[] | undefined) => serializeInvitation(found(rows).invitation);

type ListQuery = { page_size: number; page_token?: string; status?: InvitationRow["status"] };
const listFingerprint = (orgId: string, q: ListQuery) => `invitations|${orgId}|${q.status ?? ""}`;

/**
 * Newest first. Every branch walks the (organization_id, status, id) or (organization_id, id)
 * index in id order, so a page reads about page_size rows whatever the organization's size.
 * `+expires_at` keeps SQLite off the global (status, expires_at) index, which would read every
 * organization's pending invitations and sort them. `expired` also looks for pending rows past
 * their expiry that the cron has not swept yet, among the organization's pending invitations:
 * those hold seats, so that part is bounded by the seats, not by the organization's history.
 */
export async function invitationListQueries(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const now = Date.now();
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id, q), q.page_token, 1))[0]) : undefined;
  const page = (...conds: SQL[]) =>
    db
      .select()
      .from(invitations)
      .where(and(org.inOrg(invitations.organizationId), ...conds, after === undefined ? undefined : lt(invitations.id, after)))
      .orderBy(desc(invitations.id))
      .limit(q.page_size + 1);
  const live = sql`+${invitations.expiresAt} > ${now}`;
  const lapsed = sql`+${invitations.expiresAt} <= ${now}`;
  // Two index walks merged after the read (an OR would scan the organization's history).
  if (q.status === "expired") return { rows: page(eq(invitations.status, "expired")), more: page(eq(invitations.status, "pending"), lapsed) };
  if (q.status === "pending") return { rows: page(eq(invitations.status, "pending"), live) };
  return { rows: q.status ? page(eq(invitations.status, q.status)) : page() };
}

export async function invitationPage(ctx: OrgCtx, q: ListQuery, loaded: { rows: InvitationRow[]; more?: InvitationRow[] }) {
  const rows = loaded.more ? [...loaded.rows, ...loaded.more].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, q.page_size + 1) : loaded.rows;
  const result = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id, q), rows, q.page_size, (r) => [r.id]);
  return { items: result.rows.map((r) => serializeInvitation(r)), next_page_token: result.nextPageToken };
}

const notPending = (row: InvitationRow) =>
  new ApiError("conflict", `The invitation is ${serializeInvitation(row).status}; only pending invitations can be changed.`);

export async function cancelInvitation(ctx: OrgCtx, rows: FoundInvitation[] | undefined) {
  const current = found(rows).invitation;
  const db = ctx.db;
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
      .where(and(eq(organizations.id, ctx.org.id), sql`changes() = 1`)),
  ]);
  if (!updated[0]) throw notPending(current);
  return serializeInvitation(updated[0]);
}

/**
 * New token, new expiry, new email; the previous link stops working at once. A resend mints a
 * link for the invitation's role, so the caller must hold every permission of that role, as
 * inviting into it would need.
 */
export async function resendInvitation(ctx: OrgCtx, rows: FoundInvitation[] | undefined, input: { expires_in_days: number; send_email: boolean }) {
  const { invitation: current, rolePermissions, orgName, hiddenProjects } = found(rows);
  assertWithinCaller(ctx.org.permissions, permissionsOfRole(current.role, rolePermissions) as Set<Permission>, `resend an invitation whose role is \`${current.role}\``);
  if (hiddenProjects > 0) throw hiddenProjectsError("resend this invitation");
  const now = Date.now();
  if (effectiveStatus(current, now) !== "pending") throw notPending(current);
  const db = ctx.db;
  const token = newSecret("inv");
  const tokenHash = await sha256Hex(token);
  const mail = input.send_email
    ? await outboxInsert(db, ctx.config, {
        template: "invitation",
        recipient: current.email,
        payload: { organization_name: orgName, inviter_name: current.invitedByName, role: current.role, message: current.message },
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
  if (mail) await enqueueOutbox(ctx, [mail.id]);
  return serializeInvitation(row, input.send_email ? undefined : acceptUrl(ctx.config, token));
}

/** The invitation a token names, with its organization; null for unknown tokens. */
export async function invitationByToken(ctx: ServiceCtx, token: string) {
  if (!/^inv_[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
  const [row] = await ctx.db
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

/**
 * The cron: pending invitations past their expiry become `expired` and stop holding a seat.
 * Reads already show them as expired; this sweep is what frees the counter, so a seat frees up
 * within a minute.
 */
export async function sweepExpiredInvitations(ctx: ServiceCtx, now = Date.now()): Promise<void> {
  const db = ctx.db;
  const due = sql`select organization_id from invitations where status = 'pending' and expires_at <= ${now}`;
  await db.batch([
    db
      .update(organizations)
      .set({
        pendingInvitationCount: sql`${organizations.pendingInvitationCount} - (select count(*) from invitations i where i.organization_id = ${outer(organizations.id)} and i.status = 'pending' and i.expires_at <= ${now})`,
      })
      .where(sql`${organizations.id} in (${due})`),
    db
      .update(invitations)
      .set({ status: "expired", updatedAt: now })
      .where(and(eq(invitations.status, "pending"), sql`${invitations.expiresAt} <= ${now}`)),
  ]);
}
