import { and, eq, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Db } from "../../db/client";
import { members, organizations } from "../../db/schema";
import type { Config } from "../../env";
import { seatFreeSql } from "../licenses/seats";
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
