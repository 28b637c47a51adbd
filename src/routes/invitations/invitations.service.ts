import { jsonRows } from "../../db/json-rows";
import { and, asc, desc, eq, gt, lt, sql, type SQL } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { INVITATION_STATUSES, invitations, organizations, outbox, projects } from "../../db/schema";
import { commit, noChange, type AuditEntry } from "../../audit/record";
import { memberIdOf } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound, zodIssues, type ErrorCode, type FieldError } from "../../lib/errors";
import { hasSecretPrefix, isId, newId, SECRET_PREFIXES } from "../../lib/ids";
import { compileFilter, parseFilter, parseOrderBy, type FilterField } from "../../lib/filter";
import { decodePageToken, finishPage } from "../../lib/pagination";
import type { Permission } from "../../lib/permissions";
import { DAY_MS } from "../../lib/time";
import { enqueueOutbox, outboxInsert, sealedPayload } from "../../queue/outbox";
import { link } from "../../queue/templates";
import { seatLimitReached, seatsInForce, seatsLeftSql } from "../licenses/seats";
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
    r.status === "error"
      ? { email: r.email, status: r.status, error: { ...r.error.extra, code: r.error.code, detail: r.error.message, errors: r.error.errors } }
      : r,
  );
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
  return {
    org: db
      .select({ name: organizations.name })
      .from(organizations)
      .where(eq(organizations.id, org.guard(org.id))),
    roles: customRolesQuery(
      db,
      org,
      rows.map((r) => r.role),
    ),
    projects: visibleProjectIdsQuery(db, org, [...new Set(rows.flatMap((r) => r.project_ids))]),
    // One probe of the (organization_id, email) pending index per email (the cross join keeps
    // SQLite on the email list): a filter on the organization's pending invitations would read all of them.
    pending: combining.length
      ? db
          .select({
            email: sql<string>`j.value`,
            id: sql<string>`i.id`,
            role: sql<string>`i.role`,
            message: sql<string | null>`i.message`,
            // The stored text: the refresh applies only while it still reads exactly so.
            projectIds: sql<string>`i.project_ids`,
            invitedById: sql<string | null>`i.invited_by_id`,
            invitedByName: sql<string>`i.invited_by_name`,
            createdAt: sql<number>`i.created_at`,
            rolePermissions: sql<string | null>`(select r.permissions from roles r where r.organization_id = ${org.id} and r.name = i.role)`,
            hiddenProjects: hiddenProjectsSql(org, sql`i.project_ids`),
          })
          .from(
            sql`json_each(${JSON.stringify(combining)}) j cross join invitations i on i.organization_id = ${org.guard(org.id)} and i.email = j.value and i.status = 'pending'`,
          )
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

const hiddenProjectsError = (what: string) => new ApiError("forbidden", `You cannot ${what}: it grants access to projects you cannot see.`);

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
    errors: row.project_ids.flatMap((id, i) =>
      visible.has(id) ? [] : [{ path: `project_ids.${i}`, message: "not a project of this organization that you can see" }],
    ),
    extra: { project_ids: bad },
  });
}

/** The stored permissions of the role an invitation names (null for a built-in role). */
const rolePermissionsOf = (role: typeof invitations.role) =>
  sql<string | null>`(select r.permissions from roles r where r.organization_id = ${outer(invitations.organizationId)} and r.name = ${outer(role)})`;

type PendingInvitation = {
  email: string;
  id: string;
  role: string;
  message: string | null;
  projectIds: string;
  invitedById: string | null;
  invitedByName: string;
  createdAt: number;
  rolePermissions: string | null;
  hiddenProjects: number;
};

type CreateContext = {
  org: { name: string }[];
  roles: { name: string; permissions: string[] }[];
  projects?: { id: string }[] | undefined;
  pending: PendingInvitation[] | undefined;
};

/** A row that passed every check made before the write, with everything its statements bind. */
type Planned = {
  index: number;
  row: InvitationCreate;
  token: string;
  /** The invitation as it reads if this row creates it. */
  created: InvitationRow;
  /** As it reads if this row refreshes the pending invitation loaded for it (combine_pending). */
  combined: InvitationRow | null;
  /** The refreshed invitation's projects (as stored) and message: the refresh applies only while they still read so. */
  stored: { projectIds: string; message: string | null } | null;
  mail: { id: string; payload: string } | null;
};

/** A refresh keeps the pending invitation's projects, in order, and adds the row's new ones. */
function unitedProjects(stored: string, added: string[]) {
  const kept = JSON.parse(stored) as string[];
  return [...kept, ...added.filter((id) => !kept.includes(id))];
}

/**
 * The invitation email's outbox payload, its token sealed to the outbox row as outboxInsert
 * (src/queue/outbox.ts) seals it: the batch writes all rows' emails in one statement, so it
 * needs the payloads rather than one insert statement per row.
 */

/**
 * Creates (or, with combine_pending, refreshes) invitations. One path for one row and for a
 * batch of 100, and one D1 batch of about ten statements whatever the number of rows: each step
 * is one set-based statement over all rows (passed as JSON), so D1's per-request statement limit
 * is never near. Each row still succeeds or fails on its own, and the seat limit counts the
 * whole batch in row order: the insert ranks the rows that may be invited and takes the first
 * as many as there are free seats. A read at the end of the batch tells the failures apart.
 *
 * Every link minted here is for a role within the caller's power, and a combined invitation's
 * old role must be within it too: refreshing it hands out its new link.
 */
export async function createInvitations(ctx: OrgCtx, rawRows: unknown[], context: CreateContext): Promise<BatchResult[]> {
  const orgId = ctx.org.id;
  const now = Date.now();
  const orgName = context.org[0]?.name ?? "";
  const visibleProjects = new Set((context.projects ?? []).map((p) => p.id));
  const pendingByEmail = new Map((context.pending ?? []).map((p) => [p.email, p]));
  const results: (BatchResult | undefined)[] = new Array(rawRows.length);
  const parsed: { index: number; row: InvitationCreate }[] = [];
  const seen = new Set<string>();
  rawRows.forEach((raw, index) => {
    const r = InvitationCreateInput.safeParse(raw);
    if (r.success && seen.has(r.data.email)) {
      // A second row for one email would refresh (or be refused by) the first row's invitation
      // inside the same batch, leaving the first row's result and link wrong.
      results[index] = {
        email: r.data.email,
        status: "error",
        error: rowError("validation_failed", "This email appears earlier in the batch.", [{ path: "email", message: "appears earlier in this batch" }]),
      };
    } else if (r.success) {
      seen.add(r.data.email);
      parsed.push({ index, row: r.data });
    } else {
      const email = typeof (raw as { email?: unknown })?.email === "string" ? (raw as { email: string }).email.trim().toLowerCase() || null : null;
      results[index] = { email, status: "error", error: rowError("validation_failed", "The invitation is not valid.", zodIssues(r.error)) };
    }
  });

  // Roles are resolved once for the whole batch; a caller may only invite into roles within its power.
  const rolePerms = permissionsOfRoles([...new Set(parsed.map((p) => p.row.role))], context.roles);
  const planned: Planned[] = [];
  for (const { index, row } of parsed) {
    const perms = rolePerms.get(row.role);
    if (!perms) {
      results[index] = {
        email: row.email,
        status: "error",
        error: rowError("validation_failed", `The organization has no role \`${row.role}\`.`, [{ path: "role", message: "no such role in this organization" }]),
      };
      continue;
    }
    const existing = row.combine_pending ? pendingByEmail.get(row.email) : undefined;
    try {
      assertWithinCaller(ctx.org.permissions, perms, `invite into the role \`${row.role}\``);
      const badProjects = unknownProjects(row, visibleProjects);
      if (badProjects) throw badProjects;
      if (existing)
        assertWithinCaller(
          ctx.org.permissions,
          permissionsOfRole(existing.role, existing.rolePermissions),
          `replace a pending invitation whose role is \`${existing.role}\``,
        );
      if (existing && existing.hiddenProjects > 0) throw hiddenProjectsError("combine with this pending invitation");
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      results[index] = { email: row.email, status: "error", error: err };
      continue;
    }
    const token = newSecret(SECRET_PREFIXES.invitationToken);
    const outboxId = row.send_email ? newId("outbox") : null;
    const fresh = {
      tokenHash: await sha256Hex(token),
      role: row.role,
      expiresAt: now + row.expires_in_days * DAY_MS,
      outboxId,
      emailStatus: row.send_email ? ("queued" as const) : null,
      updatedAt: now,
    };
    const created: InvitationRow = {
      ...fresh,
      id: newId("invitation"),
      organizationId: orgId,
      email: row.email,
      message: row.message ?? null,
      projectIds: row.project_ids,
      status: "pending",
      invitedById: memberIdOf(ctx.actor),
      invitedByName: ctx.org.memberName,
      acceptedAt: null,
      acceptedBy: null,
      createdAt: now,
    };
    // The refresh keeps who invited and when; the old email carries the old token, dead from
    // here on, and unlinking it keeps the consumer from sending it if it is still on its way.
    const combined: InvitationRow | null = existing
      ? {
          ...created,
          ...fresh,
          id: existing.id,
          message: row.message === undefined ? existing.message : row.message,
          projectIds: unitedProjects(existing.projectIds, row.project_ids),
          invitedById: existing.invitedById,
          invitedByName: existing.invitedByName,
          createdAt: existing.createdAt,
        }
      : null;
    const mail = outboxId
      ? {
          id: outboxId,
          payload: await sealedPayload(
            ctx.config,
            outboxId,
            { organization_name: orgName, inviter_name: ctx.org.memberName, role: row.role, message: row.message ?? null },
            { token },
          ),
        }
      : null;
    planned.push({ index, row, token, created, combined, stored: existing ? { projectIds: existing.projectIds, message: existing.message } : null, mail });
  }

  if (planned.length === 0) {
    noChange(ctx);
    return results as BatchResult[];
  }
  const outcomes = await writeInvitations(ctx, planned, now);
  let seats: number | undefined;
  const toSend: string[] = [];
  for (const [ord, p] of planned.entries()) {
    const outcome = outcomes[ord]!;
    // What went in is exactly what was planned: the insert writes the planned values, and the
    // refresh applies only to the invitation as loaded.
    const inv = outcome.landed === p.created.id ? p.created : outcome.landed === p.combined?.id ? p.combined : null;
    if (inv) {
      if (p.mail) toSend.push(p.mail.id);
      const url = p.row.send_email ? undefined : acceptUrl(ctx.config, p.token);
      results[p.index] = { email: p.row.email, status: inv === p.created ? "created" : "combined", invitation: serializeInvitation(inv, url) };
    } else if (outcome.member) {
      results[p.index] = { email: p.row.email, status: "error", error: rowError("already_member", "This email already belongs to a member.") };
    } else if (outcome.pending) {
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
  // Every row refused (a batch answers 200 all the same): nothing to record.
  if (!outcomes.some((o) => o.landed !== null)) noChange(ctx);
  await enqueueOutbox(ctx, toSend);
  return results as BatchResult[];
}

/**
 * The write, as one batch of set-based statements over all planned rows, with the audit entries
 * and webhook events of the rows that went in. It ends by reading, per row, which invitation
 * carries the row's new token (none: refused), and for a refused row whether its email is a
 * member or has a pending invitation (neither: no seat was left).
 */
async function writeInvitations(ctx: OrgCtx, planned: Planned[], now: number) {
  const orgId = ctx.org.id;
  const db = ctx.db;
  const emails = JSON.stringify(planned.map((p) => p.row.email));
  const hashes = JSON.stringify(planned.map((p) => p.created.tokenHash));
  const statements: BatchItem<"sqlite">[] = [
    // This batch's emails' pending invitations already past their expiry stop blocking, and
    // stop holding a seat.
    db
      .update(invitations)
      .set({ status: "expired", updatedAt: now })
      .where(
        sql`${invitations.id} in (select i.id from json_each(${emails}) j cross join invitations i
              on i.organization_id = ${orgId} and i.email = j.value and i.status = 'pending' and i.expires_at <= ${now})`,
      ),
    db
      .update(organizations)
      .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} - changes()` })
      .where(and(eq(organizations.id, orgId), sql`changes() > 0`)),
  ];
  // Prefixed: in UPDATE … FROM a column name the table also has would be ambiguous.
  const refreshes = planned.flatMap((p) =>
    p.combined
      ? [
          {
            c_id: p.combined.id,
            c_token_hash: p.combined.tokenHash,
            c_role: p.combined.role,
            c_message: p.combined.message,
            c_project_ids: JSON.stringify(p.combined.projectIds),
            c_stored_project_ids: p.stored!.projectIds,
            c_stored_message: p.stored!.message,
            c_expires_at: p.combined.expiresAt,
            c_outbox_id: p.combined.outboxId,
            c_email_status: p.combined.emailStatus,
          },
        ]
      : [],
  );
  if (refreshes.length > 0) {
    // combine_pending: the loaded pending invitation, still live, takes the new token, expiry,
    // role and projects. Only if its projects and message still read as loaded, so the result
    // (and the event) is exactly what was computed; a concurrent refresh leaves this row refused.
    statements.push(
      db
        .update(invitations)
        .set({
          tokenHash: sql`c.c_token_hash`,
          role: sql`c.c_role`,
          message: sql`c.c_message`,
          projectIds: sql`c.c_project_ids`,
          expiresAt: sql`c.c_expires_at`,
          outboxId: sql`c.c_outbox_id`,
          emailStatus: sql`c.c_email_status`,
          updatedAt: now,
        })
        .from(jsonRows(refreshes, "c"))
        .where(
          and(
            sql`${invitations.id} = c.c_id`,
            // Unary plus: the primary key, driven by the refresh list, not the organization's pending rows.
            sql`+${invitations.organizationId} = ${orgId}`,
            sql`+${invitations.status} = 'pending'`,
            sql`${invitations.projectIds} = c.c_stored_project_ids`,
            sql`${invitations.message} is c.c_stored_message`,
          ),
        ),
    );
  }
  const fresh = planned.map((p, ord) => ({
    ord,
    id: p.created.id,
    email: p.created.email,
    role: p.created.role,
    message: p.created.message,
    project_ids: JSON.stringify(p.created.projectIds),
    token_hash: p.created.tokenHash,
    outbox_id: p.created.outboxId,
    email_status: p.created.emailStatus,
    expires_at: p.created.expiresAt,
  }));
  statements.push(
    // New invitations for the rows whose email is neither a member nor pending (a refreshed one
    // is pending), in row order, as many as there are free seats; then the counter, by as many.
    db.insert(invitations).select(
      sql`select r.id, ${orgId}, r.email, r.role, r.message, r.project_ids, 'pending', r.token_hash, ${memberIdOf(ctx.actor)}, ${ctx.org.memberName},
                 r.outbox_id, r.email_status, r.expires_at, null, null, ${now}, ${now}
          from (select n.*, row_number() over (order by n.ord) as seat from ${jsonRows(fresh, "n")}
                where not exists (select 1 from members m where m.organization_id = ${orgId} and m.email = n.email)
                  and not exists (select 1 from invitations i where i.organization_id = ${orgId} and i.email = n.email and i.status = 'pending')) r
          where r.seat <= ${seatsLeftSql(orgId, now, ctx.config.freePlanSeats)}`,
    ),
    db
      .update(organizations)
      .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} + changes()` })
      .where(and(eq(organizations.id, orgId), sql`changes() > 0`)),
  );
  const mails = planned.flatMap((p) => (p.mail ? [{ id: p.mail.id, recipient: p.row.email, payload: p.mail.payload, token_hash: p.created.tokenHash }] : []));
  if (mails.length > 0) {
    // Columns in table order: id, template, recipient, payload, status, attempts, last_error, subject_id, created_at, updated_at, sent_at.
    // Only for rows whose invitation went in (created or combined) with this token.
    statements.push(
      db.insert(outbox).select(
        sql`select o.id, 'invitation', o.recipient, o.payload, 'pending', 0, null, i.id, ${now}, ${now}, null
            from ${jsonRows(mails, "o")} cross join invitations i on i.token_hash = o.token_hash`,
      ),
    );
  }
  // The outcome closes the same batch, so it sees exactly what the writes did; a refused row's
  // reasons are probed only for that row.
  const rowsOf = jsonRows(
    planned.map((p, ord) => ({ ord, email: p.row.email, token_hash: p.created.tokenHash })),
    "f",
  );
  statements.push(
    db
      .select({
        ord: sql<number>`f.ord`.as("ord"),
        landed: sql<string | null>`i.id`.as("landed"),
        member: sql<
          number | null
        >`case when i.id is null then exists (select 1 from members m where m.organization_id = ${orgId} and m.email = f.email) end`.as("member"),
        pending: sql<
          number | null
        >`case when i.id is null then exists (select 1 from invitations p where p.organization_id = ${orgId} and p.email = f.email and p.status = 'pending') end`.as(
          "pending",
        ),
      })
      .from(sql`${rowsOf} left join invitations i on i.token_hash = f.token_hash`),
  );
  // Each row may have gone in as created or (combine_pending) combined: both entries are offered,
  // and only the one whose invitation now carries the row's new token is written.
  const entries: AuditEntry[] = planned.flatMap((p) => [
    {
      action: "invitation.created",
      target: { type: "invitation", id: p.created.id },
      event: { type: "invitation.created", data: serializeInvitation(p.created) },
    },
    ...(p.combined
      ? [
          {
            action: "invitation.updated" as const,
            target: { type: "invitation", id: p.combined.id },
            changes: ["token", "role", "project_ids", "expires_at", "email_status", ...(p.row.message === undefined ? [] : ["message"])],
            event: { type: "invitation.updated" as const, data: serializeInvitation(p.combined) },
          },
        ]
      : []),
  ]);
  const results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
    entries,
    onlyIf: sql`audit_row.target_id in (select i.id from json_each(${hashes}) h cross join invitations i on i.token_hash = h.value)`,
  });
  const outcomes = (results as unknown[]).at(-1) as { ord: number; landed: string | null; member: number | null; pending: number | null }[];
  const byOrd = new Map(outcomes.map((o) => [o.ord, o]));
  return planned.map((_, ord) => byOrd.get(ord)!);
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

type ListQuery = { page_size: number; page_token?: string; status?: InvitationRow["status"]; filter?: string; order_by?: string };

// `status` picks the index walk below; `email` and `role` narrow it.
const INVITATION_FILTER: Record<string, FilterField> = {
  status: { kind: "enum", values: INVITATION_STATUSES, ops: ["="] },
  email: { kind: "string", column: invitations.email, lowercase: true, ops: ["="] },
  role: { kind: "string", column: invitations.role, ops: ["=", "!="] },
};

/** The list's filter, `?status=` (an alias of `status = "…"`) and order, parsed once for the load and the page. */
function planInvitationList(orgId: string, q: ListQuery) {
  const terms = q.filter ? parseFilter(q.filter) : [];
  compileFilter(terms, INVITATION_FILTER); // validates every term, status included
  const statuses = new Set([...terms.filter((t) => t.field === "status").map((t) => t.value as InvitationRow["status"]), ...(q.status ? [q.status] : [])]);
  const { names } = parseOrderBy(q.order_by, { created_at: invitations.id }, [{ field: "created_at", desc: true }]);
  const newestFirst = names[0]!.desc;
  return {
    fingerprint: `invitations|${orgId}|${q.status ?? ""}|${q.filter ?? ""}|${newestFirst}`,
    // Two different statuses ANDed together match nothing.
    status: statuses.size > 1 ? ("none" as const) : [...statuses][0],
    narrow: compileFilter(
      terms.filter((t) => t.field !== "status"),
      INVITATION_FILTER,
    ),
    newestFirst,
  };
}

/**
 * Newest first by default. Every branch walks the (organization_id, status, id) or
 * (organization_id, id) index in id order, so a page reads about page_size rows whatever the
 * organization's size; `email` and `role` are checked on the rows walked (a pending `email` is one
 * probe of the pending-email index). `+expires_at` keeps SQLite off the global
 * (status, expires_at) index, which would read every organization's pending invitations and sort
 * them. `expired` also looks for pending rows past their expiry that the cron has not swept yet,
 * among the organization's pending invitations: those hold seats, so that part is bounded by the
 * seats, not by the organization's history.
 */
export async function invitationListQueries(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const plan = planInvitationList(org.id, q);
  const now = Date.now();
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, plan.fingerprint, q.page_token, 1))[0]) : undefined;
  const page = (...conds: SQL[]) =>
    db
      .select()
      .from(invitations)
      .where(
        and(
          org.inOrg(invitations.organizationId),
          ...conds,
          plan.narrow,
          after === undefined ? undefined : plan.newestFirst ? lt(invitations.id, after) : gt(invitations.id, after),
        ),
      )
      .orderBy(plan.newestFirst ? desc(invitations.id) : asc(invitations.id))
      .limit(q.page_size + 1);
  const live = sql`+${invitations.expiresAt} > ${now}`;
  const lapsed = sql`+${invitations.expiresAt} <= ${now}`;
  if (plan.status === "none") return { rows: page(sql`0`) };
  // Two index walks merged after the read (an OR would scan the organization's history).
  if (plan.status === "expired") return { rows: page(eq(invitations.status, "expired")), more: page(eq(invitations.status, "pending"), lapsed) };
  if (plan.status === "pending") return { rows: page(eq(invitations.status, "pending"), live) };
  return { rows: plan.status ? page(eq(invitations.status, plan.status)) : page() };
}

export async function invitationPage(ctx: OrgCtx, q: ListQuery, loaded: { rows: InvitationRow[]; more?: InvitationRow[] }) {
  const plan = planInvitationList(ctx.org.id, q);
  const inOrder = (a: InvitationRow, b: InvitationRow) => (a.id < b.id === plan.newestFirst ? 1 : -1);
  const rows = loaded.more ? [...loaded.rows, ...loaded.more].sort(inOrder).slice(0, q.page_size + 1) : loaded.rows;
  const result = await finishPage(ctx.config.hmacSecret, plan.fingerprint, rows, q.page_size, (r) => [r.id]);
  return { items: result.rows.map((r) => serializeInvitation(r)), next_page_token: result.nextPageToken };
}

const notPending = (row: InvitationRow) =>
  new ApiError("conflict", `The invitation is ${serializeInvitation(row).status}; only pending invitations can be changed.`);

export async function cancelInvitation(ctx: OrgCtx, rows: FoundInvitation[] | undefined) {
  const current = found(rows).invitation;
  const db = ctx.db;
  const now = Date.now();
  const canceled: InvitationRow = { ...current, status: "canceled", updatedAt: now };
  const [updated] = await commit(
    ctx,
    [
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
    ],
    {
      // After the counter update, which ran only if the invitation was canceled.
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "invitation.canceled",
          target: { type: "invitation", id: current.id },
          changes: ["status"],
          event: { type: "invitation.canceled", data: serializeInvitation(canceled) },
        },
      ],
    },
  );
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
  assertWithinCaller(
    ctx.org.permissions,
    permissionsOfRole(current.role, rolePermissions) as Set<Permission>,
    `resend an invitation whose role is \`${current.role}\``,
  );
  if (hiddenProjects > 0) throw hiddenProjectsError("resend this invitation");
  const now = Date.now();
  if (effectiveStatus(current, now) !== "pending") throw notPending(current);
  const db = ctx.db;
  const token = newSecret(SECRET_PREFIXES.invitationToken);
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
  const refreshed = {
    tokenHash,
    expiresAt: now + input.expires_in_days * DAY_MS,
    outboxId: mail?.id ?? null,
    emailStatus: mail ? ("queued" as const) : null,
    updatedAt: now,
  };
  const statements: BatchItem<"sqlite">[] = [
    db
      .update(invitations)
      .set(refreshed)
      .where(and(eq(invitations.id, current.id), eq(invitations.status, "pending"), sql`${invitations.expiresAt} > ${now}`)),
  ];
  if (mail) statements.push(mail.statement);
  statements.push(db.select().from(invitations).where(eq(invitations.tokenHash, tokenHash)));
  const results = await commit(ctx, statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
    // Only if the invitation now carries the new token, i.e. the resend went in.
    onlyIf: sql`exists (select 1 from invitations where token_hash = ${tokenHash})`,
    entries: [
      {
        action: "invitation.resent",
        target: { type: "invitation", id: current.id },
        changes: ["token", "expires_at", "email_status"],
        event: { type: "invitation.resent", data: serializeInvitation({ ...current, ...refreshed }) },
      },
    ],
  });
  const row = (results[results.length - 1] as InvitationRow[])[0];
  if (!row) throw notPending(current);
  if (mail) await enqueueOutbox(ctx, [mail.id]);
  return serializeInvitation(row, input.send_email ? undefined : acceptUrl(ctx.config, token));
}

/**
 * The invitation a token names, with its organization; null for unknown tokens. Tokens minted
 * before they had a prefix of their own (`inv_…`, like the ids) still work. An invitation's id in
 * place of its token is a 404 that says so: the two used to look alike.
 */
export async function invitationByToken(ctx: ServiceCtx, token: string) {
  if (isId("invitation", token)) {
    throw new ApiError("not_found", `This is an invitation id; use the token from the email or the accept_url (\`${SECRET_PREFIXES.invitationToken}_…\`).`);
  }
  if (!hasSecretPrefix("invitationToken", token) || !/^[a-z]+_[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
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
