import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { bool, json, ms, timestamps } from "./columns";
import { users } from "./identity";
import { organizations } from "./organizations";
import { identityProviderConfigs } from "./sso";

/**
 * A user as one identity provider config's directory knows them. Scoped to the config: a second
 * config of the same organization sees none of these. Linked to the account with that email
 * (created if none); what SCIM says about the person lives here and on the membership, and is
 * written to the account itself only for an address in a verified domain of the organization.
 */
export const scimUsers = sqliteTable(
  "scim_users",
  {
    id: text("id").primaryKey(),
    configId: text("config_id")
      .notNull()
      .references(() => identityProviderConfigs.id, { onDelete: "cascade" }),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    // userName as sent, and lower-cased for its case-insensitive uniqueness and filters.
    userName: text("user_name").notNull(),
    userNameKey: text("user_name_key").notNull(),
    externalId: text("external_id"),
    displayName: text("display_name"),
    active: bool("active").notNull().default(true),
    // The rest of the resource as the directory sent it (name, emails, title, enterprise
    // extension…), minus what is kept in columns; returned as stored.
    attributes: json<Record<string, unknown>>("attributes").notNull(),
    // meta.version: bumped by every change, compared with If-Match.
    version: integer("version").notNull().default(1),
    ...timestamps,
  },
  (t) => [
    index("scim_users_config_id_idx").on(t.configId, t.id),
    uniqueIndex("scim_users_config_name_idx").on(t.configId, t.userNameKey),
    uniqueIndex("scim_users_config_user_idx").on(t.configId, t.userId),
    index("scim_users_config_external_idx").on(t.configId, t.externalId),
    index("scim_users_user_idx").on(t.userId),
  ],
);

/** A group of one config's directory; `role`, when set, is the organization role its members get. */
export const scimGroups = sqliteTable(
  "scim_groups",
  {
    id: text("id").primaryKey(),
    configId: text("config_id")
      .notNull()
      .references(() => identityProviderConfigs.id, { onDelete: "cascade" }),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    displayName: text("display_name").notNull(),
    displayNameKey: text("display_name_key").notNull(),
    externalId: text("external_id"),
    role: text("role"),
    // Maintained with every membership change, so a group read never counts its members.
    memberCount: integer("member_count").notNull().default(0),
    version: integer("version").notNull().default(1),
    ...timestamps,
  },
  (t) => [
    index("scim_groups_config_id_idx").on(t.configId, t.id),
    uniqueIndex("scim_groups_config_name_idx").on(t.configId, t.displayNameKey),
    index("scim_groups_config_external_idx").on(t.configId, t.externalId),
    // Renaming or deleting a custom role finds the groups that map to it.
    index("scim_groups_org_role_idx").on(t.organizationId, t.role),
  ],
);

export const scimGroupMembers = sqliteTable(
  "scim_group_members",
  {
    groupId: text("group_id")
      .notNull()
      .references(() => scimGroups.id, { onDelete: "cascade" }),
    scimUserId: text("scim_user_id")
      .notNull()
      .references(() => scimUsers.id, { onDelete: "cascade" }),
    addedAt: ms("added_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.scimUserId] }), index("scim_group_members_user_idx").on(t.scimUserId, t.groupId)],
);

/** One row per SCIM request: what an admin sees at `…/scim-logs`. No bodies, no secrets. */
export const scimLogs = sqliteTable(
  "scim_logs",
  {
    id: text("id").primaryKey(),
    configId: text("config_id")
      .notNull()
      .references(() => identityProviderConfigs.id, { onDelete: "cascade" }),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    method: text("method").notNull(),
    path: text("path").notNull(),
    status: integer("status").notNull(),
    summary: text("summary").notNull(),
    createdAt: ms("created_at").notNull(),
  },
  (t) => [
    index("scim_logs_config_id_idx").on(t.configId, t.id),
    index("scim_logs_config_status_idx").on(t.configId, t.status, t.id),
    index("scim_logs_created_idx").on(t.createdAt),
  ],
);
