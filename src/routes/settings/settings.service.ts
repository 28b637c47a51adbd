import { and, eq, inArray } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Ctx } from "../../env";
import { organizationSecrets, organizationSettings } from "../../db/schema";
import { encryptString } from "../../lib/crypto";
import { ApiError } from "../../lib/errors";
import { iso } from "../../lib/time";
import { MAX_SECRETS } from "./settings.schemas";

/** Binds a ciphertext to its organization and name: copied elsewhere, it does not decrypt. */
export const secretAad = (orgId: string, name: string) => `org-secret:${orgId}:${name}`;

function readStatements(c: Ctx, orgId: string) {
  return [
    c.var.db.select().from(organizationSettings).where(eq(organizationSettings.organizationId, orgId)),
    c.var.db
      .select({ name: organizationSecrets.name, updatedAt: organizationSecrets.updatedAt })
      .from(organizationSecrets)
      .where(eq(organizationSecrets.organizationId, orgId))
      .orderBy(organizationSecrets.name),
  ] as const;
}

function shape(settingsRows: (typeof organizationSettings.$inferSelect)[], secretRows: { name: string; updatedAt: number }[]) {
  const s = settingsRows[0];
  const latest = Math.max(s?.updatedAt ?? 0, ...secretRows.map((r) => r.updatedAt));
  return {
    settings: s?.settings ?? {},
    secrets: Object.fromEntries(secretRows.map((r) => [r.name, { set: true as const, updated_at: iso(r.updatedAt) }])),
    updated_at: latest > 0 ? iso(latest) : null,
  };
}

export async function getSettings(c: Ctx, orgId: string) {
  const [settings, secrets] = await c.var.db.batch(readStatements(c, orgId));
  return shape(settings, secrets);
}

export async function putSettings(c: Ctx, orgId: string, input: { settings?: Record<string, unknown>; secrets?: Record<string, string | null> }) {
  const db = c.var.db;
  const now = Date.now();
  const entries = Object.entries(input.secrets ?? {});
  const toSet = entries.filter((e): e is [string, string] => e[1] !== null);
  const toDelete = entries.filter(([, v]) => v === null).map(([k]) => k);
  if (toSet.length > 0) {
    const existing = await db.select({ name: organizationSecrets.name }).from(organizationSecrets).where(eq(organizationSecrets.organizationId, orgId));
    const names = new Set(existing.map((r) => r.name));
    for (const n of toDelete) names.delete(n);
    for (const [n] of toSet) names.add(n);
    if (names.size > MAX_SECRETS) throw new ApiError("validation_failed", `An organization may store at most ${MAX_SECRETS} secrets.`, { errors: [{ path: "secrets", message: `at most ${MAX_SECRETS} secrets in total` }] });
  }
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
    const ciphertext = await encryptString(c.var.config.encryptionKey, value, secretAad(orgId, name));
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
  // Writes and the read-back in one transaction and one round trip.
  const results = await db.batch([...writes, ...readStatements(c, orgId)] as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  const settingsRows = results[results.length - 2] as (typeof organizationSettings.$inferSelect)[];
  const secretRows = results[results.length - 1] as { name: string; updatedAt: number }[];
  return shape(settingsRows, secretRows);
}
