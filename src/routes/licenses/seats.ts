import { sql, type SQL } from "drizzle-orm";
import type { ServiceCtx } from "../../env";
import { ApiError } from "../../lib/errors";

/**
 * The seat limit in force for an organization, as SQL: the seats of its license while that
 * license is neither revoked nor expired, else the free plan's. It is evaluated inside the
 * conditional statement that takes the seat (add member, invite, accept), so a license change
 * or a concurrent add can never slip between a check and the insert: D1 runs each batch as one
 * transaction, and the counter it compares against moves in that same batch.
 */
export function seatLimitSql(orgId: string | SQL, now: number, freeSeats: number): SQL {
  return sql`coalesce((select l.seats from licenses l where l.organization_id = ${orgId} and l.revoked_at is null and (l.expires_at is null or l.expires_at > ${now})), ${freeSeats})`;
}

/** Seats taken: human members plus pending invitations (service accounts take none). */
export const seatsUsedSql = (orgId: string | SQL) => sql`(select user_member_count + pending_invitation_count from organizations where id = ${orgId})`;

/** "One more seat fits": members + pending invitations stay within the limit after the insert. */
export const seatFreeSql = (orgId: string | SQL, now: number, freeSeats: number) => sql`${seatsUsedSql(orgId)} < ${seatLimitSql(orgId, now, freeSeats)}`;

/** How many more seats fit (zero or less when none): a batch takes at most this many, in row order. */
export const seatsLeftSql = (orgId: string | SQL, now: number, freeSeats: number) => sql`(${seatLimitSql(orgId, now, freeSeats)} - ${seatsUsedSql(orgId)})`;

/** The limit as a number, for the refusal's message: read only once a seat was refused. */
export async function seatsInForce(ctx: Pick<ServiceCtx, "db" | "config">, orgId: string): Promise<number> {
  const [row] = await ctx.db.all<{ seats: number }>(sql`select ${seatLimitSql(orgId, Date.now(), ctx.config.freePlanSeats)} as seats`);
  return row?.seats ?? ctx.config.freePlanSeats;
}

export const seatLimitReached = (seats: number) =>
  new ApiError("seat_limit_reached", `The plan's ${seats} seats are taken by members and pending invitations; remove someone or upgrade.`, {
    extra: { seats },
  });
