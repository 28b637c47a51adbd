import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { invitations, members, roles, scimGroups } from "../../db/schema";
import { ApiError, isUniqueViolation, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { BUILT_IN_ROLES, isBuiltInRole, rolePermissions, type Permission } from "../../lib/permissions";
import { iso } from "../../lib/time";
import { commit, noChange, type AuditSpec } from "../../audit/record";

export type RoleJson = {
  id: string;
  name: string;
  description: string | null;
  permissions: string[];
  built_in: boolean;
  created_at: string | null;
  updated_at: string | null;
};

const BUILT_IN_LIST: RoleJson[] = Object.entries(BUILT_IN_ROLES).map(([name, r]) => ({
  id: name,
  name,
  description: r.description,
  permissions: [...r.permissions],
  built_in: true,
  created_at: null,
  updated_at: null,
}));

type RoleRow = typeof roles.$inferSelect;

export const serializeRole = (r: RoleRow): RoleJson => ({
  id: r.id,
  name: r.name,
  description: r.description,
  permissions: r.permissions,
  built_in: false,
  created_at: iso(r.createdAt),
  updated_at: iso(r.updatedAt),
});

/** The custom roles among `names`, for a route's load (built-in roles live in code). */
export function customRolesQuery(db: ReadDb, org: OrgScope, names: string[]) {
  const custom = [...new Set(names.filter((n) => !isBuiltInRole(n)))];
  return db
    .select({ name: roles.name, permissions: roles.permissions })
    .from(roles)
    .where(and(org.inOrg(roles.organizationId), inArray(roles.name, custom.length ? custom : [""])));
}

/**
 * The permissions of the named roles: built-ins from code, custom ones from rows read by
 * `customRolesQuery`. Unknown names are absent from the map.
 */
export function permissionsOfRoles(names: string[], customRows: { name: string; permissions: string[] }[]): Map<string, Set<Permission>> {
  const out = new Map<string, Set<Permission>>();
  for (const n of names) if (isBuiltInRole(n)) out.set(n, rolePermissions(n, null));
  for (const r of customRows) out.set(r.name, rolePermissions(r.name, r.permissions));
  return out;
}

/** A role's permissions when the role's stored permissions were read with the member (null for built-ins). */
export function permissionsOfRole(role: string, stored: string | null): Set<Permission> {
  let custom: string[] = [];
  if (stored) {
    try {
      custom = JSON.parse(stored) as string[];
    } catch {
      custom = [];
    }
  }
  return rolePermissions(role, custom);
}

/**
 * No privilege escalation: a caller may only hand out (or take away) a role whose permissions
 * are all among the caller's own effective permissions.
 */
export function assertWithinCaller(callerPermissions: Set<Permission>, granted: Set<Permission>, what: string) {
  const missing = [...granted].filter((p) => !callerPermissions.has(p));
  if (missing.length > 0) {
    throw new ApiError("forbidden", `You cannot ${what}: it carries permissions you do not hold (${missing.join(", ")}).`);
  }
}

/** A role for assignment: 400 when the organization has no such role, 403 beyond the caller's own power. */
export function requireAssignableRole(ctx: OrgCtx, name: string, known: Map<string, Set<Permission>>): Set<Permission> {
  const perms = known.get(name);
  if (!perms) {
    throw new ApiError("validation_failed", `The organization has no role \`${name}\`.`, {
      errors: [{ path: "role", message: "no such role in this organization" }],
    });
  }
  assertWithinCaller(ctx.org.permissions, perms, `assign the role \`${name}\``);
  return perms;
}

const rolesFingerprint = (orgId: string) => `roles|${orgId}`;

async function rolesCursor(config: Config, orgId: string, pageToken: string | undefined): Promise<string | undefined> {
  return pageToken ? String((await decodePageToken(config.hmacSecret, rolesFingerprint(orgId), pageToken, 1))[0]) : undefined;
}

function builtInsAfter(after: string | undefined): RoleJson[] {
  if (after === undefined) return BUILT_IN_LIST;
  // After a custom role's cursor every built-in has been served already.
  return isBuiltInRole(after) ? BUILT_IN_LIST.slice(BUILT_IN_LIST.findIndex((r) => r.id === after) + 1) : [];
}

/** Built-in roles first (ids are their names), then custom roles by id: the custom part of a page, if the built-ins leave room. */
export async function rolesPageQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = await rolesCursor(config, org.id, q.page_token);
  const builtIns = builtInsAfter(after);
  if (builtIns.length > q.page_size) return undefined;
  const inBuiltIns = after === undefined || isBuiltInRole(after);
  const custom = db
    .select()
    .from(roles)
    .where(and(org.inOrg(roles.organizationId), inBuiltIns ? undefined : gt(roles.id, after!)))
    .orderBy(asc(roles.id))
    .limit(q.page_size + 1 - builtIns.length);
  return { custom };
}

export async function rolesPage(ctx: OrgCtx, q: { page_size: number; page_token?: string }, customRows: RoleRow[] | undefined) {
  const builtIns = builtInsAfter(await rolesCursor(ctx.config, ctx.org.id, q.page_token));
  const items: RoleJson[] = [...builtIns.slice(0, q.page_size + 1), ...(customRows ?? []).map(serializeRole)];
  const page = await finishPage(ctx.config.hmacSecret, rolesFingerprint(ctx.org.id), items, q.page_size, (r) => [r.id]);
  return { items: page.rows, next_page_token: page.nextPageToken };
}

/** A custom role by id, or nothing to read for a built-in name or a malformed id. */
export function customRoleQuery(db: ReadDb, org: OrgScope, roleId: string) {
  if (!isId("role", roleId)) return undefined;
  return db
    .select()
    .from(roles)
    .where(and(eq(roles.id, org.guard(roleId)), eq(roles.organizationId, org.id)))
    .limit(1);
}

export function getRole(roleId: string, rows: RoleRow[] | undefined): RoleJson {
  const builtIn = BUILT_IN_LIST.find((r) => r.id === roleId);
  if (builtIn) return builtIn;
  if (!rows?.[0]) throw notFound("role");
  return serializeRole(rows[0]);
}

const builtInImmutable = () => new ApiError("conflict", "Built-in roles cannot be changed or deleted.");
const nameTaken = (name: string) => new ApiError("conflict", `A role named \`${name}\` already exists (built-in names are reserved).`);

export async function createRole(ctx: OrgCtx, input: { name: string; description?: string; permissions: Permission[] }) {
  const orgId = ctx.org.id;
  if (isBuiltInRole(input.name)) throw nameTaken(input.name);
  assertWithinCaller(ctx.org.permissions, new Set(input.permissions), "create this role");
  const now = Date.now();
  const row: RoleRow = {
    id: newId("role"),
    organizationId: orgId,
    name: input.name,
    description: input.description ?? null,
    permissions: [...new Set(input.permissions)],
    createdAt: now,
    updatedAt: now,
  };
  const role = serializeRole(row);
  try {
    await commit(ctx, [ctx.db.insert(roles).values(row)], {
      entries: [
        {
          action: "role.created",
          target: { type: "role", id: row.id },
          changes: ["name", "description", "permissions"],
          event: { type: "role.created", data: role },
        },
      ],
    });
  } catch (err) {
    if (isUniqueViolation(err, "roles.organization_id, roles.name")) throw nameTaken(input.name);
    throw err;
  }
  return role;
}

export async function updateRole(
  ctx: OrgCtx,
  roleId: string,
  rows: RoleRow[] | undefined,
  input: { name?: string; description?: string | null; permissions?: Permission[] },
) {
  if (isBuiltInRole(roleId)) throw builtInImmutable();
  const current = rows?.[0];
  if (!current) throw notFound("role");
  const orgId = ctx.org.id;
  const callerPermissions = ctx.org.permissions;
  // Editing a role changes what its holders can do: the caller must hold both old and new powers.
  assertWithinCaller(callerPermissions, rolePermissions(current.name, current.permissions), "change this role");
  if (input.permissions) assertWithinCaller(callerPermissions, new Set(input.permissions), "grant these permissions");
  if (input.name !== undefined && input.name !== current.name && isBuiltInRole(input.name)) throw nameTaken(input.name);
  const now = Date.now();
  const patch: Partial<RoleRow> = {};
  if (input.name !== undefined && input.name !== current.name) patch.name = input.name;
  if (input.description !== undefined && input.description !== current.description) patch.description = input.description;
  if (input.permissions !== undefined) {
    const next = [...new Set(input.permissions)];
    if (next.length !== current.permissions.length || next.some((p) => !current.permissions.includes(p))) patch.permissions = next;
  }
  const changes = Object.keys(patch);
  if (changes.length === 0) {
    noChange(ctx);
    return serializeRole(current);
  }
  patch.updatedAt = now;
  const role = serializeRole({ ...current, ...patch });
  const db = ctx.db;
  const update = db.update(roles).set(patch).where(eq(roles.id, current.id)).returning({ id: roles.id });
  // Right after the role's own update, which finds nothing if the role was deleted meanwhile.
  const audit: AuditSpec = {
    after: 0,
    onlyIf: sql`changes() = 1`,
    entries: [{ action: "role.updated", target: { type: "role", id: current.id }, changes, event: { type: "role.updated", data: role } }],
  };
  let updated: { id: string }[];
  try {
    // A rename carries the members holding the role along, in the same transaction.
    if (patch.name !== undefined) {
      [updated] = await commit(
        ctx,
        [
          update,
          db
            .update(members)
            .set({ role: patch.name })
            .where(and(eq(members.organizationId, orgId), eq(members.role, current.name))),
          // Pending invitations name the role too; accepting one later must land in the renamed role.
          db
            .update(invitations)
            .set({ role: patch.name })
            .where(and(eq(invitations.organizationId, orgId), eq(invitations.status, "pending"), eq(invitations.role, current.name))),
          // SCIM groups mapped to the role keep their mapping under its new name.
          db
            .update(scimGroups)
            .set({ role: patch.name })
            .where(and(eq(scimGroups.organizationId, orgId), eq(scimGroups.role, current.name))),
        ],
        audit,
      );
    } else {
      [updated] = await commit(ctx, [update], audit);
    }
  } catch (err) {
    if (isUniqueViolation(err, "roles.organization_id, roles.name")) throw nameTaken(input.name!);
    throw err;
  }
  if (updated.length === 0) throw notFound("role");
  return role;
}

/** A role still assigned to anyone (or promised by a pending invitation) is not deleted: one conditional statement, no read-then-write. */
export async function deleteRole(ctx: OrgCtx, roleId: string, rows: RoleRow[] | undefined) {
  if (isBuiltInRole(roleId)) throw builtInImmutable();
  const current = rows?.[0];
  if (!current) throw notFound("role");
  const orgId = ctx.org.id;
  assertWithinCaller(ctx.org.permissions, rolePermissions(current.name, current.permissions), "delete this role");
  const [deleted] = await commit(
    ctx,
    [
      ctx.db
        .delete(roles)
        .where(
          and(
            eq(roles.id, current.id),
            sql`not exists (select 1 from ${members} where ${members.organizationId} = ${orgId} and ${members.role} = ${current.name})`,
            sql`not exists (select 1 from ${invitations} where ${invitations.organizationId} = ${orgId} and ${invitations.status} = 'pending' and ${invitations.role} = ${current.name})`,
            // A SCIM group mapped to the role would hand its members a role that no longer exists.
            sql`not exists (select 1 from ${scimGroups} where ${scimGroups.organizationId} = ${orgId} and ${scimGroups.role} = ${current.name})`,
          ),
        )
        .returning({ id: roles.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "role.deleted", target: { type: "role", id: current.id }, event: { type: "role.deleted", data: serializeRole(current) } }],
    },
  );
  if (deleted.length === 0)
    throw new ApiError(
      "role_in_use",
      `The role \`${current.name}\` is assigned to members or pending invitations, or mapped by a SCIM group; give them another role first.`,
    );
}
