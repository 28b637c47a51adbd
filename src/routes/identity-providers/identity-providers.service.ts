import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import { identityProviderConfigs } from "../../db/schema";
import type { Config, OrgCtx } from "../../env";
import { ApiError, notFound, validationError, type FieldError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import type { ParsedCertificate } from "../../sso/certificate";
import { spUrls } from "../../sso/metadata";
import { serializeIdp, type IdpRow } from "./identity-providers.schemas";

const t = identityProviderConfigs;

// Named one by one: a later column (issue 11's SCIM token hash) is never returned by accident.
export const idpColumns = {
  id: t.id,
  organizationId: t.organizationId,
  name: t.name,
  samlEntityId: t.samlEntityId,
  samlSsoUrl: t.samlSsoUrl,
  samlX509Cert: t.samlX509Cert,
  samlX509CertExpiresAt: t.samlX509CertExpiresAt,
  samlX509CertSecondary: t.samlX509CertSecondary,
  samlX509CertSecondaryExpiresAt: t.samlX509CertSecondaryExpiresAt,
  allowIdpInitiated: t.allowIdpInitiated,
  allowSha1: t.allowSha1,
  scimEnabled: t.scimEnabled,
  isDefault: t.isDefault,
  createdAt: t.createdAt,
  updatedAt: t.updatedAt,
};

export const DEFAULT_CONFIG_NAME = "SAML SSO";

const view = (config: Config, row: IdpRow) => serializeIdp(row, spUrls(config, row.id));

const listFingerprint = (orgId: string) => `identity-provider-configs|${orgId}`;

/** A page in creation order: one range of idp_configs_org_id_idx, page_size + 1 rows. */
export async function idpListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const page = db
    .select(idpColumns)
    .from(t)
    .where(and(org.inOrg(t.organizationId), after ? gt(t.id, after) : undefined))
    .orderBy(asc(t.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function idpPage(ctx: OrgCtx, q: { page_size: number }, rows: IdpRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map((r) => view(ctx.config, r)), next_page_token: page.nextPageToken };
}

/** One config of the organization, by primary key; nothing to read for a malformed id. */
export function idpQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("identityProvider", id)) return undefined;
  return db
    .select(idpColumns)
    .from(t)
    .where(and(eq(t.id, org.guard(id)), eq(t.organizationId, org.id)))
    .limit(1);
}

function found(rows: IdpRow[] | undefined): IdpRow {
  const row = rows?.[0];
  if (!row) throw notFound("identity provider config");
  return row;
}

export const getIdpFrom = (ctx: { config: Config }, rows: IdpRow[] | undefined) => view(ctx.config, found(rows));

/**
 * Plain http sends the person's browser, and the AuthnRequest, in the clear; it is only for an
 * IdP running on a developer's machine.
 */
function ssoUrlIssues(config: Config, url: string | null | undefined, path: string): FieldError[] {
  if (url && url.toLowerCase().startsWith("http:") && config.environment !== "development") {
    return [{ path, message: "must be an https URL (http is accepted only with ENVIRONMENT=development)" }];
  }
  return [];
}

/** The same certificate twice is no rollover: most likely the wrong file was pasted. */
function sameCertIssues(primary: string | null, secondary: string | null, path: string): FieldError[] {
  return primary !== null && secondary !== null && primary === secondary ? [{ path, message: "is the same certificate as the primary one" }] : [];
}

const pem = (c: ParsedCertificate | null | undefined) => (c ? c.pem : null);
const expiry = (c: ParsedCertificate | null | undefined) => (c ? c.notAfter : null);

export interface IdpCreate {
  name: string;
  saml_entity_id: string;
  saml_sso_url?: string | null;
  saml_x509_cert?: ParsedCertificate | null;
  saml_x509_cert_secondary?: ParsedCertificate | null;
  allow_idp_initiated: boolean;
  allow_sha1: boolean;
  scim_enabled: boolean;
}

export async function createIdp(ctx: OrgCtx, input: IdpCreate) {
  const issues = [
    ...ssoUrlIssues(ctx.config, input.saml_sso_url, "saml_sso_url"),
    ...sameCertIssues(pem(input.saml_x509_cert), pem(input.saml_x509_cert_secondary), "saml_x509_cert_secondary"),
  ];
  if (issues.length > 0) throw validationError(issues);
  const now = Date.now();
  const row: IdpRow = {
    id: newId("identityProvider"),
    organizationId: ctx.org.id,
    name: input.name,
    samlEntityId: input.saml_entity_id,
    samlSsoUrl: input.saml_sso_url ?? null,
    samlX509Cert: pem(input.saml_x509_cert),
    samlX509CertExpiresAt: expiry(input.saml_x509_cert),
    samlX509CertSecondary: pem(input.saml_x509_cert_secondary),
    samlX509CertSecondaryExpiresAt: expiry(input.saml_x509_cert_secondary),
    allowIdpInitiated: input.allow_idp_initiated,
    allowSha1: input.allow_sha1,
    scimEnabled: input.scim_enabled,
    isDefault: false,
    createdAt: now,
    updatedAt: now,
  };
  await ctx.db.insert(t).values(row);
  return view(ctx.config, row);
}

export interface IdpUpdate {
  name?: string;
  saml_entity_id?: string;
  saml_sso_url?: string | null;
  saml_x509_cert?: ParsedCertificate | null;
  saml_x509_cert_secondary?: ParsedCertificate | null;
  promote_secondary_cert?: true;
  allow_idp_initiated?: boolean;
  allow_sha1?: boolean;
  scim_enabled?: boolean;
}

export async function updateIdp(ctx: OrgCtx, rows: IdpRow[] | undefined, input: IdpUpdate) {
  const current = found(rows);
  const primary = input.saml_x509_cert === undefined ? current.samlX509Cert : pem(input.saml_x509_cert);
  const secondary = input.saml_x509_cert_secondary === undefined ? current.samlX509CertSecondary : pem(input.saml_x509_cert_secondary);
  const issues = [
    ...ssoUrlIssues(ctx.config, input.saml_sso_url, "saml_sso_url"),
    ...sameCertIssues(primary, secondary, input.saml_x509_cert_secondary !== undefined ? "saml_x509_cert_secondary" : "saml_x509_cert"),
  ];
  if (issues.length > 0) throw validationError(issues);
  if (input.promote_secondary_cert && current.samlX509CertSecondary === null) {
    throw new ApiError("conflict", "There is no secondary certificate to promote.");
  }

  const set: Partial<Record<keyof typeof t.$inferInsert, unknown>> = {};
  if (input.name !== undefined) set.name = input.name;
  if (input.saml_entity_id !== undefined) set.samlEntityId = input.saml_entity_id;
  if (input.saml_sso_url !== undefined) set.samlSsoUrl = input.saml_sso_url;
  if (input.saml_x509_cert !== undefined) {
    set.samlX509Cert = pem(input.saml_x509_cert);
    set.samlX509CertExpiresAt = expiry(input.saml_x509_cert);
  }
  if (input.saml_x509_cert_secondary !== undefined) {
    set.samlX509CertSecondary = pem(input.saml_x509_cert_secondary);
    set.samlX509CertSecondaryExpiresAt = expiry(input.saml_x509_cert_secondary);
  }
  if (input.promote_secondary_cert) {
    // Moved by the database from the row as it is now, so a concurrent PATCH cannot pair one
    // certificate with the other's expiry.
    set.samlX509Cert = sql`${t.samlX509CertSecondary}`;
    set.samlX509CertExpiresAt = sql`${t.samlX509CertSecondaryExpiresAt}`;
    set.samlX509CertSecondary = null;
    set.samlX509CertSecondaryExpiresAt = null;
  }
  if (input.allow_idp_initiated !== undefined) set.allowIdpInitiated = input.allow_idp_initiated;
  if (input.allow_sha1 !== undefined) set.allowSha1 = input.allow_sha1;
  if (input.scim_enabled !== undefined) set.scimEnabled = input.scim_enabled;
  if (Object.keys(set).length === 0) return view(ctx.config, current);
  set.updatedAt = Date.now();
  const [updated] = await ctx.db
    .update(t)
    .set(set as Partial<typeof t.$inferInsert>)
    .where(and(eq(t.id, current.id), eq(t.organizationId, ctx.org.id), input.promote_secondary_cert ? sql`${t.samlX509CertSecondary} is not null` : undefined))
    .returning(idpColumns);
  if (!updated) {
    // Deleted, or its secondary promoted by a concurrent request, after the authorization read.
    if (input.promote_secondary_cert) throw new ApiError("conflict", "There is no secondary certificate to promote.");
    throw notFound("identity provider config");
  }
  return view(ctx.config, updated);
}

/** Domains that pointed at the config keep existing with no IdP (the foreign key sets null). */
export async function deleteIdp(ctx: OrgCtx, id: string) {
  if (!isId("identityProvider", id)) throw notFound("identity provider config");
  const removed = await ctx.db
    .delete(t)
    .where(and(eq(t.id, id), eq(t.organizationId, ctx.org.id)))
    .returning({ id: t.id });
  if (removed.length === 0) throw notFound("identity provider config");
}

export interface SamlSsoUpsert {
  entity_id: string;
  sso_url?: string | null;
  x509_cert?: ParsedCertificate | null;
}

/**
 * Creates or updates the organization's default config in one statement: the partial unique
 * index (one `is_default` row per organization) is the conflict target, so two concurrent calls
 * cannot create two defaults. Omitted fields keep their value on update.
 */
export async function upsertSamlSso(ctx: OrgCtx, input: SamlSsoUpsert): Promise<{ created: boolean; config: ReturnType<typeof view> }> {
  const issues = ssoUrlIssues(ctx.config, input.sso_url, "sso_url");
  if (issues.length > 0) throw validationError(issues);
  const now = Date.now();
  const id = newId("identityProvider");
  const set: Partial<typeof t.$inferInsert> = { samlEntityId: input.entity_id, updatedAt: now };
  if (input.sso_url !== undefined) set.samlSsoUrl = input.sso_url;
  if (input.x509_cert !== undefined) {
    set.samlX509Cert = pem(input.x509_cert);
    set.samlX509CertExpiresAt = expiry(input.x509_cert);
  }
  const [row] = await ctx.db
    .insert(t)
    .values({
      id,
      organizationId: ctx.org.id,
      name: DEFAULT_CONFIG_NAME,
      samlEntityId: input.entity_id,
      samlSsoUrl: input.sso_url ?? null,
      samlX509Cert: pem(input.x509_cert),
      samlX509CertExpiresAt: expiry(input.x509_cert),
      isDefault: true,
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoUpdate({ target: t.organizationId, targetWhere: sql`is_default = 1`, set })
    .returning(idpColumns);
  return { created: row!.id === id, config: view(ctx.config, row!) };
}

export async function deleteSamlSso(ctx: OrgCtx) {
  const removed = await ctx.db
    .delete(t)
    .where(and(eq(t.organizationId, ctx.org.id), eq(t.isDefault, true)))
    .returning({ id: t.id });
  if (removed.length === 0) throw notFound("SAML SSO configuration");
}

/** The metadata route's only read: does this config exist (primary key, at most one row). */
export async function idpExists(db: ReadDb, id: string): Promise<boolean> {
  if (!isId("identityProvider", id)) return false;
  const rows = await db.select({ id: t.id }).from(t).where(eq(t.id, id)).limit(1);
  return rows.length === 1;
}
