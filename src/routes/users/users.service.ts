import { and, eq, inArray, isNull, or, sql } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { ServiceCtx } from "../../env";
import { identityProviderConfigs, members, organizations, projectMembers, sessions, users } from "../../db/schema";
import type { Caller } from "../../lib/actor";
import { hashPassword, verifyPassword } from "../../lib/crypto";
import { ApiError, isUniqueViolation, notFound, validationError } from "../../lib/errors";
import { isId } from "../../lib/ids";
import { passwordProblem } from "../../lib/password-policy";
import { enqueueOutbox } from "../../queue/outbox";
import { activeSessionIds, publishProfile, revokeAccessTokens, revokeSessions, verificationEmail } from "../auth/auth.service";
import { serializeUser, type UserJson } from "./users.schemas";
import { accountRemovalAudit } from "./account-audit";
import { noChange } from "../../audit/record";

type UserRow = typeof users.$inferSelect;

const accountGone = () => new ApiError("unauthenticated", "The account behind this credential no longer exists.");

/**
 * A platform administrator: a verified email listed in PLATFORM_ADMIN_EMAILS. Verified means
 * through a token the server emailed (see verifyEmail and invitation accept): otherwise anyone
 * could claim an admin's address before the admin does.
 */
export function isPlatformAdmin(ctx: ServiceCtx, user: UserRow): boolean {
  return user.emailVerifiedAt !== null && ctx.config.platformAdminEmails.includes(user.email);
}

export async function getUserRow(ctx: ServiceCtx, userId: string): Promise<UserRow | undefined> {
  const [row] = await ctx.db.select().from(users).where(eq(users.id, userId)).limit(1);
  return row;
}

export async function getSelf(ctx: ServiceCtx, userId: string): Promise<UserJson> {
  const row = await getUserRow(ctx, userId);
  if (!row) throw accountGone();
  return serializeUser(row);
}

/**
 * The caller and the target in one read; only the user themself or a platform administrator
 * gets past this. The target row is read only for a caller who is a verified platform admin (the
 * check is inside the statement), so a refusal reads the same rows whether or not the target
 * exists.
 */
export async function resolveUserTarget(ctx: ServiceCtx, caller: Caller, targetId: string): Promise<{ caller: UserRow; target: UserRow; byAdmin: boolean }> {
  if (caller.kind === "service_account") throw new ApiError("forbidden", "Service account keys cannot manage user accounts.");
  const admins = JSON.stringify(ctx.config.platformAdminEmails);
  const asAdmin = sql`(select ${targetId} where exists (select 1 from users a where a.id = ${caller.userId} and a.email_verified_at is not null and a.email in (select value from json_each(${admins}))))`;
  const others = caller.userId === targetId || !isId("user", targetId) ? undefined : eq(users.id, asAdmin);
  const rows = await ctx.db
    .select()
    .from(users)
    .where(or(eq(users.id, caller.userId), others));
  const self = rows.find((r) => r.id === caller.userId);
  if (!self) throw accountGone();
  if (targetId === self.id) return { caller: self, target: self, byAdmin: false };
  if (!isPlatformAdmin(ctx, self)) throw new ApiError("forbidden", "Only platform administrators may manage other users.");
  const target = rows.find((r) => r.id === targetId);
  if (!target) throw notFound("user");
  return { caller: self, target, byAdmin: true };
}

export async function updateUser(
  ctx: ServiceCtx,
  opts: {
    target: UserRow;
    byAdmin: boolean;
    currentSessionId?: string;
    input: { display_name?: string; email?: string; old_password?: string; new_password?: string };
  },
): Promise<UserJson> {
  const { target, byAdmin, input } = opts;
  const emailChanges = input.email !== undefined && input.email !== target.email;
  // Changing the password or the email of one's own account re-proves knowledge of the password.
  const needsOldPassword = !byAdmin && target.passwordHash !== null && (input.new_password !== undefined || emailChanges);
  if (needsOldPassword) {
    if (!input.old_password) throw validationError([{ path: "old_password", message: "is required to change the password or email" }]);
    if (!(await verifyPassword(input.old_password, target.passwordHash!))) {
      throw validationError([{ path: "old_password", message: "is incorrect" }]);
    }
  }
  if (input.new_password !== undefined) {
    const problem = passwordProblem(input.new_password, input.email ?? target.email);
    if (problem) throw validationError([{ path: "new_password", message: problem }]);
  }
  const nameChanges = input.display_name !== undefined && input.display_name !== target.displayName;
  // A PATCH that changes nothing writes nothing: updated_at keeps meaning "last real change".
  if (!nameChanges && !emailChanges && input.new_password === undefined) return serializeUser(target);
  const now = Date.now();
  const patch: Partial<UserRow> = { updatedAt: now };
  if (nameChanges) patch.displayName = input.display_name;
  if (emailChanges) {
    patch.email = input.email;
    patch.emailVerifiedAt = null;
  }
  if (input.new_password !== undefined) patch.passwordHash = await hashPassword(input.new_password, ctx.config.passwordHashIterations);

  const db = ctx.db;
  const statements: BatchItem<"sqlite">[] = [db.update(users).set(patch).where(eq(users.id, target.id)).returning()];
  if (patch.displayName !== undefined || emailChanges) {
    // Members rows carry copies of name and email for cheap listing and search.
    const memberPatch: Partial<typeof members.$inferInsert> = {};
    if (patch.displayName !== undefined) {
      memberPatch.displayName = patch.displayName;
      memberPatch.nameKey = patch.displayName.toLowerCase();
    }
    if (emailChanges) memberPatch.email = input.email!;
    statements.push(db.update(members).set(memberPatch).where(eq(members.memberId, target.id)));
  }
  let outboxId: string | undefined;
  if (emailChanges) {
    const verify = await verificationEmail(ctx, { id: target.id, email: input.email!, displayName: patch.displayName ?? target.displayName });
    statements.push(...verify.statements);
    outboxId = verify.outboxId;
  }
  let updated: UserRow | undefined;
  try {
    const [rows] = await db.batch(statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
    updated = (rows as UserRow[])[0];
  } catch (err) {
    if (isUniqueViolation(err, "users.email")) throw new ApiError("email_taken", "Another account uses this email.");
    throw err;
  }
  // Deleted by a concurrent request: there is no account left to answer with.
  if (!updated) throw accountGone();
  const user = serializeUser(updated);
  await publishProfile(ctx, user);
  if (outboxId) await enqueueOutbox(ctx, [outboxId]);
  if (input.new_password !== undefined) {
    // Every other session ends, access and refresh alike; the caller's own stays.
    await revokeSessions(ctx, await activeSessionIds(ctx, target.id, byAdmin ? undefined : opts.currentSessionId));
  }
  return user;
}

/**
 * Organizations where `userId` is the only human admin while someone else (a person or a service
 * account) is still a member: deleting the account would leave them without an admin who can
 * sign in. A service account with the admin role does not count (see last-admin.ts).
 */
const lastAdminOrgIds = (userId: string) => sql`select m.organization_id from members m
  where m.member_id = ${userId} and m.role = 'admin'
    and exists (select 1 from members o where o.organization_id = m.organization_id and o.member_id <> ${userId})
    and not exists (select 1 from members a where a.organization_id = m.organization_id and a.role = 'admin' and a.type = 'user' and a.member_id <> ${userId})`;

const lastAdmin = (organizationIds: string[]) =>
  new ApiError(
    "last_admin",
    "The account is the last admin of organizations that have other members; promote another admin or delete those organizations first.",
    {
      extra: { organization_ids: organizationIds },
    },
  );

/**
 * Deletes the account. An organization it is the last admin of (with anyone else in it) blocks
 * the deletion with 409 last_admin; organizations it is the only member of go with it.
 *
 * The last-admin rule is checked inside the one batch that deletes, by every statement, never
 * read first and written later: two admins of one organization deleting themselves at once
 * must not both pass a check made before either deletion. Each organization the account leaves
 * records `member.removed` (with its event) in the same batch.
 */
export async function deleteUser(ctx: ServiceCtx, userId: string): Promise<void> {
  const db = ctx.db;
  const allowed = sql`not exists (${lastAdminOrgIds(userId)})`;
  const myOrgIds = db.select({ id: members.organizationId }).from(members).where(eq(members.memberId, userId));
  const audit = accountRemovalAudit(ctx, userId, allowed);
  const [sessionRows, entries, deliveries, , , , , , deleted] = await db.batch([
    // Read in the same transaction as the delete, so a session opened meanwhile is not missed.
    db
      .select({ id: sessions.id })
      .from(sessions)
      .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt))),
    // Before anything goes: the entries are made from the memberships.
    ...audit.statements,
    // Organizations with no other member go with the account (their rows cascade).
    db
      .delete(organizations)
      .where(
        and(
          inArray(organizations.id, myOrgIds),
          sql`not exists (select 1 from members o where o.organization_id = ${outer(organizations.id)} and o.member_id <> ${userId})`,
          allowed,
        ),
      ),
    db
      .update(organizations)
      .set({ memberCount: sql`${organizations.memberCount} - 1`, userMemberCount: sql`${organizations.userMemberCount} - 1` })
      .where(and(inArray(organizations.id, myOrgIds), allowed)),
    // Project grants in the organizations that remain (before the memberships they are found by go).
    db.delete(projectMembers).where(and(inArray(projectMembers.organizationId, myOrgIds), eq(projectMembers.memberId, userId), allowed)),
    db.delete(members).where(and(eq(members.memberId, userId), allowed)),
    // The account's SCIM users (of directories it no longer belongs to) cascade with it: their
    // directories' maintained counts follow, under the account delete's own condition.
    db
      .update(identityProviderConfigs)
      .set({ scimUserCount: sql`${identityProviderConfigs.scimUserCount} - 1` })
      .where(
        and(
          sql`${identityProviderConfigs.id} in (select su.config_id from scim_users su where su.user_id = ${userId})`,
          sql`not exists (select 1 from members where member_id = ${userId})`,
        ),
      ),
    // Only once every membership is gone; sessions, refresh tokens, PATs and email tokens cascade.
    db
      .delete(users)
      .where(and(eq(users.id, userId), sql`not exists (select 1 from members where member_id = ${userId})`))
      .returning({ id: users.id }),
  ]);
  audit.done([entries, deliveries]);
  if (deleted.length === 0) {
    const blocking = (await db.all<{ organization_id: string }>(lastAdminOrgIds(userId))).map((r) => r.organization_id);
    if (blocking.length > 0) throw lastAdmin(blocking);
    // Deleted by a concurrent request: the outcome the caller asked for, recorded by that request.
    if (!(await getUserRow(ctx, userId))) return noChange(ctx);
    throw new ApiError("conflict", "The account changed while it was being deleted; retry.");
  }
  // An account in no organization (or only in ones deleted with it) leaves no organization's log.
  if (ctx.audit.written === 0) noChange(ctx);
  // The D1 rows are gone; KV stops the sessions' access tokens on their very next request.
  await revokeAccessTokens(
    ctx,
    sessionRows.map((r) => r.id),
  );
}
