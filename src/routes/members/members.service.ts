import { and, eq, sql, type SQL } from "drizzle-orm";
import type { Ctx } from "../../env";
import { members, organizations, users } from "../../db/schema";
import { ApiError, isUniqueViolation, notFound } from "../../lib/errors";
import { compileFilter, parseFilter, parseOrderBy, type FilterField, type FilterTerm } from "../../lib/filter";
import { memberIdOf } from "../../lib/actor";
import { isId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter, orderBy, type KeyValue } from "../../lib/pagination";
import type { OrgAccess, Permission } from "../../lib/permissions";
import { memberValues } from "../organizations/organizations.service";
import { assertWithinCaller, permissionsOfRoles, requireAssignableRole } from "../roles/roles.service";
import { removeServiceAccount } from "../service-accounts/service-accounts.service";
import { authorizedRead } from "../../middleware/authorize";
import { keepsAnotherAdmin } from "./last-admin";
import { serializeMember, type MemberRow } from "./members.schemas";

const memberColumns = {
  memberId: members.memberId,
  type: members.type,
  role: members.role,
  displayName: members.displayName,
  nameKey: members.nameKey,
  email: members.email,
  joinedAt: members.joinedAt,
};

/** Upper bound of a prefix range: every string that starts with `p` sorts below it. */
const prefixEnd = (p: string) => `${p}\u{10FFFF}`;

const MEMBER_FILTER: Record<string, FilterField> = {
  role: { kind: "string", column: members.role, ops: ["=", "!="] },
  type: { kind: "enum", column: members.type, values: ["user", "service_account"] },
  search: {
    kind: "string",
    ops: [":"],
    prefix: (v) => {
      const p = v.toLowerCase();
      return sql`((${members.nameKey} >= ${p} and ${members.nameKey} < ${prefixEnd(p)}) or (${members.email} >= ${p} and ${members.email} < ${prefixEnd(p)}))`;
    },
  },
};

const SORTABLE = { display_name: members.nameKey, email: members.email, joined_at: members.joinedAt };

/**
 * One page of members. Every path reads the members table alone through one of its
 * (organization_id, …, member_id) indexes, so a page costs about page_size rows whatever the
 * organization's size (a join would double the rows read).
 */
export async function listMembers(c: Ctx, orgId: string, q: { page_size: number; page_token?: string; filter?: string; order_by?: string }) {
  const terms = q.filter ? parseFilter(q.filter) : [];
  const searches = terms.filter((t) => t.field === "search");
  if (searches.length > 1) throw new ApiError("invalid_filter", "`search` may appear once.");
  // Checked here, not in the search path alone: with an order_by an empty prefix would match everyone.
  if (searches[0] && searches[0].value === "") throw new ApiError("invalid_filter", "`search` needs at least one character.");
  const where = compileFilter(terms, MEMBER_FILTER);
  const fingerprint = `members|${orgId}|${q.filter ?? ""}|${q.order_by ?? ""}`;
  if (searches[0] && !q.order_by?.trim()) {
    const rest = compileFilter(
      terms.filter((t) => t.field !== "search"),
      MEMBER_FILTER,
    );
    return searchPage(c, orgId, searches[0], rest, fingerprint, q);
  }
  const { keys, names } = parseOrderBy(q.order_by, SORTABLE, [{ field: "joined_at", desc: true }]);
  // member_id makes the order total; it follows the last key's direction so that a single-key
  // order stays one row-value range on the index.
  keys.push({ column: members.memberId, desc: names[names.length - 1]!.desc });
  const conds: (SQL | undefined)[] = [eq(members.organizationId, orgId), where];
  if (q.page_token) conds.push(keysetAfter(keys, await decodePageToken(c.var.config.hmacSecret, fingerprint, q.page_token, keys.length)));
  const rows = await authorizedRead(
    c,
    c.var.db
      .select(memberColumns)
      .from(members)
      .where(and(...conds))
      .orderBy(...orderBy(keys))
      .limit(q.page_size + 1),
  );
  const keyOf = (r: (typeof rows)[number]): KeyValue[] => [...names.map((n) => (n.field === "display_name" ? r.nameKey : n.field === "email" ? r.email : r.joinedAt)), r.memberId];
  const page = await finishPage(c.var.config.hmacSecret, fingerprint, rows, q.page_size, keyOf);
  return { items: page.rows.map(serializeMember), next_page_token: page.nextPageToken };
}

/**
 * `search:"p"` in match order: the members whose name starts with p, merged with those whose
 * email starts with p but whose name does not (so nobody appears twice), ordered by the matched
 * text.
 *
 * Cost: one compound SELECT whose ORDER BY + LIMIT SQLite runs as a streaming merge of two index
 * ranges (members_org_name_idx, members_org_email_idx), so it stops after page_size + 1 rows.
 * Wrapping each half in its own `order by … limit` subquery would materialise both halves
 * (twice the rows read). After a page token the row-value comparison is each range's only lower
 * bound: with `>= p` beside it SQLite starts the range at p and walks every earlier match.
 * Known limit: a member whose name and email both start with p is skipped, not excluded, by the
 * email range, so prefixes that many members match both ways read those rows too.
 */
async function searchPage(
  c: Ctx,
  orgId: string,
  term: FilterTerm,
  rest: SQL | undefined,
  fingerprint: string,
  q: { page_size: number; page_token?: string },
) {
  const p = String(term.value).toLowerCase();
  const end = prefixEnd(p);
  // Every page token's k starts with p (it is signed with this very filter), so `> (k, id)`
  // implies `>= p`.
  let nameFrom: SQL = sql`${members.nameKey} >= ${p}`;
  let emailFrom: SQL = sql`${members.email} >= ${p}`;
  if (q.page_token) {
    const [k, id] = await decodePageToken(c.var.config.hmacSecret, fingerprint, q.page_token, 2);
    nameFrom = sql`(${members.nameKey}, ${members.memberId}) > (${k}, ${id})`;
    emailFrom = sql`(${members.email}, ${members.memberId}) > (${k}, ${id})`;
  }
  const extra = rest ?? sql`1 = 1`;
  const matching = (key: typeof members.nameKey | typeof members.email) =>
    c.var.db
      .select({ ...memberColumns, k: sql<string>`${key}`.as("k") })
      .from(members);
  const rows = await authorizedRead(
    c,
    matching(members.nameKey)
      .where(and(eq(members.organizationId, orgId), nameFrom, sql`${members.nameKey} < ${end}`, extra))
      .unionAll(
        matching(members.email).where(
          and(eq(members.organizationId, orgId), emailFrom, sql`${members.email} < ${end}`, sql`not (${members.nameKey} >= ${p} and ${members.nameKey} < ${end})`, extra),
        ),
      )
      .orderBy(sql`k`, sql`member_id`)
      .limit(q.page_size + 1),
  );
  const page = await finishPage(c.var.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.k, r.memberId]);
  return { items: page.rows.map(serializeMember), next_page_token: page.nextPageToken };
}

const isMemberId = (id: string) => isId("user", id) || isId("serviceAccount", id);

async function findMember(c: Ctx, orgId: string, memberId: string): Promise<MemberRow & { nameKey: string }> {
  if (!isMemberId(memberId)) throw notFound("member");
  const [row] = await authorizedRead(
    c,
    c.var.db
      .select(memberColumns)
      .from(members)
      .where(and(eq(members.organizationId, orgId), eq(members.memberId, memberId)))
      .limit(1),
  );
  if (!row) throw notFound("member");
  return row;
}

export async function getMember(c: Ctx, orgId: string, memberId: string) {
  return serializeMember(await findMember(c, orgId, memberId));
}

/** The seat limit in force; licenses (a later issue) will override the free plan here. */
export function seatLimit(c: Ctx): number {
  return c.var.config.freePlanSeats;
}

export const seatLimitReached = (seats: number) =>
  new ApiError("seat_limit_reached", `The plan's ${seats} seats are taken by members and pending invitations; remove someone or upgrade.`, {
    extra: { seats },
  });

/**
 * Adds an existing user directly. The seat check and the insert are one conditional statement,
 * and the counters move in the same batch only if the row went in. An existing member is let
 * through the seat check so that the primary key answers `already_member`, even in a full
 * organization (the batch then fails as a whole, counters included).
 */
export async function addMember(c: Ctx, access: OrgAccess, input: { email: string; role: string }) {
  const orgId = access.organization.id;
  await requireAssignableRole(c, orgId, input.role, access.permissions);
  const [user] = await c.var.db.select({ id: users.id, displayName: users.displayName, email: users.email }).from(users).where(eq(users.email, input.email)).limit(1);
  if (!user) {
    throw new ApiError("user_not_found", "No account has this email; send an invitation instead (POST …/invitations).", { extra: { hint: "invite" } });
  }
  const seats = seatLimit(c);
  const now = Date.now();
  const v = memberValues(orgId, user, input.role, now);
  const db = c.var.db;
  let inserted: { changes: number };
  try {
    const [ins] = await db.batch([
      db.insert(members).select(
        sql`select ${v.organizationId}, ${v.memberId}, ${v.type}, ${v.role}, ${v.displayName}, ${v.nameKey}, ${v.email}, ${v.joinedAt}
            where (select user_member_count + pending_invitation_count from organizations where id = ${orgId}) < ${seats}
               or exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${v.memberId})`,
      ),
      db
        .update(organizations)
        .set({ memberCount: sql`${organizations.memberCount} + 1`, userMemberCount: sql`${organizations.userMemberCount} + 1` })
        .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
    ]);
    inserted = (ins as D1Result).meta;
  } catch (err) {
    if (isUniqueViolation(err, "members.organization_id, members.member_id")) throw new ApiError("already_member", "This user is already a member.");
    throw err;
  }
  if (inserted.changes !== 1) throw seatLimitReached(seats);
  return serializeMember({ memberId: user.id, type: "user", role: input.role, displayName: user.displayName, email: user.email, joinedAt: now });
}

/** The caller's power must cover both what the member has and what they are given. */
async function assertMayManage(c: Ctx, access: OrgAccess, target: { role: string }, newRole?: string) {
  const names = newRole ? [target.role, newRole] : [target.role];
  const perms = await permissionsOfRoles(c, access.organization.id, names);
  assertWithinCaller(access.permissions, perms.get(target.role) ?? new Set<Permission>(), `manage a member whose role is \`${target.role}\``);
  if (newRole) {
    const granted = perms.get(newRole);
    if (!granted) throw new ApiError("validation_failed", `The organization has no role \`${newRole}\`.`, { errors: [{ path: "role", message: "no such role in this organization" }] });
    assertWithinCaller(access.permissions, granted, `assign the role \`${newRole}\``);
  }
}

const lastAdmin = () => new ApiError("last_admin", "This is the organization's last admin; make someone else admin first.");

export async function changeMemberRole(c: Ctx, orgId: string, memberId: string, role: string) {
  const target = await findMember(c, orgId, memberId);
  const access = c.var.access;
  await assertMayManage(c, access, target, role);
  if (target.role === role) return serializeMember(target);
  const [updated] = await c.var.db
    .update(members)
    .set({ role })
    .where(and(eq(members.organizationId, orgId), eq(members.memberId, memberId), role === "admin" ? undefined : keepsAnotherAdmin(orgId, memberId)))
    .returning(memberColumns);
  if (!updated) throw lastAdmin();
  return serializeMember(updated);
}

/** Removal (or leaving, when it is oneself). The last admin stays; access ends on the next request. */
export async function removeMember(c: Ctx, orgId: string, memberId: string) {
  const target = await findMember(c, orgId, memberId);
  const access = c.var.access;
  if (target.type === "service_account") return removeServiceAccount(c, orgId, memberId, target.role);
  if (memberId !== memberIdOf(c.var.actor!)) await assertMayManage(c, access, target);
  const db = c.var.db;
  const [deleted] = await db.batch([
    db
      .delete(members)
      .where(and(eq(members.organizationId, orgId), eq(members.memberId, memberId), keepsAnotherAdmin(orgId, memberId)))
      .returning({ id: members.memberId }),
    db
      .update(organizations)
      .set({
        memberCount: sql`${organizations.memberCount} - 1`,
        userMemberCount: sql`${organizations.userMemberCount} - 1`,
        // An owner who leaves is no longer shown as the owner.
        ownerId: sql`case when ${organizations.ownerId} = ${memberId} then null else ${organizations.ownerId} end`,
      })
      .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
  ]);
  if (deleted.length === 0) throw lastAdmin();
}
