import { LICENSE_PLANS, type deployments, type licenses } from "../../db/schema";
import { refuseRepeats, z } from "../../lib/openapi";
import { orderByParam, PageQuery } from "../../lib/pagination";
import { singleLine } from "../../lib/text";
import { iso, isoOrNull } from "../../lib/time";

export const MAX_LICENSE_SEATS = 1_000_000;
export const MAX_FEATURES = 50;
const FEATURE = /^[a-z][a-z0-9_-]{0,63}$/;

export const LicenseCreateInput = z
  .object({
    plan: z.enum(LICENSE_PLANS),
    seats: z
      .number()
      .int()
      .min(1)
      .max(MAX_LICENSE_SEATS)
      .openapi({ description: "Human members plus pending invitations the organization may hold (1–1,000,000)." }),
    features: refuseRepeats(
      z
        .array(z.string().regex(FEATURE, "must be a lower-case slug: a letter, then letters, digits, `_` or `-` (at most 64)"))
        .max(MAX_FEATURES, `must list at most ${MAX_FEATURES} features`),
      "must not repeat a feature",
    )
      .default([])
      .openapi({ description: `Feature slugs (e.g. \`sso\`, \`audit_log\`), unique, at most ${MAX_FEATURES}.`, example: ["sso", "audit_log"] }),
    expires_at: z.iso
      .datetime({ offset: true })
      .nullable()
      .default(null)
      .openapi({ description: "RFC 3339; must be in the future. Null or omitted: the license never expires.", example: "2030-01-01T00:00:00Z" }),
    organization_id: z
      .string()
      .max(100)
      .optional()
      .openapi({ description: "Assign the license at creation (as `PUT …/license` would); the organization must not hold a license already." }),
  })
  .openapi("LicenseCreate");

export const LicenseSchema = z
  .object({
    id: z.string().openapi({ example: "lic_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    plan: z.enum(LICENSE_PLANS),
    seats: z.number().int(),
    features: z.array(z.string()),
    expires_at: z.string().nullable(),
    organization_id: z.string().nullable().openapi({ description: "The organization it serves; null while unassigned." }),
    revoked_at: z.string().nullable().openapi({ description: "Set by `…/revoke`: a revoked license serves nothing." }),
    key_prefix: z.string().openapi({ description: "The start of the license key, to tell keys apart." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("License");

export const LicenseWithKeySchema = LicenseSchema.extend({
  license_key: z.string().openapi({ description: "The secret `lk_…`, shown once: only its hash is stored." }),
}).openapi("LicenseWithKey");

export const LicenseListQuery = PageQuery.extend({
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description: 'AIP-160 subset: `plan = "team"` and `organization_id = "org_…"`, joined with AND. Results are in creation (id) order.',
    }),
  order_by: orderByParam({ fields: ["created_at"], default: "created_at", only: true }),
});

export const LICENSE_STATUSES = ["none", "active", "expired", "revoked"] as const;

export const OrganizationLicenseSchema = z
  .object({
    license_id: z.string().nullable().openapi({ description: "Null with no license." }),
    plan: z.enum(LICENSE_PLANS).openapi({ description: "`free` with no license, or when the license is expired or revoked." }),
    seats: z.number().int().openapi({ description: "The seat limit in force: the license's while it is active, else `FREE_PLAN_SEATS`." }),
    features: z.array(z.string()),
    expires_at: z.string().nullable(),
    status: z
      .enum(LICENSE_STATUSES)
      .openapi({ description: "`expired` and `revoked` keep `license_id` and `expires_at`, so an admin sees why the free plan applies." }),
    seats_used: z
      .number()
      .int()
      .openapi({ description: "Human members plus pending invitations (service accounts take no seat). May exceed `seats` after a downgrade." }),
  })
  .openapi("OrganizationLicense");

export const LicenseAssignInput = z.object({ license_id: z.string().max(100) }).openapi("LicenseAssign");

export const DeploymentInput = z
  .object({
    name: singleLine(100).openapi({
      description: "Identifies the deployment within the license: the same name heartbeats the same record.",
      example: "eu-prod-1",
    }),
    region: singleLine(64).openapi({ example: "eu-west-1" }),
    version: singleLine(64).openapi({ example: "2.4.1" }),
  })
  .openapi("DeploymentHeartbeat");

export const DeploymentSchema = z
  .object({
    id: z.string().openapi({ example: "dep_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    license_id: z.string(),
    name: z.string(),
    region: z.string(),
    version: z.string(),
    last_seen_at: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Deployment");

export type LicenseRow = typeof licenses.$inferSelect;
export type DeploymentRow = typeof deployments.$inferSelect;
export type LicenseStatus = (typeof LICENSE_STATUSES)[number];

/** Active exactly when seatLimitSql counts its seats: not revoked and not past its expiry. */
export function licenseStatus(row: Pick<LicenseRow, "revokedAt" | "expiresAt">, now: number): Exclude<LicenseStatus, "none"> {
  if (row.revokedAt !== null) return "revoked";
  if (row.expiresAt !== null && row.expiresAt <= now) return "expired";
  return "active";
}

export const serializeLicense = (l: LicenseRow) => ({
  id: l.id,
  plan: l.plan,
  seats: l.seats,
  features: l.features,
  expires_at: isoOrNull(l.expiresAt),
  organization_id: l.organizationId,
  revoked_at: isoOrNull(l.revokedAt),
  key_prefix: l.keyPrefix,
  created_at: iso(l.createdAt),
  updated_at: iso(l.updatedAt),
});

/** What an organization runs on: its license while active, else the free plan (with the license's id and status kept). */
export function serializeOrganizationLicense(l: LicenseRow | undefined, seatsUsed: number, freeSeats: number, now: number) {
  const free = { plan: "free" as const, seats: freeSeats, features: [] as string[], seats_used: seatsUsed };
  if (!l) return { license_id: null, ...free, expires_at: null, status: "none" as const };
  const status = licenseStatus(l, now);
  if (status !== "active") return { license_id: l.id, ...free, expires_at: isoOrNull(l.expiresAt), status };
  return { license_id: l.id, plan: l.plan, seats: l.seats, features: l.features, expires_at: isoOrNull(l.expiresAt), status, seats_used: seatsUsed };
}

export const serializeDeployment = (d: DeploymentRow) => ({
  id: d.id,
  license_id: d.licenseId,
  name: d.name,
  region: d.region,
  version: d.version,
  last_seen_at: iso(d.lastSeenAt),
  created_at: iso(d.createdAt),
  updated_at: iso(d.updatedAt),
});
