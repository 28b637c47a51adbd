import { republishProfile } from "../auth/auth.service";
import { and, eq, sql } from "drizzle-orm";
import { seatLimitReached, seatLimitSql, seatsInForce, seatsUsedSql } from "../licenses/seats";
import type { BatchItem } from "drizzle-orm/batch";
import type { ServiceCtx } from "../../env";
import { invitations, members, organizations, projectMembers, users } from "../../db/schema";
import type { Caller } from "../../lib/actor";
import { hashPassword } from "../../lib/crypto";
import { ApiError, isUniqueViolation, notFound, rootMessage, validationError } from "../../lib/errors";
import { newId } from "../../lib/ids";
import { enqueueOutbox } from "../../queue/outbox";
import { openSession, tokenPair, verificationEmail } from "../auth/auth.service";
import { serializeMember } from "../members/members.schemas";
import { memberValues } from "../organizations/organizations.service";
import { serializeUser } from "../users/users.schemas";
import { afterCommit, auditStatements, type AuditActor } from "../../audit/record";
import { effectiveStatus, serializeInvitation, type InvitationRow } from "./invitations.schemas";
import { invitationByToken } from "./invitations.service";

const gone = () => new ApiError("invitation_not_pending", "The invitation was already used, canceled, or has expired; ask for a new one.");

/** Public preview: 404 for anything but a live pending invitation, so a used link reveals nothing. */
export async function previewInvitation(ctx: ServiceCtx, token: string) {
  const found = await invitationByToken(ctx, token);
  if (!found || effectiveStatus(found.invitation) !== "pending") throw notFound("invitation");
  const inv = found.invitation;
  return {
    organization: { id: inv.organizationId, name: found.orgName, logo_data_uri: found.orgLogo },
    inviter_display_name: inv.invitedByName,
    email: inv.email,
    role: inv.role,
    expires_at: new Date(inv.expiresAt).toISOString(),
  };
}

/**
 * Whether following this invitation's link proves the address: only when the current token went
 * out in an email that was actually sent. A link handed back to the inviter (`send_email: false`,
 * a resend or combine without email) proves nothing about who holds the address.
 */
const emailedLink = sql`(${invitations.outboxId} is not null and ${invitations.emailStatus} = 'sent')`;
const wasEmailed = (inv: { outboxId: string | null; emailStatus: string | null }) => inv.outboxId !== null && inv.emailStatus === "sent";

/**
 * Statements that turn the pending invitation into a membership, to follow (in the same batch)
 * a statement whose success they depend on. The invitation flips only while pending and
 * unexpired, so of two concurrent accepts exactly one changes it (the first statement returns
 * its row); everything after is guarded by that flip. A user who is somehow already a member
 * keeps their membership.
 *
 * Each audit entry follows the counter update that moved only if this very batch made its
 * change: `invitation.accepted` the flip's, `member.added` the membership's. "Accepted by this
 * user at now" cannot tell the winner, as two requests of one user can share `now`; and a user
 * who already was a member is not added again, so gets no `member.added`.
 */
function acceptStatements(ctx: ServiceCtx, inv: InvitationRow, user: { id: string; displayName: string; email: string }, now: number, actor: AuditActor) {
  const db = ctx.db;
  const m = memberValues(inv.organizationId, user, inv.role, now);
  const member = serializeMember({ memberId: user.id, type: "user", role: inv.role, displayName: user.displayName, email: user.email, joinedAt: now });
  const accepted = sql`exists (select 1 from invitations where id = ${inv.id} and status = 'accepted' and accepted_by = ${user.id} and accepted_at = ${now})`;
  const audit = { organizationId: inv.organizationId, actor, onlyIf: sql`changes() = 1` };
  const acceptedEntry = auditStatements(ctx, {
    ...audit,
    entries: [
      {
        action: "invitation.accepted",
        target: { type: "invitation", id: inv.id },
        changes: ["status"],
        event: { type: "invitation.accepted", data: serializeInvitation({ ...inv, status: "accepted", acceptedAt: now, acceptedBy: user.id, updatedAt: now }) },
      },
    ],
  });
  const addedEntry = auditStatements(ctx, {
    ...audit,
    entries: [{ action: "member.added", target: { type: "user", id: user.id }, changes: ["role"], event: { type: "member.added", data: member } }],
  });
  const statements: BatchItem<"sqlite">[] = [
    db
      .update(invitations)
      .set({ status: "accepted", acceptedAt: now, acceptedBy: user.id, updatedAt: now })
      .where(
        and(eq(invitations.id, inv.id), eq(invitations.status, "pending"), sql`${invitations.expiresAt} > ${now}`, withinSeats(ctx, inv.organizationId, now)),
      )
      .returning({ id: invitations.id }),
    db
      .update(organizations)
      .set({ pendingInvitationCount: sql`${organizations.pendingInvitationCount} - 1` })
      .where(and(eq(organizations.id, inv.organizationId), sql`changes() = 1`)),
    ...acceptedEntry.statements,
    db
      .insert(members)
      .select(
        sql`select ${m.organizationId}, ${m.memberId}, ${m.type}, ${m.role}, ${m.displayName}, ${m.nameKey}, ${m.email}, ${m.joinedAt}, null where ${accepted}`,
      )
      .onConflictDoNothing(),
    db
      .update(organizations)
      .set({ memberCount: sql`${organizations.memberCount} + 1`, userMemberCount: sql`${organizations.userMemberCount} + 1` })
      .where(and(eq(organizations.id, inv.organizationId), sql`changes() = 1`)),
    ...addedEntry.statements,
    // The invitation's projects that are still in the organization, read from the row as it is
    // now (a combine may have added some); a project deleted meanwhile is skipped.
    db
      .insert(projectMembers)
      .select(
        sql`select p.id, ${user.id}, p.organization_id, ${inv.invitedById}, ${now} from projects p
            where p.id in (select value from json_each((select i.project_ids from invitations i where i.id = ${inv.id})))
              and p.organization_id = ${inv.organizationId} and ${accepted}`,
      )
      .onConflictDoNothing(),
    // Following a link that was emailed proves the address.
    db
      .update(users)
      // Verifying moves updated_at, like every change GET /v1/me reports (republished below).
      .set({
        emailVerifiedAt: sql`coalesce(${users.emailVerifiedAt}, ${now})`,
        updatedAt: sql`case when ${users.emailVerifiedAt} is null then ${now} else ${users.updatedAt} end`,
      })
      .where(and(eq(users.id, user.id), accepted, sql`exists (select 1 from invitations where id = ${inv.id} and ${emailedLink})`)),
  ];
  const acceptedAt = 2;
  const addedAt = acceptedAt + acceptedEntry.statements.length + 2;
  return {
    statements,
    member,
    /** Counts the entries and hands their webhook deliveries on; `results` from this function's first statement on. */
    recorded(results: unknown[]) {
      afterCommit(ctx, acceptedEntry, results.slice(acceptedAt, acceptedAt + acceptedEntry.statements.length));
      afterCommit(ctx, addedEntry, results.slice(addedAt, addedAt + addedEntry.statements.length));
    },
  };
}

/**
 * The pending invitation already holds its seat, so accepting takes none; but an organization
 * over its limit (its license was downgraded or expired) lets nobody new in until it fits again.
 */
const withinSeats = (ctx: ServiceCtx, orgId: string, now: number) => sql`${seatsUsedSql(orgId)} <= ${seatLimitSql(orgId, now, ctx.config.freePlanSeats)}`;

/** Why an accept changed nothing: a concurrent accept (or expiry) won, or the organization is over its seats. */
async function refusal(ctx: ServiceCtx, invitationId: string, orgId: string): Promise<ApiError> {
  const [row] = await ctx.db
    .select({ id: invitations.id })
    .from(invitations)
    .where(and(eq(invitations.id, invitationId), eq(invitations.status, "pending"), sql`${invitations.expiresAt} > ${Date.now()}`))
    .limit(1);
  return row ? seatLimitReached(await seatsInForce(ctx, orgId)) : gone();
}

export async function acceptInvitation(ctx: ServiceCtx, caller: Caller | null, token: string, body: { display_name?: string; password?: string }) {
  const found = await invitationByToken(ctx, token);
  if (!found) throw notFound("invitation");
  const inv = found.invitation;
  if (effectiveStatus(inv) !== "pending") throw gone();
  // An inactive organization is read-only; joining it is a write like any other.
  if (!found.orgActive) throw new ApiError("organization_inactive", "The organization is inactive; it takes no new members until an admin reactivates it.");
  const organization = { id: inv.organizationId, name: found.orgName };
  const now = Date.now();
  const db = ctx.db;
  const emailed = wasEmailed(inv);

  if (caller) {
    if (caller.kind !== "session") throw new ApiError("forbidden", "Accept an invitation while signed in (an access token), not with a token or key.");
    const [user] = await db.select().from(users).where(eq(users.id, caller.userId)).limit(1);
    if (!user) throw new ApiError("unauthenticated", "The account no longer exists.");
    if (user.email !== inv.email) {
      throw new ApiError("invitation_email_mismatch", "This invitation was sent to another email address; sign in as that user.");
    }
    const accept = acceptStatements(ctx, inv, user, now, { type: "user", id: user.id, credential: "session" });
    const statements: BatchItem<"sqlite">[] = [
      ...accept.statements,
      db
        .select()
        .from(members)
        .where(and(eq(members.organizationId, inv.organizationId), eq(members.memberId, user.id))),
    ];
    const results = await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
    accept.recorded(results);
    // Only the flip's own row count tells the winner: two requests of one user can share `now`
    // (workerd's clock stands still between I/O), so "accepted by me at now" matches both.
    if ((results[0] as unknown[]).length !== 1) throw await refusal(ctx, inv.id, inv.organizationId);
    const member = (results[results.length - 1] as (typeof members.$inferSelect)[])[0];
    const verifiedAt = user.emailVerifiedAt ?? (emailed ? now : null);
    if (user.emailVerifiedAt === null && emailed) republishProfile(ctx, user.id);
    return {
      status: 200 as const,
      body: {
        organization,
        member: serializeMember(member!),
        user: serializeUser({ ...user, emailVerifiedAt: verifiedAt, updatedAt: user.emailVerifiedAt === null && emailed ? now : user.updatedAt }),
      },
    };
  }

  // Not signed in: the invitation creates the account and joins. The address counts as verified
  // only if the link came by email; otherwise the account gets a verification email, as a signup does.
  const missing = [
    ...(body.display_name === undefined ? [{ path: "display_name", message: "is required" }] : []),
    ...(body.password === undefined ? [{ path: "password", message: "is required" }] : []),
  ];
  if (missing.length > 0) throw validationError(missing, "Sign in as the invited user, or send display_name and password to create the account.");
  const user = {
    id: newId("user"),
    email: inv.email,
    displayName: body.display_name!,
    passwordHash: await hashPassword(body.password!, ctx.config.passwordHashIterations),
    emailVerifiedAt: emailed ? now : null,
    createdAt: now,
    updatedAt: now,
  };
  const session = await openSession(ctx, user.id);
  const verify = emailed ? null : await verificationEmail(ctx, user);
  // The account exists only if the invitation was still pending: if a concurrent accept won, the
  // user insert is skipped and the session insert fails its foreign key, rolling everything back.
  const accept = acceptStatements(ctx, inv, user, now, { type: "user", id: user.id, credential: "invitation" });
  const statements: BatchItem<"sqlite">[] = [
    db.insert(users).select(
      sql`select ${user.id}, ${user.email}, ${user.displayName}, ${user.passwordHash}, ${user.emailVerifiedAt}, ${now}, ${now}
            where exists (select 1 from invitations where id = ${inv.id} and status = 'pending' and expires_at > ${now}) and ${withinSeats(ctx, inv.organizationId, now)}`,
    ),
    ...accept.statements,
    ...session.statements,
    ...(verify?.statements ?? []),
  ];
  try {
    accept.recorded((await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]])).slice(1));
  } catch (err) {
    if (isUniqueViolation(err, "users.email")) {
      throw new ApiError("email_taken", "An account with this email exists; sign in and accept the invitation while signed in.");
    }
    if (rootMessage(err).includes("FOREIGN KEY constraint failed")) throw await refusal(ctx, inv.id, inv.organizationId);
    throw err;
  }
  if (verify) await enqueueOutbox(ctx, [verify.outboxId]);
  const pair = await tokenPair(ctx, user, session);
  return {
    status: 201 as const,
    body: { organization, member: accept.member, ...pair },
  };
}
