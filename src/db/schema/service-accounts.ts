import { index, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { json, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

/** A non-human member of exactly one organization; its membership row carries its role. */
export const serviceAccounts = sqliteTable(
  "service_accounts",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    scopes: json<string[]>("scopes").notNull(),
    createdBy: text("created_by"),
    // Written at most once a minute per account, after the response.
    lastUsedAt: ms("last_used_at"),
    ...timestamps,
  },
  (t) => [index("service_accounts_org_idx").on(t.organizationId, t.id)],
);

export const serviceAccountKeys = sqliteTable(
  "service_account_keys",
  {
    id: text("id").primaryKey(),
    serviceAccountId: text("service_account_id")
      .notNull()
      .references(() => serviceAccounts.id, { onDelete: "cascade" }),
    keyHash: text("key_hash").notNull(),
    keyPrefix: text("key_prefix").notNull(),
    createdAt: ms("created_at").notNull(),
    // Null while current; set to the end of the grace period when the key is rotated out.
    expiresAt: ms("expires_at"),
  },
  (t) => [uniqueIndex("service_account_keys_hash_idx").on(t.keyHash), index("service_account_keys_sa_idx").on(t.serviceAccountId)],
);
