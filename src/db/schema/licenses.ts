import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { json, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

export const LICENSE_PLANS = ["free", "team", "business", "enterprise"] as const;

/**
 * Licenses are platform-owned: they outlive the organization they serve (deleting it frees the
 * license). One organization per license and one license per organization, both by the unique
 * index on organization_id.
 */
export const licenses = sqliteTable(
  "licenses",
  {
    id: text("id").primaryKey(),
    plan: text("plan", { enum: LICENSE_PLANS }).notNull(),
    seats: integer("seats").notNull(),
    features: json<string[]>("features").notNull(),
    expiresAt: ms("expires_at"),
    keyHash: text("key_hash").notNull(),
    keyPrefix: text("key_prefix").notNull(),
    organizationId: text("organization_id").references(() => organizations.id, { onDelete: "set null" }),
    revokedAt: ms("revoked_at"),
    createdBy: text("created_by"),
    ...timestamps,
  },
  (t) => [
    uniqueIndex("licenses_key_hash_idx").on(t.keyHash),
    uniqueIndex("licenses_org_idx").on(t.organizationId),
    // The platform list filtered by plan, in id order, reads one index range.
    index("licenses_plan_id_idx").on(t.plan, t.id),
  ],
);

/** A self-hosted deployment registered (and heartbeating) with a license key; one row per name. */
export const deployments = sqliteTable(
  "deployments",
  {
    id: text("id").primaryKey(),
    licenseId: text("license_id")
      .notNull()
      .references(() => licenses.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    region: text("region").notNull(),
    version: text("version").notNull(),
    lastSeenAt: ms("last_seen_at").notNull(),
    ...timestamps,
  },
  (t) => [uniqueIndex("deployments_license_name_idx").on(t.licenseId, t.name), index("deployments_license_id_idx").on(t.licenseId, t.id)],
);
