import { and, asc, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { Ctx } from "../../env";
import { members, organizations, serviceAccountKeys, serviceAccounts } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { ApiError, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { SCOPES, type OrgAccess, type Permission, type Scope } from "../../lib/permissions";
import { authorizedRead } from "../../middleware/authorize";
import { keepsAnotherAdmin } from "../members/last-admin";
import { assertWithinCaller, permissionsOfRoles, requireAssignableRole } from "../roles/roles.service";
import { serializeServiceAccount, type ServiceAccountView } from "./service-accounts.schemas";

const KEY_PREFIX_LENGTH = 8;

/** The account with its role (from its membership) and current key prefix, in one read. */
function selectView(c: Ctx) {
  return c.var.db
    .select({
      id: serviceAccounts.id,
      organizationId: serviceAccounts.organizationId,
      name: serviceAccounts.name,
      scopes: serviceAccounts.scopes,
      createdBy: serviceAccounts.createdBy,
      lastUsedAt: serviceAccounts.lastUsedAt,
      createdAt: serviceAccounts.createdAt,
      updatedAt: serviceAccounts.updatedAt,
      role: members.role,
      keyPrefix: sql<string | null>`(select k.key_prefix from service_account_keys k where k.service_account_id = ${serviceAccounts.id} and k.expires_at is null order by k.created_at desc limit 1)`,
    })
    .from(serviceAccounts)
    .innerJoin(members, and(eq(members.organizationId, serviceAccounts.organizationId), eq(members.memberId, serviceAccounts.id)));
}

async function newKey(serviceAccountId: string, now: number) {
  const key = newSecret("sak");
  return {
    key,
    row: { id: newId("serviceAccountKey"), serviceAccountId, keyHash: await sha256Hex(key), keyPrefix: key.slice(0, KEY_PREFIX_LENGTH), createdAt: now, expiresAt: null },
  };
}

export async function createServiceAccount(c: Ctx, access: OrgAccess, input: { name: string; role: string; scopes?: Scope[] }) {
  const orgId = access.organization.id;
  await requireAssignableRole(c, orgId, input.role, access.permissions);
  const now = Date.now();
  const id = newId("serviceAccount");
  const scopes = input.scopes ?? [...SCOPES];
  const createdBy = memberIdOf(c.var.actor!);
  const { key, row } = await newKey(id, now);
  const db = c.var.db;
  // Account, key and membership land together; service accounts take no seat.
  await db.batch([
    db.insert(serviceAccounts).values({ id, organizationId: orgId, name: input.name, scopes, createdBy, createdAt: now, updatedAt: now }),
    db.insert(serviceAccountKeys).values(row),
    db.insert(members).values({ organizationId: orgId, memberId: id, type: "service_account", role: input.role, displayName: input.name, nameKey: input.name.toLowerCase(), email: "", joinedAt: now }),
    db.update(organizations).set({ memberCount: sql`${organizations.memberCount} + 1` }).where(eq(organizations.id, orgId)),
  ]);
  const view: ServiceAccountView = { id, organizationId: orgId, name: input.name, role: input.role, scopes, keyPrefix: row.keyPrefix, createdBy, lastUsedAt: null, createdAt: now, updatedAt: now };
  return { service_account: serializeServiceAccount(view), key };
}

export async function listServiceAccounts(c: Ctx, orgId: string, q: { page_size: number; page_token?: string }) {
  const fingerprint = `service-accounts|${orgId}`;
  let after: string | undefined;
  if (q.page_token) after = String((await decodePageToken(c.var.config.hmacSecret, fingerprint, q.page_token, 1))[0]);
  const rows = await authorizedRead(
    c,
    selectView(c)
      .where(and(eq(serviceAccounts.organizationId, orgId), after ? gt(serviceAccounts.id, after) : undefined))
      .orderBy(asc(serviceAccounts.id))
      .limit(q.page_size + 1),
  );
  const page = await finishPage(c.var.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeServiceAccount), next_page_token: page.nextPageToken };
}

async function findView(c: Ctx, orgId: string, id: string): Promise<ServiceAccountView> {
  if (!isId("serviceAccount", id)) throw notFound("service account");
  const [row] = await authorizedRead(
    c,
    selectView(c)
      .where(and(eq(serviceAccounts.id, id), eq(serviceAccounts.organizationId, orgId)))
      .limit(1),
  );
  if (!row) throw notFound("service account");
  return row;
}

export async function getServiceAccount(c: Ctx, orgId: string, id: string) {
  return serializeServiceAccount(await findView(c, orgId, id));
}

/**
 * Rotating an account's key hands its powers to the caller, and deleting it is managing a member:
 * both need every permission of the account's role, like assigning that role would. The account
 * itself may always rotate its own key or remove itself: that grants it nothing new.
 */
async function assertMayManage(c: Ctx, access: OrgAccess, id: string, role: string, what: string) {
  if (memberIdOf(c.var.actor!) === id) return;
  const granted = (await permissionsOfRoles(c, access.organization.id, [role])).get(role) ?? new Set<Permission>();
  assertWithinCaller(access.permissions, granted, what);
}

/**
 * Deletes the account, its keys (cascade) and its membership together; its key fails on the very
 * next request. An admin service account that is the organization's last admin stays (409).
 */
export async function deleteServiceAccount(c: Ctx, orgId: string, id: string): Promise<void> {
  if (!isId("serviceAccount", id)) throw notFound("service account");
  const [member] = await authorizedRead(
    c,
    c.var.db
      .select({ role: members.role })
      .from(members)
      .where(and(eq(members.organizationId, orgId), eq(members.memberId, id), eq(members.type, "service_account")))
      .limit(1),
  );
  if (!member) throw notFound("service account");
  await removeServiceAccount(c, orgId, id, member.role);
}

/** The deletion itself, for a caller that has already read the account's role. */
export async function removeServiceAccount(c: Ctx, orgId: string, id: string, role: string): Promise<void> {
  const db = c.var.db;
  await assertMayManage(c, c.var.access, id, role, `delete a service account whose role is \`${role}\``);
  const [removed, , deleted] = await db.batch([
    db
      .delete(members)
      .where(
        and(
          eq(members.organizationId, orgId),
          eq(members.memberId, id),
          keepsAnotherAdmin(orgId, id),
        ),
      )
      .returning({ id: members.memberId }),
    db.update(organizations).set({ memberCount: sql`${organizations.memberCount} - 1` }).where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
    db
      .delete(serviceAccounts)
      .where(and(eq(serviceAccounts.id, id), eq(serviceAccounts.organizationId, orgId), sql`not exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${id})`))
      .returning({ id: serviceAccounts.id }),
  ]);
  if (deleted.length === 0) {
    if (removed.length === 0 && (await db.select({ id: serviceAccounts.id }).from(serviceAccounts).where(and(eq(serviceAccounts.id, id), eq(serviceAccounts.organizationId, orgId)))).length > 0) {
      throw new ApiError("last_admin", "This service account is the organization's last admin; make someone else admin first.");
    }
    throw notFound("service account");
  }
}

/**
 * A new key, shown once. Without a grace period the old keys are deleted in the same batch;
 * with one they expire at its end (never later than any earlier expiry).
 */
export async function rotateServiceAccountKey(c: Ctx, orgId: string, id: string, graceSeconds: number | undefined) {
  const view = await findView(c, orgId, id);
  await assertMayManage(c, c.var.access, id, view.role, `rotate the key of a service account whose role is \`${view.role}\``);
  const now = Date.now();
  const { key, row } = await newKey(id, now);
  const db = c.var.db;
  const graceEnd = now + (graceSeconds ?? 0) * 1000;
  await db.batch([
    graceSeconds
      ? db
          .update(serviceAccountKeys)
          .set({ expiresAt: graceEnd })
          .where(and(eq(serviceAccountKeys.serviceAccountId, id), or(isNull(serviceAccountKeys.expiresAt), gt(serviceAccountKeys.expiresAt, graceEnd))))
      : db.delete(serviceAccountKeys).where(eq(serviceAccountKeys.serviceAccountId, id)),
    // Keys whose grace has run out are removed on the way.
    db.delete(serviceAccountKeys).where(and(eq(serviceAccountKeys.serviceAccountId, id), sql`${serviceAccountKeys.expiresAt} <= ${now}`)),
    db.insert(serviceAccountKeys).values(row),
    db.update(serviceAccounts).set({ updatedAt: now }).where(eq(serviceAccounts.id, id)),
  ]);
  return { service_account: serializeServiceAccount({ ...view, keyPrefix: row.keyPrefix, updatedAt: now }), key };
}

