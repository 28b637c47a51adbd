import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { proxies } from "../../db/schema";
import { encryptString } from "../../lib/crypto";
import { notFound, validationError } from "../../lib/errors";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { serializeProxy, type ProxyRow } from "./proxies.schemas";
import { commit, noChange, type AuditEntry } from "../../audit/record";

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
  const proxy = serializeProxy({
    id,
    name: input.name,
    url: input.url,
    username: input.username ?? null,
    passwordSet: passwordCiphertext !== null,
    isDefault: false,
    createdAt: now,
    updatedAt: now,
  });
  await commit(
    ctx,
    [
      ctx.db.insert(proxies).values({
        id,
        organizationId: orgId,
        name: input.name,
        url: input.url,
        username: input.username ?? null,
        passwordCiphertext,
        isDefault: false,
        createdAt: now,
        updatedAt: now,
      }),
    ],
    {
      entries: [
        {
          action: "proxy.created",
          target: { type: "proxy", id },
          changes: ["name", "url", ...(input.username !== undefined ? ["username"] : []), ...(input.password !== undefined ? ["password"] : [])],
          event: { type: "proxy.created", data: proxy },
        },
      ],
    },
  );
  return proxy;
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
  if (input.name !== undefined && input.name !== current.name) set.name = input.name;
  if (input.url !== undefined && input.url !== current.url) set.url = input.url;
  if (input.username !== undefined && input.username !== current.username) set.username = input.username;
  const changes: string[] = Object.keys(set);
  // A new password always changes the sealed value; removing one that is not set changes nothing.
  if (input.password !== undefined && (input.password !== null || current.passwordSet)) {
    set.passwordCiphertext =
      input.password === null ? null : await encryptString(ctx.config.encryptionKey, input.password, proxyPasswordAad(ctx.org.id, current.id));
    changes.push("password");
  }
  if (changes.length === 0) {
    noChange(ctx);
    return serializeProxy(current);
  }
  set.updatedAt = Date.now();
  const after = serializeProxy({ ...current, name: set.name ?? current.name, url: set.url ?? current.url, username, passwordSet, updatedAt: set.updatedAt });
  const [updated] = await commit(
    ctx,
    [
      ctx.db
        .update(proxies)
        .set(set)
        .where(and(eq(proxies.id, current.id), eq(proxies.organizationId, ctx.org.id)))
        .returning(columns),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "proxy.updated", target: { type: "proxy", id: current.id }, changes, event: { type: "proxy.updated", data: after } }],
    },
  );
  // Deleted by a concurrent request after the authorization read.
  if (!updated[0]) throw notFound("proxy");
  return serializeProxy(updated[0]);
}

/** Deleting the default proxy clears the default with it: the flag lives on the row. */
export async function deleteProxy(ctx: OrgCtx, rows: ProxyRow[] | undefined) {
  const proxy = found(rows);
  const [removed] = await commit(
    ctx,
    [
      ctx.db
        .delete(proxies)
        .where(and(eq(proxies.id, proxy.id), eq(proxies.organizationId, ctx.org.id)))
        .returning({ id: proxies.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [{ action: "proxy.deleted", target: { type: "proxy", id: proxy.id }, event: { type: "proxy.deleted", data: serializeProxy(proxy) } }],
    },
  );
  if (removed.length === 0) throw notFound("proxy");
}

const defaultChanged = (p: ProxyRow, isDefault: boolean, now: number): AuditEntry => ({
  action: "proxy.updated",
  target: { type: "proxy", id: p.id },
  changes: ["default"],
  event: { type: "proxy.updated", data: serializeProxy({ ...p, isDefault, updatedAt: now }) },
});

/**
 * Sets or clears the default in one batch (one transaction). The old default is cleared only if
 * the new one is a proxy of this organization, so a refused id changes nothing; clearing runs
 * before setting because the partial unique index is checked row by row. Each proxy whose flag
 * moves gets a `proxy.updated` entry; re-setting the current default, or clearing when there is
 * none, changes and records nothing.
 */
export async function setDefaultProxy(ctx: OrgCtx, proxyId: string | null, loaded: { current: ProxyRow[]; target?: ProxyRow[] }) {
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  const previous = loaded.current[0];
  if (proxyId === null) {
    if (!previous) {
      noChange(ctx);
      return { proxy: null };
    }
    await commit(
      ctx,
      [
        db
          .update(proxies)
          .set({ isDefault: false, updatedAt: now })
          .where(and(eq(proxies.organizationId, orgId), eq(proxies.isDefault, true))),
      ],
      { onlyIf: sql`changes() >= 1`, entries: [defaultChanged(previous, false, now)] },
    );
    return { proxy: null };
  }
  const target = loaded.target?.[0];
  if (!target) throw notFound("proxy");
  if (target.isDefault) {
    noChange(ctx);
    return { proxy: serializeProxy(target) };
  }
  const [, set] = await commit(
    ctx,
    [
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
        .where(and(eq(proxies.id, proxyId), eq(proxies.organizationId, orgId)))
        .returning(columns),
    ],
    {
      // Only if the proxy is still there (deleted meanwhile, the batch changed nothing).
      onlyIf: sql`exists (select 1 from proxies p where p.id = ${proxyId} and p.organization_id = ${orgId})`,
      entries: [defaultChanged(target, true, now), ...(previous && previous.id !== proxyId ? [defaultChanged(previous, false, now)] : [])],
    },
  );
  if (set.length === 0) throw notFound("proxy");
  return { proxy: serializeProxy(set[0]!) };
}
