import { and, eq, inArray, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { OrgCtx } from "../../env";
import { organizationSecrets, organizationSettings, organizations } from "../../db/schema";
import { encryptString } from "../../lib/crypto";
import { ApiError, rootMessage } from "../../lib/errors";
import { iso } from "../../lib/time";
import { MAX_SECRETS } from "./settings.schemas";
import { commit, noChange } from "../../audit/record";

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

/**
 * What a PUT changes, by name: `settings.<key>` for each top-level setting added, removed or
 * given another value, `secrets.<name>` for each secret set or deleted (never a value).
 */
function changedNames(
  current: { settings: Record<string, unknown>; secrets: Set<string> },
  input: { settings?: Record<string, unknown>; secrets?: Record<string, string | null> },
) {
  const out: string[] = [];
  if (input.settings !== undefined) {
    const next = input.settings;
    const keys = [...new Set([...Object.keys(current.settings), ...Object.keys(next)])].sort();
    for (const k of keys) if (JSON.stringify(current.settings[k]) !== JSON.stringify(next[k])) out.push(`settings.${k}`);
  }
  for (const [name, value] of Object.entries(input.secrets ?? {})) {
    // Setting a secret always changes it (a new ciphertext); deleting one that is not there does not.
    if (value !== null || current.secrets.has(name)) out.push(`secrets.${name}`);
  }
  return out;
}

type SettingsRow = typeof organizationSettings.$inferSelect;
type SecretRow = { name: string; updatedAt: number };

export async function putSettings(
  ctx: OrgCtx,
  loaded: { settings: SettingsRow[]; secrets: SecretRow[] },
  input: { settings?: Record<string, unknown>; secrets?: Record<string, string | null> },
) {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  const changes = changedNames({ settings: loaded.settings[0]?.settings ?? {}, secrets: new Set(loaded.secrets.map((r) => r.name)) }, input);
  if (changes.length === 0) {
    noChange(ctx);
    return shape(loaded.settings, loaded.secrets);
  }
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
  if (toSet.length > 0) {
    const sealed = await Promise.all(toSet.map(async ([name, value]) => [name, await encryptString(ctx.config.encryptionKey, value, secretAad(orgId, name))]));
    // Every secret in one statement (one JSON parameter): D1 counts statements per request.
    writes.push(
      db
        .insert(organizationSecrets)
        .select(
          sql`select ${orgId}, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), ${now} from json_each(${JSON.stringify(sealed)}) j where true`,
        )
        .onConflictDoUpdate({
          target: [organizationSecrets.organizationId, organizationSecrets.name],
          set: { ciphertext: sql`excluded.ciphertext`, updatedAt: sql`excluded.updated_at` },
        }),
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
  // What the response will read back, for the event (secrets as names only, as the API shows them).
  const secretsAfter = new Map(loaded.secrets.map((r) => [r.name, r.updatedAt]));
  for (const name of toDelete) secretsAfter.delete(name);
  for (const [name] of toSet) secretsAfter.set(name, now);
  const settingsAfter = input.settings !== undefined ? [{ organizationId: orgId, settings: input.settings, updatedAt: now }] : loaded.settings;
  const data = shape(
    settingsAfter,
    [...secretsAfter].map(([name, updatedAt]) => ({ name, updatedAt })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  );
  // Writes, the limit guard, the entry and the read-back in one transaction and one round trip.
  let results: unknown[];
  try {
    results = await commit(ctx, [...writes, settingsRead(db, orgId), secretsRead(db, orgId)] as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      entries: [
        {
          action: "organization.settings_updated",
          target: { type: "organization", id: orgId },
          changes,
          event: { type: "organization.settings_updated", data },
        },
      ],
    });
  } catch (err) {
    if (rootMessage(err).includes(SECRET_LIMIT_MARKER)) throw tooManySecrets();
    throw err;
  }
  const settingsRows = results[results.length - 2] as SettingsRow[];
  const secretRows = results[results.length - 1] as SecretRow[];
  return shape(settingsRows, secretRows);
}
