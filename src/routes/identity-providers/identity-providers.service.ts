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
import type { BatchItem } from "drizzle-orm/batch";
import { afterCommit, auditStatements, commit, noChange, type AuditEntry } from "../../audit/record";

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
  if (url?.toLowerCase().startsWith("http:") && config.environment !== "development") {
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

type IdpView = ReturnType<typeof view>;
type IdpAction = "identity_provider.created" | "identity_provider.updated" | "identity_provider.deleted";

/** An identity provider entry; its event carries the config as the API shows it (certificates are public, there is no secret in it). */
const idpEntry = (action: IdpAction, config: IdpView, changes?: string[]): AuditEntry => ({
  action,
  target: { type: "identity_provider", id: config.id },
  changes,
  event: { type: action, data: config },
});

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
  const config = view(ctx.config, row);
  await commit(ctx, [ctx.db.insert(t).values(row)], { entries: [idpEntry("identity_provider.created", config)] });
  return config;
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

  // The config as this request leaves it: what is compared to find what changed, and the event's data.
  const next: IdpRow = { ...current };
  if (input.name !== undefined) next.name = input.name;
  if (input.saml_entity_id !== undefined) next.samlEntityId = input.saml_entity_id;
  if (input.saml_sso_url !== undefined) next.samlSsoUrl = input.saml_sso_url;
  if (input.saml_x509_cert !== undefined) {
    next.samlX509Cert = pem(input.saml_x509_cert);
    next.samlX509CertExpiresAt = expiry(input.saml_x509_cert);
  }
  if (input.saml_x509_cert_secondary !== undefined) {
    next.samlX509CertSecondary = pem(input.saml_x509_cert_secondary);
    next.samlX509CertSecondaryExpiresAt = expiry(input.saml_x509_cert_secondary);
  }
  if (input.promote_secondary_cert) {
    next.samlX509Cert = current.samlX509CertSecondary;
    next.samlX509CertExpiresAt = current.samlX509CertSecondaryExpiresAt;
    next.samlX509CertSecondary = null;
    next.samlX509CertSecondaryExpiresAt = null;
  }
  if (input.allow_idp_initiated !== undefined) next.allowIdpInitiated = input.allow_idp_initiated;
  if (input.allow_sha1 !== undefined) next.allowSha1 = input.allow_sha1;
  if (input.scim_enabled !== undefined) next.scimEnabled = input.scim_enabled;
  const changed = (Object.keys(UPDATABLE) as (keyof typeof UPDATABLE)[]).filter((k) => next[k] !== current[k]);
  if (changed.length === 0) {
    noChange(ctx);
    return view(ctx.config, current);
  }

  const set: Partial<Record<keyof typeof t.$inferInsert, unknown>> = {};
  for (const k of changed) set[k] = next[k];
  if (input.promote_secondary_cert) {
    // Moved by the database from the row as it is now, so a concurrent PATCH cannot pair one
    // certificate with the other's expiry.
    set.samlX509Cert = sql`${t.samlX509CertSecondary}`;
    set.samlX509CertExpiresAt = sql`${t.samlX509CertSecondaryExpiresAt}`;
    set.samlX509CertSecondary = null;
    set.samlX509CertSecondaryExpiresAt = null;
  }
  next.updatedAt = Date.now();
  set.updatedAt = next.updatedAt;
  const fields = [...new Set(changed.map((k) => UPDATABLE[k]))];
  const [written] = await commit(
    ctx,
    [
      ctx.db
        .update(t)
        .set(set as Partial<typeof t.$inferInsert>)
        .where(
          and(eq(t.id, current.id), eq(t.organizationId, ctx.org.id), input.promote_secondary_cert ? sql`${t.samlX509CertSecondary} is not null` : undefined),
        )
        .returning(idpColumns),
    ],
    { onlyIf: sql`changes() = 1`, entries: [idpEntry("identity_provider.updated", view(ctx.config, next), fields)] },
  );
  const updated = written[0];
  if (!updated) {
    // Deleted, or its secondary promoted by a concurrent request, after the authorization read.
    if (input.promote_secondary_cert) throw new ApiError("conflict", "There is no secondary certificate to promote.");
    throw notFound("identity provider config");
  }
  return view(ctx.config, updated);
}

/** The columns a PATCH may change, by the API field that names them (a certificate's expiry goes with it). */
const UPDATABLE = {
  name: "name",
  samlEntityId: "saml_entity_id",
  samlSsoUrl: "saml_sso_url",
  samlX509Cert: "saml_x509_cert",
  samlX509CertExpiresAt: "saml_x509_cert",
  samlX509CertSecondary: "saml_x509_cert_secondary",
  samlX509CertSecondaryExpiresAt: "saml_x509_cert_secondary",
  allowIdpInitiated: "allow_idp_initiated",
  allowSha1: "allow_sha1",
  scimEnabled: "scim_enabled",
} as const satisfies Partial<Record<keyof IdpRow, string>>;

/** Domains that pointed at the config keep existing with no IdP (the foreign key sets null). */
export async function deleteIdp(ctx: OrgCtx, rows: IdpRow[] | undefined) {
  const current = found(rows);
  const [removed] = await commit(
    ctx,
    [
      ctx.db
        .delete(t)
        .where(and(eq(t.id, current.id), eq(t.organizationId, ctx.org.id)))
        .returning({ id: t.id }),
    ],
    { onlyIf: sql`changes() = 1`, entries: [idpEntry("identity_provider.deleted", view(ctx.config, current))] },
  );
  if (removed.length === 0) throw notFound("identity provider config");
}

/** The organization's default config (the one `…/saml-sso` manages), through the guard: at most one row. */
export function defaultIdpQuery(db: ReadDb, org: OrgScope) {
  return db
    .select(idpColumns)
    .from(t)
    .where(and(eq(t.organizationId, org.guard(org.id)), eq(t.isDefault, true)))
    .limit(1);
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
 *
 * The seam's load says which it will be, so the entry names the config and carries it as it ends
 * up; whether the new id went in decides between the two entries in the batch itself. One case
 * the load cannot foresee: no config when read, but a concurrent call created one before this
 * statement ran, which then updates it. Its entry follows in a second batch, with the row the
 * statement returned (the only case where an entry is not in the change's own batch).
 */
export async function upsertSamlSso(ctx: OrgCtx, input: SamlSsoUpsert, loaded: IdpRow[] | undefined): Promise<{ created: boolean; config: IdpView }> {
  const issues = ssoUrlIssues(ctx.config, input.sso_url, "sso_url");
  if (issues.length > 0) throw validationError(issues);
  const now = Date.now();
  const current = loaded?.[0];
  const set: Partial<typeof t.$inferInsert> = { samlEntityId: input.entity_id, updatedAt: now };
  if (input.sso_url !== undefined) set.samlSsoUrl = input.sso_url;
  if (input.x509_cert !== undefined) {
    set.samlX509Cert = pem(input.x509_cert);
    set.samlX509CertExpiresAt = expiry(input.x509_cert);
  }
  const fresh: IdpRow = {
    id: newId("identityProvider"),
    organizationId: ctx.org.id,
    name: DEFAULT_CONFIG_NAME,
    samlEntityId: input.entity_id,
    samlSsoUrl: input.sso_url ?? null,
    samlX509Cert: pem(input.x509_cert),
    samlX509CertExpiresAt: expiry(input.x509_cert),
    samlX509CertSecondary: null,
    samlX509CertSecondaryExpiresAt: null,
    allowIdpInitiated: false,
    allowSha1: false,
    scimEnabled: false,
    isDefault: true,
    createdAt: now,
    updatedAt: now,
  };
  // The API fields this call sets; on an update, those whose value differs are its `changes`.
  const given = SAML_SSO_FIELDS.filter((f) => input[f.input] !== undefined);
  const entries = [idpEntry("identity_provider.created", view(ctx.config, fresh))];
  const isNew = sql`exists (select 1 from identity_provider_configs n where n.id = ${fresh.id})`;
  let onlyIf = isNew;
  if (current) {
    const next: IdpRow = { ...current, ...(set as Partial<IdpRow>) };
    const changed = given.filter((f) => next[f.column] !== current[f.column]).map((f) => f.field);
    if (changed.length === 0) {
      noChange(ctx);
      return { created: false, config: view(ctx.config, current) };
    }
    entries.push(idpEntry("identity_provider.updated", view(ctx.config, next), changed));
    onlyIf = sql`(audit_row.action = 'identity_provider.created') = ${isNew}`;
  }
  const [rows] = await commit(
    ctx,
    [ctx.db.insert(t).values(fresh).onConflictDoUpdate({ target: t.organizationId, targetWhere: sql`is_default = 1`, set }).returning(idpColumns)],
    { entries, onlyIf },
  );
  const row = rows[0]!;
  const config = view(ctx.config, row);
  if (!current && row.id !== fresh.id) {
    const prepared = auditStatements(ctx, {
      entries: [
        idpEntry(
          "identity_provider.updated",
          config,
          given.map((f) => f.field),
        ),
      ],
    });
    afterCommit(ctx, prepared, await ctx.db.batch(prepared.statements as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]));
  }
  return { created: row.id === fresh.id, config };
}

const SAML_SSO_FIELDS = [
  { input: "entity_id", field: "saml_entity_id", column: "samlEntityId" },
  { input: "sso_url", field: "saml_sso_url", column: "samlSsoUrl" },
  { input: "x509_cert", field: "saml_x509_cert", column: "samlX509Cert" },
] as const satisfies readonly { input: keyof SamlSsoUpsert; field: string; column: keyof IdpRow }[];

export async function deleteSamlSso(ctx: OrgCtx, rows: IdpRow[] | undefined) {
  const current = rows?.[0];
  if (!current) throw notFound("SAML SSO configuration");
  return deleteIdp(ctx, rows);
}

/** The metadata route's only read: does this config exist (primary key, at most one row). */
export async function idpExists(db: ReadDb, id: string): Promise<boolean> {
  if (!isId("identityProvider", id)) return false;
  const rows = await db.select({ id: t.id }).from(t).where(eq(t.id, id)).limit(1);
  return rows.length === 1;
}
