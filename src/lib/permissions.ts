/**
 * The authorization model. Every check in the code is by permission, never by role name:
 * a member's role (built-in or custom) grants permissions, and a PAT's or service account
 * key's scopes narrow them further.
 */

export const PERMISSIONS = [
  "organization:read",
  "organization:write",
  "organization:delete",
  "members:read",
  "members:write",
  "invitations:read",
  "invitations:write",
  "roles:read",
  "roles:write",
  "service_accounts:read",
  "service_accounts:write",
  "sso:read",
  "sso:write",
  "billing:read",
  "billing:write",
  "integrations:read",
  "integrations:write",
  "projects:read",
  "projects:write",
  /** See every private project and manage tags organization-wide. */
  "projects:admin",
  "proxies:read",
  "proxies:write",
  "webhooks:read",
  "webhooks:write",
  "audit_log:read",
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export const SCOPES = [
  "organization:read",
  "organization:write",
  "organization_member:read",
  "organization_member:write",
  "organization_integration:read",
  "organization_integration:write",
] as const;

export type Scope = (typeof SCOPES)[number];

/** What each scope lets a token do. A `:write` scope includes its `:read`. */
const READ_SCOPE_GRANTS: Record<string, Permission[]> = {
  "organization:read": ["organization:read", "roles:read", "sso:read", "billing:read", "projects:read", "proxies:read", "webhooks:read", "audit_log:read"],
  "organization_member:read": ["members:read", "invitations:read", "service_accounts:read"],
  "organization_integration:read": ["integrations:read"],
};
const WRITE_SCOPE_GRANTS: Record<string, Permission[]> = {
  "organization:write": [
    "organization:write",
    "organization:delete",
    "roles:write",
    "sso:write",
    "billing:write",
    "projects:write",
    "projects:admin",
    "proxies:write",
    "webhooks:write",
  ],
  "organization_member:write": ["members:write", "invitations:write", "service_accounts:write"],
  "organization_integration:write": ["integrations:write"],
};

export const SCOPE_GRANTS: Record<Scope, readonly Permission[]> = Object.fromEntries(
  SCOPES.map((scope) => {
    const [area, level] = scope.split(":") as [string, "read" | "write"];
    const reads = READ_SCOPE_GRANTS[`${area}:read`] ?? [];
    const grants = level === "write" ? [...reads, ...(WRITE_SCOPE_GRANTS[scope] ?? [])] : reads;
    return [scope, grants];
  }),
) as unknown as Record<Scope, readonly Permission[]>;

/** The narrowest scope that grants `permission`: what the OpenAPI document lists per route. */
export function scopeFor(permission: Permission): Scope {
  for (const scope of SCOPES) {
    if (scope.endsWith(":read") && SCOPE_GRANTS[scope].includes(permission)) return scope;
  }
  for (const scope of SCOPES) {
    if (SCOPE_GRANTS[scope].includes(permission)) return scope;
  }
  throw new Error(`no scope grants ${permission}`);
}

export function scopesAllow(scopes: readonly string[], permission: Permission): boolean {
  return scopes.some((s) => (SCOPE_GRANTS as Record<string, readonly Permission[]>)[s]?.includes(permission));
}

const USER_PERMISSIONS: Permission[] = ["organization:read", "members:read", "roles:read", "projects:read", "projects:write"];

export const BUILT_IN_ROLES = {
  admin: { description: "Everything in the organization.", permissions: [...PERMISSIONS] as Permission[] },
  user: { description: "Day-to-day work: read the organization, its members, projects and tags; manage projects.", permissions: USER_PERMISSIONS },
  service_account: { description: "Like user, for non-human identities.", permissions: USER_PERMISSIONS },
} as const satisfies Record<string, { description: string; permissions: Permission[] }>;

export type BuiltInRole = keyof typeof BUILT_IN_ROLES;

export const isBuiltInRole = (name: string): name is BuiltInRole => Object.hasOwn(BUILT_IN_ROLES, name);

/** Permissions of a role: built-in from code, custom from its stored list (unknown entries dropped). */
export function rolePermissions(role: string, customPermissions: readonly string[] | null): Set<Permission> {
  if (isBuiltInRole(role)) return new Set(BUILT_IN_ROLES[role].permissions);
  const known = new Set<string>(PERMISSIONS);
  return new Set((customPermissions ?? []).filter((p): p is Permission => known.has(p)));
}

/** Built-in roles whose permissions include `permission`: the SQL guard lists them inline. */
export function builtInRolesGranting(permission: Permission): BuiltInRole[] {
  return (Object.keys(BUILT_IN_ROLES) as BuiltInRole[]).filter((r) => (BUILT_IN_ROLES[r].permissions as readonly Permission[]).includes(permission));
}

/** Scopes that let a token use `permission`. */
export function scopesGranting(permission: Permission): Scope[] {
  return SCOPES.filter((s) => SCOPE_GRANTS[s].includes(permission));
}

/** The caller's standing in one organization, as the authorization read found it. */
export interface OrgAccess {
  id: string;
  active: boolean;
  role: string;
  memberType: "user" | "service_account";
  /** The caller's display name in this organization. */
  memberName: string;
  /** Effective permissions: the role's, narrowed by the token's scopes when there is a token. */
  permissions: Set<Permission>;
}
