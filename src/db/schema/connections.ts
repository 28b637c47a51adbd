import { sql } from "drizzle-orm";
import { index, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { bool, json, ms, timestamps } from "./columns";
import { organizations } from "./organizations";
import { projects } from "./projects";

/** Network proxies; the password is AES-GCM sealed and never read back. */
export const proxies = sqliteTable(
  "proxies",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    url: text("url").notNull(),
    username: text("username"),
    passwordCiphertext: text("password_ciphertext"),
    // At most one default per organization, enforced by the partial unique index; deleting the
    // default proxy clears the default with it.
    isDefault: bool("is_default").notNull().default(false),
    ...timestamps,
  },
  (t) => [index("proxies_org_id_idx").on(t.organizationId, t.id), uniqueIndex("proxies_org_default_idx").on(t.organizationId).where(sql`is_default = 1`)],
);

/** An installed integration; `secrets_ciphertext` is one sealed JSON object of its secrets. */
export const integrations = sqliteTable(
  "integrations",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    displayName: text("display_name").notNull(),
    config: json<Record<string, unknown>>("config").notNull(),
    secretsCiphertext: text("secrets_ciphertext"),
    // Names of the sealed secrets and when each was set: what responses show instead of values.
    secretNames: json<Record<string, number>>("secret_names").notNull(),
    createdBy: text("created_by"),
    ...timestamps,
  },
  // The kind index serves the list's `kind = "…"` filter as one index range per page.
  (t) => [index("integrations_org_id_idx").on(t.organizationId, t.id), index("integrations_org_kind_idx").on(t.organizationId, t.kind, t.id)],
);

/** External environment → project of the same organization; a deleted project drops out by cascade. */
export const integrationEnvironments = sqliteTable(
  "integration_environments",
  {
    integrationId: text("integration_id")
      .notNull()
      .references(() => integrations.id, { onDelete: "cascade" }),
    environment: text("environment").notNull(),
    projectId: text("project_id")
      .notNull()
      .references(() => projects.id, { onDelete: "cascade" }),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    createdAt: ms("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.integrationId, t.environment] }), index("integration_environments_project_idx").on(t.projectId)],
);
