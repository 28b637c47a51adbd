import { sql } from "drizzle-orm";
import { members } from "../../db/schema";

/**
 * True for a member row that is not an admin, or is one of at least two human admins. It goes
 * inside the very statement that would demote or remove the member, so two concurrent changes
 * cannot both pass: D1 runs writes one at a time, and the second one sees the first one's result.
 *
 * Only people count: a service account holding the admin role cannot sign in, recover an
 * account or answer for the organization, so an organization must keep one human admin. A
 * service account itself can always be demoted or removed.
 */
export const keepsAnotherAdmin = (orgId: string, memberId: string) =>
  sql`(${members.role} <> 'admin' or ${members.type} <> 'user' or exists (select 1 from members a where a.organization_id = ${orgId} and a.role = 'admin' and a.type = 'user' and a.member_id <> ${memberId}))`;
