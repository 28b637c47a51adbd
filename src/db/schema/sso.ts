import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { bool, ms, timestamps } from "./columns";
import { organizations } from "./organizations";

/**
 * A SAML identity provider of one organization. Two certificates may verify at once, so an IdP's
 * signing certificate can roll over without a window where logins fail.
 */
export const identityProviderConfigs = sqliteTable(
  "identity_provider_configs",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    samlEntityId: text("saml_entity_id").notNull(),
    samlSsoUrl: text("saml_sso_url"),
    // PEM; the expiry is parsed once at write time and kept for responses and warnings.
    samlX509Cert: text("saml_x509_cert"),
    samlX509CertExpiresAt: ms("saml_x509_cert_expires_at"),
    samlX509CertSecondary: text("saml_x509_cert_secondary"),
    samlX509CertSecondaryExpiresAt: ms("saml_x509_cert_secondary_expires_at"),
    // Off by default: an unsolicited Response cannot be tied to a request we issued.
    allowIdpInitiated: bool("allow_idp_initiated").notNull().default(false),
    // Off by default: SHA-1 digests and signatures are refused unless a legacy IdP needs them.
    allowSha1: bool("allow_sha1").notNull().default(false),
    scimEnabled: bool("scim_enabled").notNull().default(false),
    // The config `POST …/saml-sso` upserts: at most one per organization.
    isDefault: bool("is_default").notNull().default(false),
    // The SCIM bearer token `scim_…` of this config, as a SHA-256 hash; replaced (the old one
    // stops at once) by `POST …/scim-token`.
    scimTokenHash: text("scim_token_hash"),
    scimTokenPrefix: text("scim_token_prefix"),
    scimTokenCreatedAt: ms("scim_token_created_at"),
    // Rows of scim_users / scim_groups of this config, kept in the same batch as every insert and
    // delete: an unfiltered SCIM list answers an exact totalResults from here without counting.
    scimUserCount: integer("scim_user_count").notNull().default(0),
    scimGroupCount: integer("scim_group_count").notNull().default(0),
    ...timestamps,
  },
  (t) => [
    index("idp_configs_org_id_idx").on(t.organizationId, t.id),
    uniqueIndex("idp_configs_org_default_idx").on(t.organizationId).where(sql`is_default = 1`),
    uniqueIndex("idp_configs_scim_token_idx").on(t.scimTokenHash),
  ],
);

export const SSO_ENFORCEMENT = ["optional", "required"] as const;

/**
 * An email domain an organization claims. Any number of organizations may claim a domain while
 * unverified; once verified it belongs to one (the partial unique index), and JIT provisioning,
 * SSO enforcement and SCIM apply only to verified rows.
 */
export const domains = sqliteTable(
  "domains",
  {
    id: text("id").primaryKey(),
    organizationId: text("organization_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    // Lower-case, no trailing dot.
    domain: text("domain").notNull(),
    // The TXT value the organization must publish at the verification name.
    verificationToken: text("verification_token").notNull(),
    verifiedAt: ms("verified_at"),
    jitProvisioningEnabled: bool("jit_provisioning_enabled").notNull().default(false),
    ssoEnforcement: text("sso_enforcement", { enum: SSO_ENFORCEMENT }).notNull().default("optional"),
    scimEnabled: bool("scim_enabled").notNull().default(false),
    identityProviderConfigId: text("identity_provider_config_id").references(() => identityProviderConfigs.id, { onDelete: "set null" }),
    ...timestamps,
  },
  (t) => [
    index("domains_org_id_idx").on(t.organizationId, t.id),
    uniqueIndex("domains_org_domain_idx").on(t.organizationId, t.domain),
    // One organization per verified domain, enforced by the database; also the lookup of login,
    // discovery and JIT by an email's domain.
    uniqueIndex("domains_verified_idx").on(t.domain).where(sql`verified_at is not null`),
  ],
);
