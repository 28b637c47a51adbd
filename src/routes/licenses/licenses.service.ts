import { and, asc, eq, gt, ne, sql, type SQL } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Db } from "../../db/client";
import { deployments, LICENSE_PLANS, licenses, organizations, users } from "../../db/schema";
import type { Config, OrgCtx, ServiceCtx } from "../../env";
import type { SessionActor } from "../../lib/actor";
import { newSecret, sha256Hex, timingSafeEqual } from "../../lib/crypto";
import { ApiError, isUniqueViolation, notFound, validationError } from "../../lib/errors";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { isPlatformAdmin } from "../users/users.service";
import { commit, noChange } from "../../audit/record";
import {
  licenseStatus,
  serializeDeployment,
  serializeLicense,
  serializeOrganizationLicense,
  type DeploymentRow,
  type LicenseRow,
  type LicenseStatus,
} from "./licenses.schemas";

/** `lk_…`: distinct from the `lic_` record ids, so a key is never mistaken for an id in logs or support tickets. */
const KEY_PREFIX = "lk";
const KEY_PREFIX_LENGTH = 10;

// ---- Platform administration ------------------------------------------------------------------

const notPlatformAdmin = () => new ApiError("forbidden", "Only platform administrators (verified emails in PLATFORM_ADMIN_EMAILS) may manage licenses.");

/**
 * `value` when the caller is a platform administrator, else NULL: the same rule as
 * isPlatformAdmin, as SQL, so a statement batched with the caller's own row reads nothing for
 * anyone else (a NULL bound walks no index).
 */
function adminGuard(ctx: ServiceCtx, userId: string, value: string): SQL {
  const admins = JSON.stringify(ctx.config.platformAdminEmails);
  return sql`(select ${value} from users pa where pa.id = ${userId} and pa.email_verified_at is not null and pa.email in (select value from json_each(${admins})))`;
}

const callerRow = (db: Db, userId: string) => db.select().from(users).where(eq(users.id, userId)).limit(1);

function assertAdmin(ctx: ServiceCtx, rows: (typeof users.$inferSelect)[]) {
  const row = rows[0];
  if (!row || !isPlatformAdmin(ctx, row)) throw notPlatformAdmin();
}

function parseExpiry(value: string | null, now: number): number | null {
  if (value === null) return null;
  const at = Date.parse(value);
  if (at <= now) throw validationError([{ path: "expires_at", message: "must be in the future" }]);
  return at;
}

export async function createLicense(
  ctx: ServiceCtx<SessionActor>,
  input: { plan: LicenseRow["plan"]; seats: number; features: string[]; expires_at: string | null; organization_id?: string },
) {
  const now = Date.now();
  const expiresAt = parseExpiry(input.expires_at, now);
  assertAdmin(ctx, await callerRow(ctx.db, ctx.actor.userId));
  const orgId = input.organization_id;
  if (orgId !== undefined && !isId("organization", orgId)) throw notFound("organization");
  const key = newSecret(KEY_PREFIX);
  const row: LicenseRow = {
    id: newId("license", now),
    plan: input.plan,
    seats: input.seats,
    features: input.features,
    expiresAt,
    keyHash: await sha256Hex(key),
    keyPrefix: key.slice(0, KEY_PREFIX_LENGTH),
    organizationId: orgId ?? null,
    revokedAt: null,
    createdBy: ctx.actor.userId,
    createdAt: now,
    updatedAt: now,
  };
  const db = ctx.db;
  // With an organization the row goes in only if the organization exists; the unique index on
  // organization_id refuses a second license for it, whatever runs concurrently.
  const insert = orgId
    ? db.insert(licenses).select(
        sql`select ${row.id}, ${row.plan}, ${row.seats}, ${JSON.stringify(row.features)}, ${row.expiresAt}, ${row.keyHash}, ${row.keyPrefix}, ${orgId}, null, ${row.createdBy}, ${now}, ${now}
            where exists (select 1 from organizations o where o.id = ${orgId})`,
      )
    : db.insert(licenses).values(row);
  let changes: number;
  try {
    if (orgId) {
      // Created for an organization: that is an assignment in its log (the platform's own
      // inventory has no log). The entry goes in only if the organization existed.
      const [inserted] = await commit(ctx, [insert], {
        organizationId: orgId,
        onlyIf: sql`changes() = 1`,
        entries: [
          {
            action: "license.assigned",
            target: { type: "license", id: row.id },
            changes: ["license_id"],
            event: { type: "license.assigned", data: licenseEventData(row, now) },
          },
        ],
      });
      changes = (inserted as unknown as D1Result).meta.changes;
    } else {
      changes = ((await insert) as unknown as D1Result).meta.changes;
    }
  } catch (err) {
    if (isUniqueViolation(err, "licenses.organization_id")) {
      throw new ApiError("license_in_use", "The organization already holds a license; replace it with PUT /v1/organizations/{org_id}/license.");
    }
    throw err;
  }
  if (changes !== 1) throw notFound("organization");
  return { ...serializeLicense(row), license_key: key };
}

const LICENSE_FILTER: Record<string, FilterField> = {
  plan: { kind: "enum", column: licenses.plan, values: LICENSE_PLANS, ops: ["="] },
  organization_id: { kind: "string", column: licenses.organizationId, ops: ["="] },
};

const listFingerprint = (filter: string | undefined) => `licenses|${filter ?? ""}`;

/**
 * One page of licenses in id order, in the same round trip as the caller's row. The index the
 * statement walks (the primary key, (plan, id) or organization_id) is bounded by a value that is
 * NULL for anyone but a platform administrator, so a refused caller reads no license.
 */
export async function listLicenses(ctx: ServiceCtx<SessionActor>, q: { page_size: number; page_token?: string; filter?: string }) {
  const userId = ctx.actor.userId;
  let terms: ReturnType<typeof parseFilter>;
  let after: string;
  const fingerprint = listFingerprint(q.filter);
  try {
    terms = q.filter ? parseFilter(q.filter) : [];
    compileFilter(terms, LICENSE_FILTER); // validates: unknown fields, operators and plan values are 400
    after = q.page_token ? String((await decodePageToken(ctx.config.hmacSecret, fingerprint, q.page_token, 1))[0]) : "";
  } catch (err) {
    // As on organization routes, who may ask is settled before what was asked is judged.
    if (!(err instanceof ApiError)) throw err;
    assertAdmin(ctx, await callerRow(ctx.db, userId));
    throw err;
  }
  const guarded = (value: string) => adminGuard(ctx, userId, value);
  // One guard per statement (each evaluation reads the caller's row again), on the index the
  // statement walks: the organization_id index when filtered by organization, else the id range
  // (alone, or after the plan in (plan, id)).
  const byOrg = terms.find((t) => t.field === "organization_id");
  const conds: SQL[] = [byOrg ? gt(licenses.id, after) : gt(licenses.id, guarded(after))];
  for (const t of terms) {
    const column = t.field === "plan" ? licenses.plan : licenses.organizationId;
    conds.push(eq(column, t === byOrg ? guarded(String(t.value)) : String(t.value)));
  }
  const db = ctx.db;
  const [caller, rows] = await db.batch([
    callerRow(db, userId),
    db
      .select()
      .from(licenses)
      .where(and(...conds))
      .orderBy(asc(licenses.id))
      .limit(q.page_size + 1),
  ]);
  assertAdmin(ctx, caller);
  const page = await finishPage(ctx.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeLicense), next_page_token: page.nextPageToken };
}

export async function getLicense(ctx: ServiceCtx<SessionActor>, licenseId: string) {
  const db = ctx.db;
  const userId = ctx.actor.userId;
  const [caller, rows] = await db.batch([
    callerRow(db, userId),
    db
      .select()
      .from(licenses)
      .where(eq(licenses.id, adminGuard(ctx, userId, licenseId)))
      .limit(1),
  ]);
  assertAdmin(ctx, caller);
  if (!rows[0]) throw notFound("license");
  return serializeLicense(rows[0]);
}

/**
 * A license event's data: the license as the platform routes show it, with its status, and
 * without `key_prefix` (an organization's webhook receiver has no use for any part of the key).
 */
function licenseEventData(l: LicenseRow, now: number) {
  const { key_prefix: _keyPrefix, ...shown } = serializeLicense(l);
  return { ...shown, status: licenseStatus(l, now) };
}

/** How often a revocation re-reads a license that was reassigned while it was being revoked. */
const REVOKE_ATTEMPTS = 3;

/**
 * Revoking is final and idempotent (a second call keeps the first time and records nothing). The
 * license keeps its organization, which falls back to the free plan and sees `status: "revoked"`;
 * its deployments are refused from the next heartbeat on.
 *
 * The entry belongs to the organization the license serves, which only the license row knows: it
 * is read first (with the caller's row, through the admin guard), and the update then applies only
 * while the license still serves that organization, so the entry cannot land in the wrong one. A
 * license reassigned in between is read again. Two round trips, where a revocation used to take one.
 */
export async function revokeLicense(ctx: ServiceCtx<SessionActor>, licenseId: string) {
  const db = ctx.db;
  const userId = ctx.actor.userId;
  for (let attempt = 1; ; attempt++) {
    const [caller, rows] = await db.batch([
      callerRow(db, userId),
      db
        .select()
        .from(licenses)
        .where(eq(licenses.id, adminGuard(ctx, userId, licenseId)))
        .limit(1),
    ]);
    assertAdmin(ctx, caller);
    const current = rows[0];
    if (!current) throw notFound("license");
    if (current.revokedAt !== null) {
      noChange(ctx);
      return serializeLicense(current);
    }
    const now = Date.now();
    const orgId = current.organizationId;
    const update = db
      .update(licenses)
      .set({ revokedAt: now, updatedAt: now })
      .where(
        and(
          eq(licenses.id, current.id),
          sql`${licenses.revokedAt} is null`,
          orgId === null ? sql`${licenses.organizationId} is null` : eq(licenses.organizationId, orgId),
        ),
      )
      .returning();
    let revoked: LicenseRow | undefined;
    if (orgId === null) {
      // A license that serves no organization is platform inventory: no organization's log to write to.
      noChange(ctx);
      [revoked] = await update;
    } else {
      const after = { ...current, revokedAt: now, updatedAt: now };
      [[revoked]] = await commit(ctx, [update], {
        organizationId: orgId,
        onlyIf: sql`changes() = 1`,
        entries: [
          {
            action: "license.revoked",
            target: { type: "license", id: current.id },
            changes: ["revoked_at"],
            event: { type: "license.revoked", data: licenseEventData(after, now) },
          },
        ],
      });
    }
    if (revoked) return serializeLicense(revoked);
    // Revoked, assigned or unassigned by someone else since the read: look again.
    if (attempt >= REVOKE_ATTEMPTS) throw new ApiError("conflict", "The license kept changing while it was being revoked; try again.");
  }
}

// ---- The organization's license ---------------------------------------------------------------

const seatsUsed = sql<number>`${organizations.userMemberCount} + ${organizations.pendingInvitationCount}`;

/** The organization's license (if any) and its seat usage, read in the seam's batch. */
export function organizationLicenseQuery(db: ReadDb, org: OrgScope) {
  return {
    license: db.select().from(licenses).where(org.inOrg(licenses.organizationId)).limit(1),
    usage: db
      .select({ used: seatsUsed })
      .from(organizations)
      .where(eq(organizations.id, org.guard(org.id)))
      .limit(1),
  };
}

export function organizationLicenseView(ctx: OrgCtx, loaded: { license: LicenseRow[]; usage: { used: number }[] }) {
  return serializeOrganizationLicense(loaded.license[0], loaded.usage[0]?.used ?? 0, ctx.config.freePlanSeats, Date.now());
}

/** The license to assign, by id, read through the guard; nothing to read for a malformed id. */
export function assignableLicenseQuery(db: ReadDb, org: OrgScope, licenseId: string) {
  if (!isId("license", licenseId)) return undefined;
  return db
    .select()
    .from(licenses)
    .where(eq(licenses.id, org.guard(licenseId)))
    .limit(1);
}

/** Why a license cannot serve `orgId`, or null when it can. */
function refusal(row: LicenseRow | undefined, orgId: string, now: number): ApiError | null {
  if (!row) return notFound("license");
  const status = licenseStatus(row, now);
  if (status !== "active") return new ApiError("license_inactive", `The license is ${status}; it cannot be assigned.`, { extra: { license_status: status } });
  if (row.organizationId !== null && row.organizationId !== orgId)
    return new ApiError("license_in_use", "The license serves another organization; a license serves one organization at a time.");
  return null;
}

/**
 * Replaces the organization's license. Both updates carry the same condition (the new license
 * is active and unassigned) and run in one batch, so the old license is freed only if the new
 * one is taken, and of two organizations racing for one license exactly one gets it: the
 * second batch finds it assigned. The unique index on organization_id keeps one license per
 * organization whatever else runs. Assigning fewer seats than are in use is allowed: nobody is
 * removed, but no seat is taken until usage is below the new limit.
 */
export async function assignLicense(ctx: OrgCtx, licenseId: string, loaded: { license: LicenseRow[] | undefined; usage: { used: number }[] }) {
  const orgId = ctx.org.id;
  const now = Date.now();
  const current = loaded.license?.[0];
  const refused = refusal(current, orgId, now);
  if (refused) throw refused;
  const used = loaded.usage[0]?.used ?? 0;
  if (current!.organizationId === orgId) {
    noChange(ctx);
    return serializeOrganizationLicense(current, used, ctx.config.freePlanSeats, now);
  }

  const takeable = sql`exists (select 1 from licenses t where t.id = ${licenseId} and t.organization_id is null and t.revoked_at is null and (t.expires_at is null or t.expires_at > ${now}))`;
  const db = ctx.db;
  const [, taken, usage] = await commit(
    ctx,
    [
      db
        .update(licenses)
        .set({ organizationId: null, updatedAt: now })
        .where(and(eq(licenses.organizationId, orgId), ne(licenses.id, licenseId), takeable)),
      db
        .update(licenses)
        .set({ organizationId: orgId, updatedAt: now })
        .where(and(eq(licenses.id, licenseId), takeable))
        .returning(),
      db.select({ used: seatsUsed }).from(organizations).where(eq(organizations.id, orgId)).limit(1),
    ],
    {
      // Right after the statement that takes the license: the entry exists only if it was taken.
      after: 1,
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "license.assigned",
          target: { type: "license", id: licenseId },
          changes: ["license_id"],
          event: { type: "license.assigned", data: licenseEventData({ ...current!, organizationId: orgId, updatedAt: now }, now) },
        },
      ],
    },
  );
  const row = taken[0];
  if (!row) {
    // Changed since the seam read it: say what it is now (assigned here by a concurrent request, this one changed nothing).
    const [now2] = await db.select().from(licenses).where(eq(licenses.id, licenseId)).limit(1);
    const late = refusal(now2, orgId, Date.now());
    if (late) throw late;
    noChange(ctx);
    return serializeOrganizationLicense(now2, usage[0]?.used ?? used, ctx.config.freePlanSeats, Date.now());
  }
  return serializeOrganizationLicense(row, usage[0]?.used ?? used, ctx.config.freePlanSeats, now);
}

/**
 * Back to the free plan; the license becomes assignable again. Idempotent: with no license (the
 * seam's load read the organization's) nothing is written or recorded.
 */
export async function unassignLicense(ctx: OrgCtx, loaded: LicenseRow[]): Promise<void> {
  const current = loaded[0];
  if (!current) {
    noChange(ctx);
    return;
  }
  const now = Date.now();
  const [freed] = await commit(
    ctx,
    [
      ctx.db
        .update(licenses)
        .set({ organizationId: null, updatedAt: now })
        .where(and(eq(licenses.id, current.id), eq(licenses.organizationId, ctx.org.id)))
        .returning({ id: licenses.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "license.unassigned",
          target: { type: "license", id: current.id },
          changes: ["license_id"],
          event: { type: "license.unassigned", data: licenseEventData({ ...current, organizationId: null, updatedAt: now }, now) },
        },
      ],
    },
  );
  // Unassigned or replaced by a concurrent request since the load: that request recorded it.
  if (freed.length === 0) noChange(ctx);
}

// ---- Deployments ------------------------------------------------------------------------------

const deploymentsFingerprint = (orgId: string) => `deployments|${orgId}`;

/**
 * Deployments of the organization's current license (whatever its status), in id order. The
 * license is found through the guarded organization_id index, and its deployments through
 * (license_id, id): a page reads about page_size rows.
 */
export async function deploymentListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, deploymentsFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const licenseOfOrg = sql`(select l.id from licenses l where l.organization_id = ${org.guard(org.id)})`;
  const page = db
    .select()
    .from(deployments)
    .where(and(eq(deployments.licenseId, licenseOfOrg), after ? gt(deployments.id, after) : undefined))
    .orderBy(asc(deployments.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function deploymentPage(ctx: OrgCtx, q: { page_size: number }, rows: DeploymentRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, deploymentsFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeDeployment), next_page_token: page.nextPageToken };
}

/**
 * The license a presented key opens, or null. The row is read by the path's id, never by the
 * key's hash, and the hashes are compared in constant time: an unknown key and another
 * license's key then read the same row and take the same time, so neither the answer nor
 * Server-Timing tells them apart (looking up by hash would read a row for the second only).
 */
export async function licenseForKey(ctx: ServiceCtx, licenseId: string, key: string | null): Promise<LicenseRow | null> {
  const hash = await sha256Hex(key ?? "");
  // Queried even for a malformed id or a missing key, so every refusal costs the same round trip.
  const [row] = await ctx.db.select().from(licenses).where(eq(licenses.id, licenseId)).limit(1);
  const matches = timingSafeEqual(row?.keyHash ?? "0".repeat(64), hash);
  return row && key !== null && matches ? row : null;
}

/**
 * Registers a deployment, or records a heartbeat of an existing one (same license and name), in
 * one statement. The license must still be active when the row is written: a revocation that
 * lands between the key check and the write refuses the heartbeat too. A new row keeps the id
 * minted here, which is how a registration (201) is told from a heartbeat (200).
 */
export async function recordDeployment(ctx: ServiceCtx, license: LicenseRow, input: { name: string; region: string; version: string }) {
  const now = Date.now();
  const inactive = (status: LicenseStatus) =>
    new ApiError("license_inactive", `The license is ${status}; deployments are refused.`, { extra: { license_status: status } });
  const status = licenseStatus(license, now);
  if (status !== "active") throw inactive(status);
  const id = newId("deployment", now);
  const [row] = await ctx.db
    .insert(deployments)
    .select(
      sql`select ${id}, l.id, ${input.name}, ${input.region}, ${input.version}, ${now}, ${now}, ${now} from licenses l
          where l.id = ${license.id} and l.revoked_at is null and (l.expires_at is null or l.expires_at > ${now})`,
    )
    .onConflictDoUpdate({
      target: [deployments.licenseId, deployments.name],
      set: { region: sql`excluded.region`, version: sql`excluded.version`, lastSeenAt: sql`excluded.last_seen_at`, updatedAt: sql`excluded.updated_at` },
    })
    .returning();
  if (!row) throw new ApiError("license_inactive", "The license was revoked or has expired; deployments are refused.");
  return { created: row.id === id, deployment: serializeDeployment(row) };
}
