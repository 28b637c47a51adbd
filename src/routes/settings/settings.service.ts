import { and, eq, inArray, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { OrgCtx } from "../../env";
import { organizationSecrets, organizationSettings, organizations } from "../../db/schema";
import { encryptString } from "../../lib/crypto";
import { ApiError, rootMessage } from "../../lib/errors";
import { iso } from "../../lib/time";
import { MAX_SECRETS } from "./settings.schemas";

/** Binds a ciphertext to its organization and name: copied elsewhere, it does not decrypt. */
export const secretAad = (orgId: string, name: string) => `org-secret:${orgId}:${name}`;

const settingsRead = (db: ReadDb, orgId: SQL | string) => db.select().from(organizationSettings).where(eq(organizationSettings.organizationId, orgId));
const secretsRead = (db: ReadDb, orgId: SQL | string) =>
  db
    .select({ name: organizationSecrets.name, updatedAt: organizationSecrets.updatedAt })
    .from(organizationSecrets)
    .where(eq(organizationSecrets.organizationId, orgId))
    .orderBy(organizationSecrets.name);

/** The settings row and the names of stored secrets, for an authorized caller. */
export const settingsQueries = (db: ReadDb, org: OrgScope) => ({ settings: settingsRead(db, org.guard(org.id)), secrets: secretsRead(db, org.guard(org.id)) });

export function shape(settingsRows: (typeof organizationSettings.$inferSelect)[], secretRows: { name: string; updatedAt: number }[]) {
  const s = settingsRows[0];
  const latest = Math.max(s?.updatedAt ?? 0, ...secretRows.map((r) => r.updatedAt));
  return {
    settings: s?.settings ?? {},
    secrets: Object.fromEntries(secretRows.map((r) => [r.name, { set: true as const, updated_at: iso(r.updatedAt) }])),
    updated_at: latest > 0 ? iso(latest) : null,
  };
}

/** Marker of the limit guard's deliberate SQL error (SQLite has no RAISE outside triggers). */
const SECRET_LIMIT_MARKER = "org_secret_limit_exceeded";

const tooManySecrets = () =>
  new ApiError("validation_failed", `An organization may store at most ${MAX_SECRETS} secrets.`, {
    errors: [{ path: "secrets", message: `at most ${MAX_SECRETS} secrets in total` }],
  });

export async function putSettings(ctx: OrgCtx, input: { settings?: Record<string, unknown>; secrets?: Record<string, string | null> }) {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  const entries = Object.entries(input.secrets ?? {});
  const toSet = entries.filter((e): e is [string, string] => e[1] !== null);
  const toDelete = entries.filter(([, v]) => v === null).map(([k]) => k);
  const writes: BatchItem<"sqlite">[] = [];
  if (input.settings !== undefined) {
    writes.push(
      db
        .insert(organizationSettings)
        .values({ organizationId: orgId, settings: input.settings, updatedAt: now })
        .onConflictDoUpdate({ target: organizationSettings.organizationId, set: { settings: input.settings, updatedAt: now } }),
    );
  }
  for (const [name, value] of toSet) {
    const ciphertext = await encryptString(ctx.config.encryptionKey, value, secretAad(orgId, name));
    writes.push(
      db
        .insert(organizationSecrets)
        .values({ organizationId: orgId, name, ciphertext, updatedAt: now })
        .onConflictDoUpdate({ target: [organizationSecrets.organizationId, organizationSecrets.name], set: { ciphertext, updatedAt: now } }),
    );
  }
  if (toDelete.length > 0) {
    writes.push(db.delete(organizationSecrets).where(and(eq(organizationSecrets.organizationId, orgId), inArray(organizationSecrets.name, toDelete))));
  }
  if (toSet.length > 0) {
    // The limit is checked inside the batch, after its own writes: a count read beforehand
    // would let two concurrent PUTs each pass and together exceed it. When the count is over,
    // json_extract with an invalid path fails the statement, and D1 rolls back the whole batch.
    const count = sql`(select count(*) from ${organizationSecrets} where ${organizationSecrets.organizationId} = ${orgId})`;
    writes.push(
      db
        .select({ overLimit: sql`case when ${count} > ${MAX_SECRETS} then json_extract('{}', ${SECRET_LIMIT_MARKER} || ${count}) end` })
        .from(organizations)
        .where(eq(organizations.id, orgId)),
    );
  }
  // Writes, the limit guard and the read-back in one transaction and one round trip.
  let results: unknown[];
  try {
    results = await db.batch([...writes, settingsRead(db, orgId), secretsRead(db, orgId)] as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  } catch (err) {
    if (rootMessage(err).includes(SECRET_LIMIT_MARKER)) throw tooManySecrets();
    throw err;
  }
  const settingsRows = results[results.length - 2] as (typeof organizationSettings.$inferSelect)[];
  const secretRows = results[results.length - 1] as { name: string; updatedAt: number }[];
  return shape(settingsRows, secretRows);
}
