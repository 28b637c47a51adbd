import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { proxies } from "../../db/schema";
import { encryptString } from "../../lib/crypto";
import { notFound, validationError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { serializeProxy, type ProxyRow } from "./proxies.schemas";

/** Binds the sealed password to its organization and proxy: copied into another row, it does not decrypt. */
export const proxyPasswordAad = (orgId: string, proxyId: string) => `proxy-password:${orgId}:${proxyId}`;

// The ciphertext itself is never selected: only whether there is one.
const columns = {
  id: proxies.id,
  name: proxies.name,
  url: proxies.url,
  username: proxies.username,
  passwordSet: sql<number>`${proxies.passwordCiphertext} is not null`.as("password_set"),
  isDefault: proxies.isDefault,
  createdAt: proxies.createdAt,
  updatedAt: proxies.updatedAt,
};

const listFingerprint = (orgId: string) => `proxies|${orgId}`;

/** A page in creation order: one range of proxies_org_id_idx, page_size + 1 rows. */
export async function proxyListQuery(db: ReadDb, org: OrgScope, config: Config, q: { page_size: number; page_token?: string }) {
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id), q.page_token, 1))[0]) : undefined;
  const page = db
    .select(columns)
    .from(proxies)
    .where(and(org.inOrg(proxies.organizationId), after ? gt(proxies.id, after) : undefined))
    .orderBy(asc(proxies.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function proxyPage(ctx: OrgCtx, q: { page_size: number }, rows: ProxyRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeProxy), next_page_token: page.nextPageToken };
}

/** One proxy of the organization; nothing to read for a malformed id. */
export function proxyQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("proxy", id)) return undefined;
  return db
    .select(columns)
    .from(proxies)
    .where(and(eq(proxies.id, org.guard(id)), eq(proxies.organizationId, org.id)))
    .limit(1);
}

/** The default proxy, through the partial unique index (at most one row). */
export const defaultProxyQuery = (db: ReadDb, org: OrgScope) =>
  db
    .select(columns)
    .from(proxies)
    .where(and(org.inOrg(proxies.organizationId), eq(proxies.isDefault, true)))
    .limit(1);

function found(rows: ProxyRow[] | undefined): ProxyRow {
  const row = rows?.[0];
  if (!row) throw notFound("proxy");
  return row;
}

export const getProxyFrom = (rows: ProxyRow[] | undefined) => serializeProxy(found(rows));
export const defaultProxyFrom = (rows: ProxyRow[]) => ({ proxy: rows[0] ? serializeProxy(rows[0]) : null });

export async function createProxy(ctx: OrgCtx, input: { name: string; url: string; username?: string; password?: string }) {
  const orgId = ctx.org.id;
  const id = newId("proxy");
  const now = Date.now();
  const passwordCiphertext = input.password === undefined ? null : await encryptString(ctx.config.encryptionKey, input.password, proxyPasswordAad(orgId, id));
  await ctx.db.insert(proxies).values({ id, organizationId: orgId, name: input.name, url: input.url, username: input.username ?? null, passwordCiphertext, isDefault: false, createdAt: now, updatedAt: now });
  return serializeProxy({ id, name: input.name, url: input.url, username: input.username ?? null, passwordSet: passwordCiphertext !== null, isDefault: false, createdAt: now, updatedAt: now });
}

export async function updateProxy(
  ctx: OrgCtx,
  rows: ProxyRow[] | undefined,
  input: { name?: string; url?: string; username?: string | null; password?: string | null },
) {
  const current = found(rows);
  const username = input.username === undefined ? current.username : input.username;
  const passwordSet = input.password === undefined ? Boolean(current.passwordSet) : input.password !== null;
  // A password alone authenticates nobody; keeping the pair whole keeps what clients send predictable.
  if (passwordSet && username === null) throw validationError([{ path: "password", message: "needs a username (remove the password with `password: null`)" }]);
  const set: Partial<typeof proxies.$inferInsert> = {};
  if (input.name !== undefined) set.name = input.name;
  if (input.url !== undefined) set.url = input.url;
  if (input.username !== undefined) set.username = input.username;
  if (input.password !== undefined) {
    set.passwordCiphertext = input.password === null ? null : await encryptString(ctx.config.encryptionKey, input.password, proxyPasswordAad(ctx.org.id, current.id));
  }
  if (Object.keys(set).length === 0) return serializeProxy(current);
  set.updatedAt = Date.now();
  const [updated] = await ctx.db
    .update(proxies)
    .set(set)
    .where(and(eq(proxies.id, current.id), eq(proxies.organizationId, ctx.org.id)))
    .returning(columns);
  // Deleted by a concurrent request after the authorization read.
  if (!updated) throw notFound("proxy");
  return serializeProxy(updated);
}

/** Deleting the default proxy clears the default with it: the flag lives on the row. */
export async function deleteProxy(ctx: OrgCtx, id: string) {
  if (!isId("proxy", id)) throw notFound("proxy");
  const removed = await ctx.db
    .delete(proxies)
    .where(and(eq(proxies.id, id), eq(proxies.organizationId, ctx.org.id)))
    .returning({ id: proxies.id });
  if (removed.length === 0) throw notFound("proxy");
}

/**
 * Sets or clears the default in one batch (one transaction). The old default is cleared only if
 * the new one is a proxy of this organization, so a refused id changes nothing; clearing runs
 * before setting because the partial unique index is checked row by row.
 */
export async function setDefaultProxy(ctx: OrgCtx, proxyId: string | null) {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  if (proxyId === null) {
    await db
      .update(proxies)
      .set({ isDefault: false, updatedAt: now })
      .where(and(eq(proxies.organizationId, orgId), eq(proxies.isDefault, true)));
    return { proxy: null };
  }
  if (!isId("proxy", proxyId)) throw notFound("proxy");
  const target = and(eq(proxies.id, proxyId), eq(proxies.organizationId, orgId));
  const [, set] = await db.batch([
    db
      .update(proxies)
      .set({ isDefault: false, updatedAt: now })
      .where(
        and(
          eq(proxies.organizationId, orgId),
          eq(proxies.isDefault, true),
          sql`${proxies.id} != ${proxyId}`,
          sql`exists (select 1 from ${proxies} p where p.id = ${proxyId} and p.organization_id = ${orgId})`,
        ),
      ),
    // Re-setting the current default changes nothing, updated_at included.
    db
      .update(proxies)
      .set({ isDefault: true, updatedAt: sql`case when ${proxies.isDefault} = 1 then ${proxies.updatedAt} else ${now} end` })
      .where(target)
      .returning(columns),
  ]);
  if (set.length === 0) throw notFound("proxy");
  return { proxy: serializeProxy(set[0]!) };
}
