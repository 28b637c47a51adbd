import { and, asc, eq, gt, isNull, or, sql } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { members, organizations, projectMembers, serviceAccountKeys, serviceAccounts } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { newSecret, sha256Hex } from "../../lib/crypto";
import { notFound } from "../../lib/errors";
import { isId, newId, SECRET_PREFIXES } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { SCOPES, type Scope } from "../../lib/permissions";
import { assertWithinCaller, permissionsOfRole, permissionsOfRoles, requireAssignableRole } from "../roles/roles.service";
import { serializeServiceAccount, type ServiceAccountView } from "./service-accounts.schemas";
import { commit } from "../../audit/record";

const KEY_PREFIX_LENGTH = 8;

/** The account with its role (from its membership), that role's stored permissions and the current key prefix, in one read. */
function selectView(db: ReadDb) {
  return db
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
      rolePermissions: sql<
        string | null
      >`(select r.permissions from roles r where r.organization_id = ${outer(serviceAccounts.organizationId)} and r.name = ${outer(members.role)})`,
      keyPrefix: sql<
        string | null
      >`(select k.key_prefix from service_account_keys k where k.service_account_id = ${outer(serviceAccounts.id)} and k.expires_at is null order by k.created_at desc limit 1)`,
    })
    .from(serviceAccounts)
    .innerJoin(members, and(eq(members.organizationId, serviceAccounts.organizationId), eq(members.memberId, serviceAccounts.id)));
}

type FoundAccount = ServiceAccountView & { rolePermissions: string | null };

async function newKey(serviceAccountId: string, now: number) {
  const key = newSecret(SECRET_PREFIXES.serviceAccountKey);
  return {
    key,
    row: {
      id: newId("serviceAccountKey"),
      serviceAccountId,
      keyHash: await sha256Hex(key),
      keyPrefix: key.slice(0, KEY_PREFIX_LENGTH),
      createdAt: now,
      expiresAt: null,
    },
  };
}

export async function createServiceAccount(
  ctx: OrgCtx,
  input: { name: string; role: string; scopes?: Scope[] },
  customRoles: { name: string; permissions: string[] }[],
) {
  const orgId = ctx.org.id;
  requireAssignableRole(ctx, input.role, permissionsOfRoles([input.role], customRoles));
  const now = Date.now();
  const id = newId("serviceAccount");
  const scopes = input.scopes ?? [...SCOPES];
  const createdBy = memberIdOf(ctx.actor);
  const { key, row } = await newKey(id, now);
  const db = ctx.db;
  const view: ServiceAccountView = {
    id,
    organizationId: orgId,
    name: input.name,
    role: input.role,
    scopes,
    keyPrefix: row.keyPrefix,
    createdBy,
    lastUsedAt: null,
    createdAt: now,
    updatedAt: now,
  };
  const account = serializeServiceAccount(view);
  // Account, key and membership land together; service accounts take no seat.
  await commit(
    ctx,
    [
      db.insert(serviceAccounts).values({ id, organizationId: orgId, name: input.name, scopes, createdBy, createdAt: now, updatedAt: now }),
      db.insert(serviceAccountKeys).values(row),
      db.insert(members).values({
        organizationId: orgId,
        memberId: id,
        type: "service_account",
        role: input.role,
        displayName: input.name,
        nameKey: input.name.toLowerCase(),
        email: "",
        joinedAt: now,
      }),
      db
        .update(organizations)
        .set({ memberCount: sql`${organizations.memberCount} + 1` })
        .where(eq(organizations.id, orgId)),
    ],
    {
      entries: [
        {
          action: "service_account.created",
          target: { type: "service_account", id },
          changes: ["name", "role", "scopes"],
          event: { type: "service_account.created", data: account },
        },
      ],
    },
  );
  return { service_account: account, key };
}

const listFingerprint = (orgId: string) => `service-accounts|${orgId}`;

export async function serviceAccountListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const page = selectView(db)
    .where(and(org.inOrg(serviceAccounts.organizationId), after ? gt(serviceAccounts.id, after) : undefined))
    .orderBy(asc(serviceAccounts.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function serviceAccountPage(ctx: OrgCtx, q: { page_size: number }, rows: FoundAccount[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeServiceAccount), next_page_token: page.nextPageToken };
}

/** One account of the organization; nothing to read for a malformed id. */
export function serviceAccountQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("serviceAccount", id)) return undefined;
  return selectView(db)
    .where(and(eq(serviceAccounts.id, org.guard(id)), eq(serviceAccounts.organizationId, org.id)))
    .limit(1);
}

function found(rows: FoundAccount[] | undefined): FoundAccount {
  const row = rows?.[0];
  if (!row) throw notFound("service account");
  return row;
}

export const getServiceAccountFrom = (rows: FoundAccount[] | undefined) => serializeServiceAccount(found(rows));

/** The account a key belongs to, for `GET /v1/me` with that key (the caller is the account itself). */
export async function getServiceAccount(ctx: ServiceCtx, orgId: string, id: string) {
  const [row] = await selectView(ctx.db)
    .where(and(eq(serviceAccounts.id, id), eq(serviceAccounts.organizationId, orgId)))
    .limit(1);
  return serializeServiceAccount(found(row ? [row] : []));
}

/**
 * Rotating an account's key hands its powers to the caller, and deleting it is managing a member:
 * both need every permission of the account's role, like assigning that role would. The account
 * itself may always rotate its own key or remove itself: that grants it nothing new.
 */
function assertMayManage(ctx: OrgCtx, account: FoundAccount, what: string) {
  if (memberIdOf(ctx.actor) === account.id) return;
  assertWithinCaller(ctx.org.permissions, permissionsOfRole(account.role, account.rolePermissions), what);
}

/** Deletes the account, its keys (cascade) and its membership together; its key fails on the very next request. */
export async function deleteServiceAccount(ctx: OrgCtx, rows: FoundAccount[] | undefined): Promise<void> {
  const account = found(rows);
  assertMayManage(ctx, account, `delete a service account whose role is \`${account.role}\``);
  await removeServiceAccount(ctx, account.id, serializeServiceAccount(account));
}

/**
 * The deletion itself, for a caller already allowed to make it. A service account never counts
 * as the organization's last admin (see members/last-admin.ts), so nothing blocks it. It records
 * `service_account.deleted` whichever route removed it (`DELETE …/members/{id}` too); `data` is
 * the account as the API showed it, or only its id and organization when the caller did not read
 * it.
 */
export async function removeServiceAccount(ctx: OrgCtx, id: string, data?: ReturnType<typeof serializeServiceAccount>): Promise<void> {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const [removed] = await commit(
    ctx,
    [
      db
        .delete(members)
        .where(and(eq(members.organizationId, orgId), eq(members.memberId, id)))
        .returning({ id: members.memberId }),
      db
        .update(organizations)
        .set({ memberCount: sql`${organizations.memberCount} - 1` })
        .where(and(eq(organizations.id, orgId), sql`changes() = 1`)),
      db.delete(serviceAccounts).where(and(eq(serviceAccounts.id, id), eq(serviceAccounts.organizationId, orgId))),
      // Its project grants go with it (member ids are not foreign keys of project_members).
      db
        .delete(projectMembers)
        .where(
          and(
            eq(projectMembers.organizationId, orgId),
            eq(projectMembers.memberId, id),
            sql`not exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${id})`,
          ),
        ),
    ],
    {
      // After the counter update, which ran only if the membership went.
      after: 1,
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "service_account.deleted",
          target: { type: "service_account", id },
          event: { type: "service_account.deleted", data: data ?? { id, organization_id: orgId } },
        },
      ],
    },
  );
  // Deleted by a concurrent request: gone either way, but this request did not do it.
  if (removed.length === 0) throw notFound("service account");
}

/**
 * A new key, shown once. Without a grace period the old keys are deleted in the same batch;
 * with one they expire at its end (never later than any earlier expiry).
 */
export async function rotateServiceAccountKey(ctx: OrgCtx, rows: FoundAccount[] | undefined, graceSeconds: number | undefined) {
  const view = found(rows);
  const id = view.id;
  assertMayManage(ctx, view, `rotate the key of a service account whose role is \`${view.role}\``);
  const now = Date.now();
  const { key, row } = await newKey(id, now);
  const db = ctx.db;
  const graceEnd = now + (graceSeconds ?? 0) * 1000;
  const account = serializeServiceAccount({ ...view, keyPrefix: row.keyPrefix, updatedAt: now });
  // The new key's row needs the account (foreign key): a concurrent deletion fails the batch, entry included.
  await commit(
    ctx,
    [
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
    ],
    {
      entries: [
        {
          action: "service_account.key_rotated",
          target: { type: "service_account", id },
          changes: ["key"],
          event: { type: "service_account.key_rotated", data: account },
        },
      ],
    },
  );
  return { service_account: account, key };
}
