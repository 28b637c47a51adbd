import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { bool, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

/** A project (the reference APIs' workspace or test suite). */
export const projects = sqliteTable(
  "projects",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    // Lower-cased copy of name: the key of case-insensitive ordering and prefix filters.
    nameKey: text("name_key").notNull(),
    description: text("description"),
    private: bool("private").notNull().default(false),
    createdBy: text("created_by"),
    ...timestamps,
  },
  (t) => [
    index("projects_org_id_idx").on(t.organizationId, t.id),
    index("projects_org_name_idx").on(t.organizationId, t.nameKey, t.id),
    index("projects_org_updated_idx").on(t.organizationId, t.updatedAt, t.id),
    // Public projects in each order: the visible page of a caller without access to private ones.
    index("projects_org_private_idx").on(t.organizationId, t.private, t.id),
    index("projects_org_private_name_idx").on(t.organizationId, t.private, t.nameKey, t.id),
    index("projects_org_private_updated_idx").on(t.organizationId, t.private, t.updatedAt, t.id),
  ],
);

/**
 * Who may see a private project besides those holding `projects:admin`. `member_id` is a `usr_`
 * or `sa_` id (as in members); rows go when the member leaves, in the same batch.
 */
export const projectMembers = sqliteTable(
  "project_members",
  {
    projectId: text("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    memberId: text("member_id").notNull(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    grantedBy: text("granted_by"),
    grantedAt: ms("granted_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.memberId] }), index("project_members_member_idx").on(t.organizationId, t.memberId, t.projectId)],
);

export const tags = sqliteTable(
  "tags",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    // Lower-cased copy of name: tags list in case-insensitive order and match `name:"p"` by prefix.
    nameKey: text("name_key").notNull(),
    // Maintained in the same batch as every tagging change, so counts never scan project_tags.
    projectCount: integer("project_count").notNull().default(0),
    ...timestamps,
  },
  (t) => [uniqueIndex("tags_org_name_idx").on(t.organizationId, t.name), index("tags_org_name_key_idx").on(t.organizationId, t.nameKey, t.name)],
);

export const projectTags = sqliteTable(
  "project_tags",
  {
    projectId: text("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    tagId: text("tag_id")
      .notNull()
      .references(() => tags.id, { onDelete: "cascade" }),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    // A copy of projects.private, kept in the same batch as every change of it: a tag's public
    // projects are one index range, however many private projects carry the same tag.
    private: bool("private").notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.tagId] }), index("project_tags_tag_idx").on(t.tagId, t.private, t.projectId)],
);
