import { and, asc, eq, gt, sql, type SQL } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import { domains, identityProviderConfigs } from "../../db/schema";
import { outer } from "../../db/schema/columns";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import { toBase64Url } from "../../lib/encoding";
import { ApiError, isUniqueViolation, notFound } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { builtInRolesGranting } from "../../lib/permissions";
import { serializeDomain, verificationRecord, type DomainRow } from "./domains.schemas";
import { emailDomain } from "./jit";
import { isPublicEmailDomain } from "./public-domains";
import { commit, noChange } from "../../audit/record";

/** How long the resolver may take before verification answers 502 `dns_lookup_failed`. */
export const DNS_TIMEOUT_MS = 5000;
/** A DoH JSON answer is a few hundred bytes; anything far larger is not one. */
const MAX_DNS_RESPONSE_CHARS = 256 * 1024;

const columns = {
  id: domains.id,
  domain: domains.domain,
  verificationToken: domains.verificationToken,
  verifiedAt: domains.verifiedAt,
  jitProvisioningEnabled: domains.jitProvisioningEnabled,
  ssoEnforcement: domains.ssoEnforcement,
  scimEnabled: domains.scimEnabled,
  identityProviderConfigId: domains.identityProviderConfigId,
  createdAt: domains.createdAt,
  updatedAt: domains.updatedAt,
};

const listFingerprint = (orgId: string) => `domains|${orgId}`;

/** A page in creation order: one range of domains_org_id_idx, page_size + 1 rows. */
export async function domainListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const page = db
    .select(columns)
    .from(domains)
    .where(and(org.inOrg(domains.organizationId), after ? gt(domains.id, after) : undefined))
    .orderBy(asc(domains.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function domainPage(ctx: OrgCtx, q: { page_size: number }, rows: DomainRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeDomain), next_page_token: page.nextPageToken };
}

/** One domain of the organization; nothing to read for a malformed id. */
export function domainQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("domain", id)) return undefined;
  return db
    .select(columns)
    .from(domains)
    .where(and(eq(domains.id, org.guard(id)), eq(domains.organizationId, org.id)))
    .limit(1);
}

/** Whether an identity provider config belongs to the organization (by primary key, through the guard). */
export function identityProviderConfigQuery(db: ReadDb, org: OrgScope, id: string | null | undefined) {
  if (typeof id !== "string" || !isId("identityProvider", id)) return undefined;
  return db
    .select({ id: identityProviderConfigs.id })
    .from(identityProviderConfigs)
    .where(and(eq(identityProviderConfigs.id, org.guard(id)), eq(identityProviderConfigs.organizationId, org.id)))
    .limit(1);
}

function found(rows: DomainRow[] | undefined): DomainRow {
  const row = rows?.[0];
  if (!row) throw notFound("domain");
  return row;
}

export const getDomainFrom = (rows: DomainRow[] | undefined) => serializeDomain(found(rows));

/** 24 random bytes: the value a person publishes, unguessable so a record cannot be prepared for someone else. */
const newVerificationToken = () => toBase64Url(crypto.getRandomValues(new Uint8Array(24)));

export async function createDomain(ctx: OrgCtx, input: { domain: string }) {
  if (isPublicEmailDomain(input.domain)) {
    throw new ApiError(
      "public_email_domain",
      `\`${input.domain}\` is a public email domain: anyone can have an address there, so no organization can claim it.`,
    );
  }
  const now = Date.now();
  const row: DomainRow = {
    id: newId("domain"),
    domain: input.domain,
    verificationToken: newVerificationToken(),
    verifiedAt: null,
    jitProvisioningEnabled: false,
    ssoEnforcement: "optional",
    scimEnabled: false,
    identityProviderConfigId: null,
    createdAt: now,
    updatedAt: now,
  };
  const domain = serializeDomain(row);
  try {
    await commit(ctx, [ctx.db.insert(domains).values({ ...row, organizationId: ctx.org.id })], {
      entries: [{ action: "domain.created", target: { type: "domain", id: row.id }, event: { type: "domain.created", data: domain } }],
    });
  } catch (err) {
    if (isUniqueViolation(err, "domains.organization_id, domains.domain"))
      throw new ApiError("conflict", `This organization already has the domain \`${input.domain}\`.`);
    throw err;
  }
  return domain;
}

export interface DomainUpdate {
  jit_provisioning_enabled?: boolean;
  sso_enforcement?: "optional" | "required";
  scim_enabled?: boolean;
  identity_provider_config_id?: string | null;
}

/** The API's name of each updatable column, for the audit entry's `changes`. */
const UPDATE_FIELDS = {
  jitProvisioningEnabled: "jit_provisioning_enabled",
  ssoEnforcement: "sso_enforcement",
  scimEnabled: "scim_enabled",
  identityProviderConfigId: "identity_provider_config_id",
} as const satisfies Partial<Record<keyof DomainRow, string>>;

/**
 * Switching JIT, enforcement or SCIM on needs a verified domain; switching off never does. A
 * domain never goes back to unverified (only deletion removes it), so the loaded row decides.
 * The config must be this organization's: the load read it through the guard, and the update
 * re-checks it in the same statement, so a config deleted in between is a 404, not a dangling id.
 */
export async function updateDomain(ctx: OrgCtx, rows: DomainRow[] | undefined, config: { id: string }[] | undefined, input: DomainUpdate) {
  const current = found(rows);
  const configId = input.identity_provider_config_id;
  if (typeof configId === "string" && !config?.[0]) throw notFound("identity provider config");
  const switchingOn = input.jit_provisioning_enabled === true || input.sso_enforcement === "required" || input.scim_enabled === true;
  if (switchingOn && current.verifiedAt === null) {
    throw new ApiError(
      "domain_not_verified",
      "Verify the domain first (publish its TXT record, then `POST …/verify`): JIT provisioning, SSO enforcement and SCIM apply only to a verified domain.",
    );
  }
  const set: Partial<Pick<DomainRow, keyof typeof UPDATE_FIELDS>> = {};
  if (input.jit_provisioning_enabled !== undefined) set.jitProvisioningEnabled = input.jit_provisioning_enabled;
  if (input.sso_enforcement !== undefined) set.ssoEnforcement = input.sso_enforcement;
  if (input.scim_enabled !== undefined) set.scimEnabled = input.scim_enabled;
  if (configId !== undefined) set.identityProviderConfigId = configId;
  const changed = (Object.keys(set) as (keyof typeof UPDATE_FIELDS)[]).filter((k) => set[k] !== current[k]);
  // The values already in place: nothing to write, nothing to record (updated_at stays).
  if (changed.length === 0) {
    noChange(ctx);
    return serializeDomain(current);
  }
  const now = Date.now();
  const conditions: (SQL | undefined)[] = [eq(domains.id, current.id), eq(domains.organizationId, ctx.org.id)];
  if (switchingOn) conditions.push(sql`${domains.verifiedAt} is not null`);
  if (typeof configId === "string") {
    conditions.push(sql`exists (select 1 from identity_provider_configs c where c.id = ${configId} and c.organization_id = ${outer(domains.organizationId)})`);
  }
  // The event carries the row as this request leaves it; it is built before the batch runs.
  const after = serializeDomain({ ...current, ...set, updatedAt: now });
  const [written] = await commit(
    ctx,
    [
      ctx.db
        .update(domains)
        .set({ ...set, updatedAt: now })
        .where(and(...conditions))
        .returning(columns),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "domain.updated",
          target: { type: "domain", id: current.id },
          changes: changed.map((k) => UPDATE_FIELDS[k]),
          event: { type: "domain.updated", data: after },
        },
      ],
    },
  );
  const updated = written[0];
  if (!updated) throw notFound(typeof configId === "string" ? "domain or identity provider config" : "domain");
  return serializeDomain(updated);
}

/**
 * Deleting a verified domain frees it: another organization may verify it next. The seam's load
 * read the row, so the event can carry the domain as it was.
 */
export async function deleteDomain(ctx: OrgCtx, rows: DomainRow[] | undefined) {
  const current = found(rows);
  const [removed] = await commit(
    ctx,
    [
      ctx.db
        .delete(domains)
        .where(and(eq(domains.id, current.id), eq(domains.organizationId, ctx.org.id)))
        .returning({ id: domains.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "domain.deleted", target: { type: "domain", id: current.id }, event: { type: "domain.deleted", data: serializeDomain(current) } }],
    },
  );
  if (removed.length === 0) throw notFound("domain");
}

// ---- Verification ---------------------------------------------------------------------------

const dnsFailed = (detail: string) => new ApiError("dns_lookup_failed", `${detail} Nothing was changed; try again later.`);

/**
 * The strings of one TXT answer. DoH JSON gives a TXT record's data in zone-file form: one or
 * more quoted character-strings (a value over 255 bytes is split into several), with `\"`, `\\`
 * and `\DDD` escapes. Some resolvers return the bare text instead; that is taken as it is.
 */
export function txtValue(data: string): string {
  const trimmed = data.trim();
  if (!trimmed.startsWith('"')) return trimmed;
  const chunks: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(trimmed); m; m = re.exec(trimmed)) {
    chunks.push(m[1]!.replace(/\\(\d{3}|.)/g, (_, e: string) => (/^\d{3}$/.test(e) ? String.fromCharCode(Number(e)) : e)));
  }
  return chunks.join("");
}

/**
 * The TXT strings published at `name`, asked of the DNS-over-HTTPS JSON API. An absent name
 * (NXDOMAIN, or no TXT answer) is an empty list; anything that is not a clear answer (network
 * error, timeout, non-200, a body that is not the JSON form, a SERVFAIL or REFUSED status) is a
 * 502 `dns_lookup_failed`, never read as "absent".
 */
export async function lookupTxt(config: Config, name: string): Promise<string[]> {
  const url = new URL(config.dohResolverUrl);
  url.searchParams.set("name", name);
  url.searchParams.set("type", "TXT");
  let body: string;
  try {
    const res = await fetch(url.toString(), { headers: { Accept: "application/dns-json" }, signal: AbortSignal.timeout(DNS_TIMEOUT_MS) });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw dnsFailed(`The DNS resolver answered HTTP ${res.status}.`);
    }
    body = await res.text();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    throw dnsFailed(timedOut ? `The DNS resolver did not answer within ${DNS_TIMEOUT_MS / 1000} seconds.` : "The DNS resolver could not be reached.");
  }
  if (body.length > MAX_DNS_RESPONSE_CHARS) throw dnsFailed("The DNS resolver's answer was too large to be a DNS answer.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw dnsFailed("The DNS resolver's answer was not the DNS JSON format.");
  }
  const answer = parsed as { Status?: unknown; Answer?: unknown };
  if (typeof parsed !== "object" || parsed === null || typeof answer.Status !== "number")
    throw dnsFailed("The DNS resolver's answer was not the DNS JSON format.");
  // RCODE 3 (NXDOMAIN): the name does not exist, so neither does the record.
  if (answer.Status === 3) return [];
  if (answer.Status !== 0) throw dnsFailed(`The DNS resolver answered with DNS status ${answer.Status}.`);
  if (answer.Answer === undefined) return [];
  if (!Array.isArray(answer.Answer)) throw dnsFailed("The DNS resolver's answer was not the DNS JSON format.");
  const TXT = 16;
  return answer.Answer.filter(
    (a): a is { type: number; data: string } => typeof a === "object" && a !== null && a.type === TXT && typeof a.data === "string",
  ).map((a) => txtValue(a.data));
}

/**
 * Looks the record up, then marks the domain verified in one conditional statement: the partial
 * unique index on verified domains refuses a second organization (409 `domain_taken`), so two
 * organizations verifying at once cannot both win. A domain already verified is re-checked, but
 * a missing record does not un-verify it (422, nothing changed): only deleting it does.
 */
export async function verifyDomain(ctx: OrgCtx, rows: DomainRow[] | undefined) {
  const current = found(rows);
  const record = verificationRecord(current);
  const values = await lookupTxt(ctx.config, record.name);
  if (!values.includes(record.value)) {
    const still = current.verifiedAt === null ? "" : " The domain stays verified; delete it to withdraw the claim.";
    throw new ApiError("domain_verification_failed", `No TXT record \`${record.name}\` with the value \`${record.value}\` was found.${still}`, {
      extra: { verification: record },
    });
  }
  const now = Date.now();
  const db = ctx.db;
  const update = db
    .update(domains)
    .set({
      verifiedAt: sql`coalesce(${domains.verifiedAt}, ${now})`,
      updatedAt: sql`case when ${domains.verifiedAt} is null then ${now} else ${domains.updatedAt} end`,
    })
    .where(and(eq(domains.id, current.id), eq(domains.organizationId, ctx.org.id)))
    .returning(columns);
  let updated: DomainRow | undefined;
  try {
    if (current.verifiedAt !== null) {
      // A re-check of a verified domain changes nothing.
      noChange(ctx);
      [updated] = await update;
    } else {
      const verified = serializeDomain({ ...current, verifiedAt: now, updatedAt: now });
      [[updated]] = await commit(ctx, [update], {
        // Only the request that verified it records it: a concurrent one that got there first kept its own time.
        onlyIf: sql`(select d.verified_at from domains d where d.id = ${current.id}) = ${now}`,
        entries: [
          {
            action: "domain.verified",
            target: { type: "domain", id: current.id },
            changes: ["verified_at"],
            event: { type: "domain.verified", data: verified },
          },
        ],
      });
    }
  } catch (err) {
    if (isUniqueViolation(err, "domains.domain")) {
      throw new ApiError("domain_taken", `\`${current.domain}\` is verified by another organization. It must delete its domain before this one can verify it.`);
    }
    throw err;
  }
  if (!updated) throw notFound("domain");
  if (current.verifiedAt === null && updated.verifiedAt !== now) noChange(ctx);
  return serializeDomain(updated);
}

// ---- Lookups by an email's domain (discovery, login) -----------------------------------------

/** The SAML login URL of a config (served by the SSO routes). */
export const samlLoginUrl = (config: Config, configId: string) => `${config.apiBaseUrl}/v1/sso/saml/${configId}/login`;

/**
 * The verified domain of an address, through domains_verified_idx: at most one row, the same rows
 * whoever asks (it depends on the domain alone, never on whether an account exists). The SSO
 * config is the domain's own, else the organization's default.
 */
export function verifiedDomainQuery(db: ReadDb, email: string) {
  return db
    .select({
      organizationId: domains.organizationId,
      ssoEnforcement: domains.ssoEnforcement,
      configId: sql<
        string | null
      >`coalesce(${outer(domains.identityProviderConfigId)}, (select c.id from identity_provider_configs c where c.organization_id = ${outer(domains.organizationId)} and c.is_default = 1))`,
      adminBypass: sql<number>`(select o.sso_admin_bypass from organizations o where o.id = ${outer(domains.organizationId)})`,
    })
    .from(domains)
    .where(and(eq(domains.domain, emailDomain(email)), sql`${domains.verifiedAt} is not null`))
    .limit(1);
}

export type VerifiedDomain = Awaited<ReturnType<typeof verifiedDomainQuery>>[number];

export async function discover(ctx: ServiceCtx, email: string) {
  const [d] = await verifiedDomainQuery(ctx.db, email);
  if (!d) return { sso: false, enforcement: "optional" as const };
  const loginUrl = d.configId ? samlLoginUrl(ctx.config, d.configId) : undefined;
  return { sso: loginUrl !== undefined, enforcement: d.ssoEnforcement, organization_id: d.organizationId, ...(loginUrl ? { login_url: loginUrl } : {}) };
}

/**
 * "This user may sign in with a password despite enforcement": a member of the domain's
 * organization whose role grants `sso:write` (checks are by permission; built-in: `admin`), while
 * the organization keeps `sso_admin_bypass` on. The one who can repair a broken IdP config must
 * never be locked out by it.
 */
export function ssoBypassSql(orgId: string, userId: string): SQL {
  const builtIn = builtInRolesGranting("sso:write");
  return sql`exists (select 1 from members m where m.organization_id = ${orgId} and m.member_id = ${userId} and (m.role in (${sql.join(
    builtIn.map((r) => sql`${r}`),
    sql`, `,
  )}) or exists (select 1 from roles r, json_each(r.permissions) p where r.organization_id = m.organization_id and r.name = m.role and p.value = 'sso:write')))`;
}
