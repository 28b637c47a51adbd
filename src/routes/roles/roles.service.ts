import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { Ctx } from "../../env";
import { invitations, members, roles } from "../../db/schema";
import { ApiError, isUniqueViolation, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { BUILT_IN_ROLES, isBuiltInRole, rolePermissions, type Permission } from "../../lib/permissions";
import { iso } from "../../lib/time";
import { authorizedRead, authorizeWithoutRead } from "../../middleware/authorize";

export interface RoleJson {
  id: string;
  name: string;
  description: string | null;
  permissions: string[];
  built_in: boolean;
  created_at: string | null;
  updated_at: string | null;
}

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

/**
 * The permissions of the named roles in one read (built-ins from code). Unknown names are
 * absent from the map.
 */
export async function permissionsOfRoles(c: Ctx, orgId: string, names: string[]): Promise<Map<string, Set<Permission>>> {
  const out = new Map<string, Set<Permission>>();
  const custom = [...new Set(names.filter((n) => !isBuiltInRole(n)))];
  for (const n of names) if (isBuiltInRole(n)) out.set(n, rolePermissions(n, null));
  if (custom.length > 0) {
    const rows = await c.var.db
      .select({ name: roles.name, permissions: roles.permissions })
      .from(roles)
      .where(and(eq(roles.organizationId, orgId), inArray(roles.name, custom)));
    for (const r of rows) out.set(r.name, rolePermissions(r.name, r.permissions));
  }
  return out;
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

/** Resolves a role name for assignment: 400 when the organization has no such role. */
export async function requireAssignableRole(c: Ctx, orgId: string, name: string, callerPermissions: Set<Permission>): Promise<Set<Permission>> {
  const perms = (await permissionsOfRoles(c, orgId, [name])).get(name);
  if (!perms) {
    throw new ApiError("validation_failed", `The organization has no role \`${name}\`.`, { errors: [{ path: "role", message: "no such role in this organization" }] });
  }
  assertWithinCaller(callerPermissions, perms, `assign the role \`${name}\``);
  return perms;
}

/** Built-in roles first (ids are their names), then custom roles by id. */
export async function listRoles(c: Ctx, orgId: string, q: { page_size: number; page_token?: string }) {
  const fingerprint = `roles|${orgId}`;
  let after: string | undefined;
  if (q.page_token) after = String((await decodePageToken(c.var.config.hmacSecret, fingerprint, q.page_token, 1))[0]);
  const inBuiltIns = after === undefined || isBuiltInRole(after);
  // After a custom role's cursor every built-in has been served already.
  const builtIns = after === undefined ? BUILT_IN_LIST : inBuiltIns ? BUILT_IN_LIST.slice(BUILT_IN_LIST.findIndex((r) => r.id === after) + 1) : [];
  const items: RoleJson[] = builtIns.slice(0, q.page_size + 1);
  if (items.length <= q.page_size) {
    const rows = await authorizedRead(
      c,
      c.var.db
        .select()
        .from(roles)
        .where(and(eq(roles.organizationId, orgId), inBuiltIns ? undefined : gt(roles.id, after!)))
        .orderBy(asc(roles.id))
        .limit(q.page_size + 1 - items.length),
    );
    items.push(...rows.map(serializeRole));
  } else await authorizeWithoutRead(c);
  const page = await finishPage(c.var.config.hmacSecret, fingerprint, items, q.page_size, (r) => [r.id]);
  return { items: page.rows, next_page_token: page.nextPageToken };
}

async function customRole(c: Ctx, orgId: string, roleId: string): Promise<RoleRow> {
  if (!isId("role", roleId)) throw notFound("role");
  const [row] = await authorizedRead(c, c.var.db.select().from(roles).where(and(eq(roles.id, roleId), eq(roles.organizationId, orgId))).limit(1));
  if (!row) throw notFound("role");
  return row;
}

export async function getRole(c: Ctx, orgId: string, roleId: string): Promise<RoleJson> {
  const builtIn = BUILT_IN_LIST.find((r) => r.id === roleId);
  if (!builtIn) return serializeRole(await customRole(c, orgId, roleId));
  await authorizeWithoutRead(c);
  return builtIn;
}

const builtInImmutable = () => new ApiError("conflict", "Built-in roles cannot be changed or deleted.");
const nameTaken = (name: string) => new ApiError("conflict", `A role named \`${name}\` already exists (built-in names are reserved).`);

export async function createRole(c: Ctx, orgId: string, callerPermissions: Set<Permission>, input: { name: string; description?: string; permissions: Permission[] }) {
  if (isBuiltInRole(input.name)) throw nameTaken(input.name);
  assertWithinCaller(callerPermissions, new Set(input.permissions), "create this role");
  const now = Date.now();
  const row: RoleRow = { id: newId("role"), organizationId: orgId, name: input.name, description: input.description ?? null, permissions: [...new Set(input.permissions)], createdAt: now, updatedAt: now };
  try {
    await c.var.db.insert(roles).values(row);
  } catch (err) {
    if (isUniqueViolation(err, "roles.organization_id, roles.name")) throw nameTaken(input.name);
    throw err;
  }
  return serializeRole(row);
}

export async function updateRole(c: Ctx, orgId: string, roleId: string, input: { name?: string; description?: string | null; permissions?: Permission[] }) {
  if (isBuiltInRole(roleId)) throw builtInImmutable();
  const current = await customRole(c, orgId, roleId);
  const callerPermissions = c.var.access.permissions;
  // Editing a role changes what its holders can do: the caller must hold both old and new powers.
  assertWithinCaller(callerPermissions, rolePermissions(current.name, current.permissions), "change this role");
  if (input.permissions) assertWithinCaller(callerPermissions, new Set(input.permissions), "grant these permissions");
  if (input.name !== undefined && input.name !== current.name && isBuiltInRole(input.name)) throw nameTaken(input.name);
  const now = Date.now();
  const patch: Partial<RoleRow> = { updatedAt: now };
  if (input.name !== undefined) patch.name = input.name;
  if (input.description !== undefined) patch.description = input.description;
  if (input.permissions !== undefined) patch.permissions = [...new Set(input.permissions)];
  const db = c.var.db;
  try {
    // A rename carries the members holding the role along, in the same transaction.
    if (patch.name !== undefined && patch.name !== current.name) {
      await db.batch([
        db.update(roles).set(patch).where(eq(roles.id, current.id)),
        db.update(members).set({ role: patch.name }).where(and(eq(members.organizationId, orgId), eq(members.role, current.name))),
        // Pending invitations name the role too; accepting one later must land in the renamed role.
        db
          .update(invitations)
          .set({ role: patch.name })
          .where(and(eq(invitations.organizationId, orgId), eq(invitations.status, "pending"), eq(invitations.role, current.name))),
      ]);
    } else {
      await db.update(roles).set(patch).where(eq(roles.id, current.id));
    }
  } catch (err) {
    if (isUniqueViolation(err, "roles.organization_id, roles.name")) throw nameTaken(input.name!);
    throw err;
  }
  return serializeRole({ ...current, ...patch });
}

/** A role still assigned to anyone (or promised by a pending invitation) is not deleted: one conditional statement, no read-then-write. */
export async function deleteRole(c: Ctx, orgId: string, roleId: string) {
  if (isBuiltInRole(roleId)) throw builtInImmutable();
  const current = await customRole(c, orgId, roleId);
  const callerPermissions = c.var.access.permissions;
  assertWithinCaller(callerPermissions, rolePermissions(current.name, current.permissions), "delete this role");
  const deleted = await c.var.db
    .delete(roles)
    .where(
      and(
        eq(roles.id, current.id),
        sql`not exists (select 1 from ${members} where ${members.organizationId} = ${orgId} and ${members.role} = ${current.name})`,
        sql`not exists (select 1 from ${invitations} where ${invitations.organizationId} = ${orgId} and ${invitations.status} = 'pending' and ${invitations.role} = ${current.name})`,
      ),
    )
    .returning({ id: roles.id });
  if (deleted.length === 0) throw new ApiError("role_in_use", `The role \`${current.name}\` is assigned to members or pending invitations; give them another role first.`);
}
