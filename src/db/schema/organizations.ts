import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { bool, json, ms, timestamps } from "./columns";
import { users } from "./identity";

export const organizations = sqliteTable("organizations", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  slug: text("slug").notNull().unique(),
  description: text("description"),
  logoDataUri: text("logo_data_uri"),
  active: bool("active").notNull().default(true),
  ownerId: text("owner_id").references(() => users.id, { onDelete: "set null" }),
  // Counters maintained in the same batch as every membership or invitation change, so
  // neither a read nor a seat check ever counts rows: count(*) reads the whole organization.
  memberCount: integer("member_count").notNull().default(0),
  /** Human members: with pending invitations, what the seat limit counts. */
  userMemberCount: integer("user_member_count").notNull().default(0),
  pendingInvitationCount: integer("pending_invitation_count").notNull().default(0),
  supportTeamAccess: bool("support_team_access").notNull().default(false),
  ssoAdminBypass: bool("sso_admin_bypass").notNull().default(true),
  ...timestamps,
});

/**
 * One row per member of an organization: a user or a service account (`member_id` is a `usr_`
 * or `sa_` id, hence no foreign key to users; deleting a user deletes its rows in the same batch).
 * Name and email are copied here so that listing, ordering and prefix search of one organization's
 * members run on this table's indexes alone.
 */
export const members = sqliteTable(
  "members",
  {
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    memberId: text("member_id").notNull(),
    type: text("type", { enum: ["user", "service_account"] }).notNull(),
    role: text("role").notNull(),
    displayName: text("display_name").notNull(),
    // Lower-cased copy of display_name: the key of case-insensitive ordering and prefix search.
    nameKey: text("name_key").notNull(),
    // '' for service accounts: keyset comparisons must never meet NULL.
    email: text("email").notNull().default(""),
    joinedAt: ms("joined_at").notNull(),
    // Insert-selects into members (add member, accept, JIT) list a value for every column in
    // this order: a new column needs its value there too.
    // The identity provider config whose SCIM directory manages this membership: while set,
    // /v1 may not remove the member or change their role (409), so the IdP stays the source of truth.
    scimConfigId: text("scim_config_id"),
  },
  (t) => [
    primaryKey({ columns: [t.organizationId, t.memberId] }),
    index("members_member_idx").on(t.memberId, t.organizationId),
    index("members_org_joined_idx").on(t.organizationId, t.joinedAt, t.memberId),
    index("members_org_name_idx").on(t.organizationId, t.nameKey, t.memberId),
    index("members_org_email_idx").on(t.organizationId, t.email, t.memberId),
    // Filtered lists in the default order read only matching rows.
    index("members_org_role_idx").on(t.organizationId, t.role, t.joinedAt, t.memberId),
    index("members_org_type_idx").on(t.organizationId, t.type, t.joinedAt, t.memberId),
  ],
);

/** Custom roles; built-in roles live in code (lib/permissions.ts). */
export const roles = sqliteTable(
  "roles",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
    permissions: json<string[]>("permissions").notNull(),
    ...timestamps,
  },
  (t) => [uniqueIndex("roles_org_name_idx").on(t.organizationId, t.name), index("roles_org_id_idx").on(t.organizationId, t.id)],
);

export const organizationSettings = sqliteTable("organization_settings", {
  organizationId: text("organization_id")
    .primaryKey()
    .references(() => organizations.id, { onDelete: "cascade" }),
  settings: json<Record<string, unknown>>("settings").notNull().default(sql`'{}'`),
  updatedAt: ms("updated_at").notNull(),
});

/** Secret settings, AES-GCM encrypted; read back only as `{set, updated_at}`. */
export const organizationSecrets = sqliteTable(
  "organization_secrets",
  {
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    ciphertext: text("ciphertext").notNull(),
    updatedAt: ms("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.name] })],
);
