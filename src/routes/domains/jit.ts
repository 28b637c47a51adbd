import { and, eq, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Db } from "../../db/client";
import { members, organizations } from "../../db/schema";
import type { Config } from "../../env";
import type { AuditEntry } from "../../audit/record";
import { seatFreeSql } from "../licenses/seats";
import { serializeMember } from "../members/members.schemas";
import { memberValues } from "../organizations/organizations.service";

/** The domain part of an address, lower-cased: what domains are matched on. */
export const emailDomain = (email: string) => email.slice(email.lastIndexOf("@") + 1).toLowerCase();

/**
 * The organization that verified this address's domain with JIT provisioning on (at most one: a
 * domain is verified by one organization), and, when `orgId` is given, only if it is that one.
 */
function jitOrgSql(email: string, orgId?: string): SQL {
  const only = orgId === undefined ? sql`` : sql` and d.organization_id = ${orgId}`;
  return sql`(select d.organization_id from domains d where d.domain = ${emailDomain(email)} and d.verified_at is not null and d.jit_provisioning_enabled = 1${only})`;
}

/**
 * The organization JIT would join `email` to, as a column of the read that finds the address (an
 * SQL expression, e.g. a column of the outer row), so the batch that proves the address knows
 * the organization its audit entry belongs to without another round trip. Stored addresses are
 * lower-case; the domain is what follows the last `@` (`rtrim` strips everything after it).
 */
export function jitOrganizationOf(email: SQL): SQL<string | null> {
  const domain = sql`substr(${email}, length(rtrim(${email}, replace(${email}, '@', ''))) + 1)`;
  return sql<
    string | null
  >`(select d.organization_id from domains d where d.domain = ${domain} and d.verified_at is not null and d.jit_provisioning_enabled = 1)`;
}

/**
 * The `member.added` entry of a JIT membership, for the batch that runs jitStatements with an
 * organization; condition it on `changes() = 1` right after those statements (the counter update
 * changes a row only if the member went in).
 */
export function jitMemberAdded(user: { id: string; displayName: string; email: string }, now: number): AuditEntry {
  const member = serializeMember({ memberId: user.id, type: "user", role: "user", displayName: user.displayName, email: user.email, joinedAt: now });
  return { action: "member.added", target: { type: "user", id: user.id }, changes: ["role"], event: { type: "member.added", data: member } };
}

/**
 * Statements that make the user a member with role `user` of that organization, to append to
 * the batch of the change that proves the address (following the emailed verification link, or
 * an SSO sign-in): callers append them only once the address is proven. Nothing happens for a
 * domain without JIT, an inactive organization, a full one (the seat limit is part of the
 * insert) or an existing member; the counters move only if the row went in.
 */
export function jitStatements(
  db: Db,
  config: Config,
  user: { id: string; displayName: string; email: string },
  now: number,
  orgId?: string,
  /** A further condition of the insert, e.g. `changes() = 1` of the statement just before it (the one proving the address). */
  when?: SQL,
): BatchItem<"sqlite">[] {
  const org = jitOrgSql(user.email, orgId);
  const also = when === undefined ? sql`` : sql` and ${when}`;
  const m = memberValues("", user, "user", now);
  return [
    db
      .insert(members)
      .select(
        sql`select ${org}, ${m.memberId}, 'user', 'user', ${m.displayName}, ${m.nameKey}, ${m.email}, ${m.joinedAt}, null
            where ${org} is not null
              and (select o.active from organizations o where o.id = ${org}) = 1
              and ${seatFreeSql(org, now, config.freePlanSeats)}${also}`,
      )
      .onConflictDoNothing(),
    db
      .update(organizations)
      .set({ memberCount: sql`${organizations.memberCount} + 1`, userMemberCount: sql`${organizations.userMemberCount} + 1` })
      .where(and(eq(organizations.id, org), sql`changes() = 1`)),
  ];
}
