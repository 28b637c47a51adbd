import { and, eq, sql, type SQL } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import { seatFreeSql, seatLimitReached, seatsInForce } from "../licenses/seats";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { members, organizations, projectMembers, users } from "../../db/schema";
import { ApiError, isUniqueViolation, notFound } from "../../lib/errors";
import { compileFilter, parseFilter, parseOrderBy, type FilterField, type FilterTerm } from "../../lib/filter";
import { memberIdOf } from "../../lib/actor";
import { isId } from "../../lib/ids";
import { decodePageToken, finishPage, keysetAfter, orderBy, type KeyValue } from "../../lib/pagination";
import type { Permission } from "../../lib/permissions";
import { memberValues } from "../organizations/organizations.service";
import { assertWithinCaller, permissionsOfRole, permissionsOfRoles, requireAssignableRole } from "../roles/roles.service";
import { removeServiceAccount } from "../service-accounts/service-accounts.service";
import { keepsAnotherAdmin } from "./last-admin";
import { serializeMember, type MemberRow } from "./members.schemas";
import { commit, noChange } from "../../audit/record";

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

type ListQuery = { page_size: number; page_token?: string; filter?: string; order_by?: string };

/** What a members list asks for, parsed once: the statement and the page's keys come from it. */
function planList(orgId: string, q: ListQuery) {
  const terms = q.filter ? parseFilter(q.filter) : [];
  const searches = terms.filter((t) => t.field === "search");
  if (searches.length > 1) throw new ApiError("invalid_filter", "`search` may appear once.");
  // Checked here, not in the search path alone: with an order_by an empty prefix would match everyone.
  if (searches[0] && searches[0].value === "") throw new ApiError("invalid_filter", "`search` needs at least one character.");
  const where = compileFilter(terms, MEMBER_FILTER);
  const fingerprint = `members|${orgId}|${q.filter ?? ""}|${q.order_by ?? ""}`;
  if (searches[0] && !q.order_by?.trim()) {
    return {
      kind: "search" as const,
      fingerprint,
      term: searches[0],
      rest: compileFilter(
        terms.filter((t) => t.field !== "search"),
        MEMBER_FILTER,
      ),
    };
  }
  const { keys, names } = parseOrderBy(q.order_by, SORTABLE, [{ field: "joined_at", desc: true }]);
  // member_id makes the order total; it follows the last key's direction so that a single-key
  // order stays one row-value range on the index.
  keys.push({ column: members.memberId, desc: names[names.length - 1]!.desc });
  return { kind: "ordered" as const, fingerprint, where, keys, names };
}

/**
 * One page of members. Every path reads the members table alone through one of its
 * (organization_id, …, member_id) indexes, so a page costs about page_size rows whatever the
 * organization's size (a join would double the rows read).
 */
export async function memberListQuery(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const plan = planList(org.id, q);
  if (plan.kind === "search") return searchQuery(db, org, config, plan, q);
  const conds: (SQL | undefined)[] = [org.inOrg(members.organizationId), plan.where];
  if (q.page_token) conds.push(keysetAfter(plan.keys, await decodePageToken(config.hmacSecret, plan.fingerprint, q.page_token, plan.keys.length)));
  const page = db
    .select({ ...memberColumns, k: sql<string | number>`0`.as("k") })
    .from(members)
    .where(and(...conds))
    .orderBy(...orderBy(plan.keys))
    .limit(q.page_size + 1);
  return { page };
}

type ListedMember = MemberRow & { nameKey: string; k: string | number };

export async function memberListPage(ctx: OrgCtx, q: ListQuery, rows: ListedMember[]) {
  const plan = planList(ctx.org.id, q);
  const keyOf = (r: ListedMember): KeyValue[] =>
    plan.kind === "search"
      ? [r.k, r.memberId]
      : [...plan.names.map((n) => (n.field === "display_name" ? r.nameKey : n.field === "email" ? r.email : r.joinedAt)), r.memberId];
  const page = await finishPage(ctx.config.hmacSecret, plan.fingerprint, rows, q.page_size, keyOf);
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
async function searchQuery(db: ReadDb, org: OrgScope, config: Config, plan: { fingerprint: string; term: FilterTerm; rest: SQL | undefined }, q: ListQuery) {
  const p = String(plan.term.value).toLowerCase();
  const end = prefixEnd(p);
  // Every page token's k starts with p (it is signed with this very filter), so `> (k, id)`
  // implies `>= p`.
  let nameFrom: SQL = sql`${members.nameKey} >= ${p}`;
  let emailFrom: SQL = sql`${members.email} >= ${p}`;
  if (q.page_token) {
    const [k, id] = await decodePageToken(config.hmacSecret, plan.fingerprint, q.page_token, 2);
    nameFrom = sql`(${members.nameKey}, ${members.memberId}) > (${k}, ${id})`;
    emailFrom = sql`(${members.email}, ${members.memberId}) > (${k}, ${id})`;
  }
  const extra = plan.rest ?? sql`1 = 1`;
  const matching = (key: typeof members.nameKey | typeof members.email) => db.select({ ...memberColumns, k: sql<string>`${key}`.as("k") }).from(members);
  // In a record: an async function returning a statement itself would run it (a statement is a promise).
  const page = matching(members.nameKey)
    .where(and(org.inOrg(members.organizationId), nameFrom, sql`${members.nameKey} < ${end}`, extra))
    .unionAll(
      matching(members.email).where(
        and(
          org.inOrg(members.organizationId),
          emailFrom,
          sql`${members.email} < ${end}`,
          sql`not (${members.nameKey} >= ${p} and ${members.nameKey} < ${end})`,
          extra,
        ),
      ),
    )
    .orderBy(sql`k`, sql`member_id`)
    .limit(q.page_size + 1);
  return { page };
}

const isMemberId = (id: string) => isId("user", id) || isId("serviceAccount", id);

/** One member, with its role's stored permissions (null for built-in roles); nothing to read for a malformed id. */
export function memberQuery(db: ReadDb, org: OrgScope, memberId: string) {
  if (!isMemberId(memberId)) return undefined;
  return db
    .select({
      ...memberColumns,
      rolePermissions: sql<
        string | null
      >`(select r.permissions from roles r where r.organization_id = ${outer(members.organizationId)} and r.name = ${outer(members.role)})`,
      scimConfigId: members.scimConfigId,
    })
    .from(members)
    .where(and(eq(members.organizationId, org.id), eq(members.memberId, org.guard(memberId))))
    .limit(1);
}

type FoundMember = MemberRow & { nameKey: string; rolePermissions: string | null; scimConfigId: string | null };

/**
 * A membership an identity provider's SCIM directory manages is changed there, so the directory
 * stays the source of truth: /v1 neither changes its role nor removes it (leaving included).
 * Deprovisioning or deleting the SCIM user, or deleting the config, releases it.
 */
function assertNotScimManaged(target: FoundMember) {
  if (target.scimConfigId !== null) {
    throw new ApiError(
      "conflict",
      `This membership is managed by the SCIM directory of identity provider config ${target.scimConfigId}: change or remove it in the identity provider (deactivating or deleting the SCIM user, or deleting the config, releases it).`,
      { extra: { identity_provider_config_id: target.scimConfigId } },
    );
  }
}

function found(rows: FoundMember[] | undefined): FoundMember {
  const row = rows?.[0];
  if (!row) throw notFound("member");
  return row;
}

export const getMember = (rows: FoundMember[] | undefined) => serializeMember(found(rows));

/** The account an email belongs to, read only for an authorized caller (whether an address has an account is itself private). */
export function userByEmailQuery(db: ReadDb, org: OrgScope, email: string) {
  return db
    .select({
      id: users.id,
      displayName: users.displayName,
      email: users.email,
      emailVerifiedAt: users.emailVerifiedAt,
      isMember: sql<number>`exists (select 1 from members m where m.organization_id = ${org.id} and m.member_id = ${outer(users.id)})`,
    })
    .from(users)
    .where(eq(users.email, org.guard(email)))
    .limit(1);
}

/**
 * Adds an existing user directly. Only an address proven by a link the server emailed counts:
 * an unverified account may be someone else's squat on the address, and adding it would hand
 * them the organization. The seat check and the insert are one conditional statement, and the
 * counters move in the same batch only if the row went in. An existing member is let through
 * the seat check so that the primary key answers `already_member`, even in a full organization
 * (the batch then fails as a whole, counters included).
 */
export async function addMember(
  ctx: OrgCtx,
  input: { email: string; role: string },
  loaded: {
    user: { id: string; displayName: string; email: string; emailVerifiedAt: number | null; isMember: number }[];
    roles: { name: string; permissions: string[] }[];
  },
) {
  const orgId = ctx.org.id;
  requireAssignableRole(ctx, input.role, permissionsOfRoles([input.role], loaded.roles));
  const [user] = loaded.user;
  if (!user) {
    throw new ApiError("user_not_found", "No account has this email; send an invitation instead (POST …/invitations).", { extra: { hint: "invite" } });
  }
  // Already a member says more than "unverified"; the insert below still settles a race.
  if (user.isMember) throw new ApiError("already_member", "This user is already a member.");
  if (user.emailVerifiedAt === null) {
    throw new ApiError(
      "email_not_verified",
      "This account has not verified its email address, so it may not belong to the person you mean; send an invitation instead (POST …/invitations).",
      {
        extra: { hint: "invite" },
      },
    );
  }
  const now = Date.now();
  const v = memberValues(orgId, user, input.role, now);
  const db = ctx.db;
  const member = serializeMember({ memberId: user.id, type: "user", role: input.role, displayName: user.displayName, email: user.email, joinedAt: now });
  let inserted: { changes: number };
  try {
    const [ins] = await commit(
      ctx,
      [
        db.insert(members).select(
          sql`select ${v.organizationId}, ${v.memberId}, ${v.type}, ${v.role}, ${v.displayName}, ${v.nameKey}, ${v.email}, ${v.joinedAt}, null
            where ${seatFreeSql(orgId, now, ctx.config.freePlanSeats)}
               or exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${v.memberId})`,
        ),
        db
          .update(organizations)
          .set({ memberCount: sql`${organizations.memberCount} + 1`, userMemberCount: sql`${organizations.userMemberCount} + 1` })
          .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
      ],
      {
        // After the counter update, which itself ran only if the member went in.
        onlyIf: sql`changes() = 1`,
        entries: [{ action: "member.added", target: { type: "user", id: user.id }, changes: ["role"], event: { type: "member.added", data: member } }],
      },
    );
    inserted = (ins as D1Result).meta;
  } catch (err) {
    if (isUniqueViolation(err, "members.organization_id, members.member_id")) throw new ApiError("already_member", "This user is already a member.");
    throw err;
  }
  if (inserted.changes !== 1) throw seatLimitReached(await seatsInForce(ctx, orgId));
  return member;
}

/**
 * The caller's power must cover both what the member has and what they are given. A service
 * account is also a credential: changing or removing one through the members routes needs what
 * the service-account routes need.
 */
function assertMayManage(ctx: OrgCtx, target: FoundMember, newRole?: { name: string; known: Map<string, Set<Permission>> }) {
  if (target.type === "service_account" && !ctx.org.permissions.has("service_accounts:write")) {
    throw new ApiError("forbidden", "Changing or removing a service account needs the `service_accounts:write` permission.", {
      extra: { required_permission: "service_accounts:write" },
    });
  }
  assertWithinCaller(ctx.org.permissions, permissionsOfRole(target.role, target.rolePermissions), `manage a member whose role is \`${target.role}\``);
  if (newRole) requireAssignableRole(ctx, newRole.name, newRole.known);
}

const lastAdmin = () => new ApiError("last_admin", "This is the organization's last human admin; make someone else admin first.");

export async function changeMemberRole(
  ctx: OrgCtx,
  role: string,
  loaded: { member: FoundMember[] | undefined; roles: { name: string; permissions: string[] }[] },
) {
  const target = found(loaded.member);
  assertMayManage(ctx, target, { name: role, known: permissionsOfRoles([role], loaded.roles) });
  assertNotScimManaged(target);
  if (target.role === role) {
    noChange(ctx);
    return serializeMember(target);
  }
  const orgId = ctx.org.id;
  const [rows] = await commit(
    ctx,
    [
      ctx.db
        .update(members)
        .set({ role })
        .where(
          and(
            eq(members.organizationId, orgId),
            eq(members.memberId, target.memberId),
            role === "admin" ? undefined : keepsAnotherAdmin(orgId, target.memberId),
          ),
        )
        .returning(memberColumns),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "member.role_changed",
          target: { type: target.type, id: target.memberId },
          changes: ["role"],
          event: { type: "member.role_changed", data: { ...serializeMember({ ...target, role }), previous_role: target.role } },
        },
      ],
    },
  );
  const updated = rows[0];
  if (!updated) throw lastAdmin();
  return serializeMember(updated);
}

/** Removal (or leaving, when it is oneself). The last human admin stays; access ends on the next request. */
export async function removeMember(ctx: OrgCtx, rows: FoundMember[] | undefined) {
  const target = found(rows);
  const orgId = ctx.org.id;
  const self = target.memberId === memberIdOf(ctx.actor);
  if (!self) assertMayManage(ctx, target);
  assertNotScimManaged(target);
  if (target.type === "service_account") return removeServiceAccount(ctx, target.memberId);
  const db = ctx.db;
  const [deleted] = await commit(
    ctx,
    [
      db
        .delete(members)
        .where(and(eq(members.organizationId, orgId), eq(members.memberId, target.memberId), keepsAnotherAdmin(orgId, target.memberId)))
        .returning({ id: members.memberId }),
      db
        .update(organizations)
        .set({
          memberCount: sql`${organizations.memberCount} - 1`,
          userMemberCount: sql`${organizations.userMemberCount} - 1`,
          // An owner who leaves is no longer shown as the owner.
          ownerId: sql`case when ${organizations.ownerId} = ${target.memberId} then null else ${organizations.ownerId} end`,
        })
        .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
      // Project grants go with the membership: someone who rejoins starts with none.
      db
        .delete(projectMembers)
        .where(
          and(
            eq(projectMembers.organizationId, orgId),
            eq(projectMembers.memberId, target.memberId),
            sql`not exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${target.memberId})`,
          ),
        ),
    ],
    {
      // After the counter update, which ran only if the row went (grants' deletion counts rows).
      after: 1,
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "member.removed",
          target: { type: "user", id: target.memberId },
          event: { type: "member.removed", data: { ...serializeMember(target), left: self } },
        },
      ],
    },
  );
  if (deleted.length === 0) throw lastAdmin();
}
