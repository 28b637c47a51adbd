import { eq, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Context } from "hono";
import type { ReadDb } from "../db/authz";
import { identityProviderConfigs } from "../db/schema";
import type { Config } from "../env";
import { sha256Hex } from "../lib/crypto";
import { isId, type IdKind } from "../lib/ids";
import { kvKeys } from "../lib/kv-keys";
import { z } from "../lib/openapi";
import { iso } from "../lib/time";
import { ScimError } from "./errors";
import type { ScimCtx, ScimLoadEnv, ScimScope } from "./route";

/**
 * What every SCIM resource route shares (RFC 7644):
 *   ScimListQuery                      zod for ?filter&startIndex&count&attributes&excludedAttributes&sortBy&sortOrder
 *   parsePaging(query)                 → {startIndex ≥ 1 (default 1), count 0..200 (default 100), offset}
 *   totalFor(db, table, where, paging) → a select for the load batch: count(*) over at most
 *                                        startIndex-1+count+TOTAL_LOOKAHEAD rows (see below)
 *   totalResults(n, paging, returned)  → the totalResults to answer from that count and the page
 *   scimList(resources, {totalResults, startIndex, itemsPerPage?}) → the ListResponse envelope
 *   projectAttributes(resource, attributes?, excludedAttributes?, always?)  §3.9
 *   etagOf(version) → W/"<version>"; checkIfMatch(c | header, version) → 412 on mismatch;
 *   notModified(c, version) → true when If-None-Match names the current version (answer 304)
 *   scimMeta(resourceType, id, createdMs, updatedMs, version, config) → the meta object
 *   scimLocation(config, resourceType, id) → ${API_BASE_URL}/scim/v2/Users/{id}
 *
 * totalResults and cost. RFC 7644 paging is positional (startIndex), so a page is
 * `order by id limit count offset startIndex-1` on the (config_id, id) index, and totalResults is
 * "the total number of results". An exact count(*) reads every matching index entry — the whole
 * directory for an unfiltered list — on every page. Instead the count runs in the same batch but
 * stops at startIndex-1+count+TOTAL_LOOKAHEAD rows: totalResults is exact whenever fewer than
 * TOTAL_LOOKAHEAD results follow the page (always for userName/externalId lookups and for
 * directories up to that size), and otherwise a lower bound that still exceeds the page's end, so
 * a client paging "while startIndex <= totalResults" (Okta, Entra ID) visits every page and sees
 * the exact total on the last ones. A page thus reads at most ~2·(startIndex+count)+1000 rows.
 */

export const LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
export const SCIM_MAX_COUNT = 200;
export const SCIM_DEFAULT_COUNT = 100;
export const TOTAL_LOOKAHEAD = 1000;

const intParam = z
  .string()
  .regex(/^-?\d{1,9}$/, "must be an integer")
  .optional();

/** Query parameters of a SCIM list (GET /Users, /Groups). sortBy is accepted and ignored (sort: false). */
export const ScimListQuery = z.object({
  filter: z.string().max(4096).optional().openapi({ description: 'RFC 7644 §3.4.2.2 filter, e.g. `userName eq "bjensen@example.com"`.' }),
  startIndex: intParam.openapi({ description: "1-based index of the first result (default 1; values below 1 mean 1)." }),
  count: intParam.openapi({ description: `Results per page, 0..${SCIM_MAX_COUNT} (default ${SCIM_DEFAULT_COUNT}; more is served as ${SCIM_MAX_COUNT}).` }),
  attributes: z.string().max(2048).optional().openapi({ description: "Comma-separated attributes to return (plus id and schemas)." }),
  excludedAttributes: z.string().max(2048).optional().openapi({ description: "Comma-separated attributes to leave out." }),
  sortBy: z
    .string()
    .max(200)
    .optional()
    .openapi({ description: "Ignored: sorting is not supported (ServiceProviderConfig sort.supported = false); results are in id order." }),
  sortOrder: z.string().max(20).optional(),
});

/** Query parameters of a SCIM read (GET /Users/{id}). */
export const ScimReadQuery = ScimListQuery.pick({ attributes: true, excludedAttributes: true });

export interface Paging {
  startIndex: number;
  count: number;
  /** startIndex - 1, for `offset`. */
  offset: number;
}

/** RFC 7644 §3.4.2.4: startIndex < 1 means 1; a negative count means 0; count above the maximum is served as the maximum. */
export function parsePaging(query: { startIndex?: string | number | null; count?: string | number | null }): Paging {
  const num = (v: string | number | null | undefined, name: string): number | undefined => {
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "number" ? v : /^-?\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
    if (!Number.isSafeInteger(n)) throw new ScimError(400, `${name} must be an integer.`, "invalidValue");
    return n;
  };
  const start = num(query.startIndex, "startIndex");
  const count = num(query.count, "count");
  const startIndex = start === undefined || start < 1 ? 1 : Math.min(start, 1_000_000_000);
  const c = count === undefined ? SCIM_DEFAULT_COUNT : Math.max(0, Math.min(count, SCIM_MAX_COUNT));
  return { startIndex, count: c, offset: startIndex - 1 };
}

/**
 * The select that counts results for totalResults, to return from the route's `load` beside the
 * page (one round trip). `where` must include the config guard (`eq(table.configId, dir.configId)`)
 * and the compiled filter. Reads at most startIndex-1+count+lookahead rows.
 */
export function totalFor(db: ReadDb, table: SQLiteTable, where: SQL, paging: Paging, lookahead = TOTAL_LOOKAHEAD, keyset = false) {
  // After a cursor, `where` already starts at the page (id > lastId): the offset is behind it.
  const cap = (keyset ? 0 : paging.offset) + paging.count + lookahead;
  const capped = db
    .select({ one: sql<number>`1`.as("one") })
    .from(table)
    .where(where)
    .limit(cap)
    .as("scim_total");
  return db.select({ n: sql<number>`count(*)`.mapWith(Number), keyset: sql<number>`${keyset ? 1 : 0}`.mapWith(Number).as("keyset") }).from(capped);
}

/**
 * Sequential paging without OFFSET walks. RFC 7644 paging is positional, but IdPs page in order
 * (startIndex 1, 1+count, 1+2·count, …). When a full page is served, where it ended is kept in KV
 * (kvKeys.scimPageCursor: per token, per list — resource type and filter — and per next
 * startIndex → the id of the page's last resource). A request whose (list, startIndex) is found
 * there reads `id > lastId order by id limit count`: O(count) however deep. Otherwise (the first
 * page, a jump, an expired or not yet visible key) the page is the OFFSET query, which reads
 * startIndex-1+count index entries. With resources created or deleted between pages, the keyset
 * continues after the last resource the client saw (nothing skipped, nothing repeated), where an
 * OFFSET would shift.
 */

/** Names one list of one resource type (its filter as sent); attributes and count do not change where a page ends. */
export async function listFingerprint(resource: ScimResourceType, filter: string | undefined): Promise<string> {
  return (await sha256Hex(`${resource}\n${filter ?? ""}`)).slice(0, 32);
}

/** The last id of the previous page, when this token just read it (one KV read; none for startIndex 1 or count 0). */
export async function listCursor(env: ScimLoadEnv, fingerprint: string, paging: Paging, idKind: IdKind): Promise<string | null> {
  if (paging.startIndex === 1 || paging.count === 0) return null;
  const stored = await env.kv.get(kvKeys.scimPageCursor(env.tokenKey, fingerprint, paging.startIndex).key);
  return stored && isId(idKind, stored) ? stored : null;
}

/** After a full page that is not the last: where the next one starts (one KV write, awaited so the client's next request can find it). */
export async function rememberPage(ctx: Pick<ScimCtx, "kv" | "tokenKey">, fingerprint: string, paging: Paging, ids: string[], total: number): Promise<void> {
  const next = paging.startIndex + ids.length;
  if (paging.count === 0 || ids.length < paging.count || next > total) return;
  const { key, ttl } = kvKeys.scimPageCursor(ctx.tokenKey, fingerprint, next);
  try {
    await ctx.kv.put(key, ids[ids.length - 1]!, { expirationTtl: ttl });
  } catch (err) {
    // Only the next page's cost depends on it: it falls back to OFFSET.
    console.error(JSON.stringify({ level: "warn", msg: "scim page cursor write failed", error: String(err) }));
  }
}

/**
 * The load's statement for totalResults. Unfiltered: the directory's maintained counter
 * (identity_provider_configs.scim_user_count / scim_group_count), exact, one row. Filtered:
 * totalFor over `where` — which, after a cursor, already starts past the previous page, so the
 * count reads at most count+lookahead rows however deep the page.
 */
export function listTotalQuery(
  db: ReadDb,
  dir: ScimScope,
  counter: SQLiteColumn,
  table: SQLiteTable,
  where: SQL,
  paging: Paging,
  keyset: boolean,
  filtered: boolean,
  lookahead?: number,
) {
  if (!filtered)
    return (
      db
        // Aliased: D1 hands rows back as objects, and a column named "0" or "1" would sort first.
        .select({
          n: sql<number>`${counter}`.mapWith(Number).as("n"),
          keyset: sql<number>`0`.mapWith(Number).as("keyset"),
          exact: sql<number>`1`.mapWith(Number).as("exact"),
        })
        .from(identityProviderConfigs)
        .where(eq(identityProviderConfigs.id, dir.configId))
    );
  return totalFor(db, table, where, paging, lookahead, keyset);
}

export type CountedRow = { n: number; keyset: number; exact?: number };

/** totalResults from listTotalQuery's row (an exact counter, or a count that started after a cursor or at the first result). */
export function listTotal(counted: CountedRow[] | undefined, paging: Paging, returned: number): number {
  const row = counted?.[0];
  const n = row?.n ?? 0;
  if (row?.exact) return Math.max(n, paging.offset + returned);
  return totalResults(row?.keyset ? paging.offset + n : n, paging, returned);
}

/** totalResults from totalFor's row and the page actually read (a short page pins it exactly). */
export function totalResults(counted: { n: number }[] | number, paging: Paging, returned: number): number {
  const n = typeof counted === "number" ? counted : (counted[0]?.n ?? 0);
  if (returned > 0 && returned < paging.count) return paging.offset + returned;
  return Math.max(n, returned > 0 ? paging.offset + returned : 0);
}

export function scimList<T>(resources: T[], page: { totalResults: number; startIndex: number; itemsPerPage?: number }) {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: page.totalResults,
    startIndex: page.startIndex,
    itemsPerPage: page.itemsPerPage ?? resources.length,
    Resources: resources,
  };
}

// ---------------------------------------------------------------------------------------------
// attributes / excludedAttributes (RFC 7644 §3.9)

type Tree = Map<string, Tree>; // lower-cased key → children (empty: the whole attribute)

const splitList = (v: string | string[] | undefined | null): string[] =>
  (Array.isArray(v) ? v : typeof v === "string" ? v.split(",") : []).map((s) => s.trim()).filter(Boolean);

/** One requested name → its segments in this resource: extension URN keys kept whole, core URN prefixes dropped. */
function segments(name: string, resource: Record<string, unknown>): string[] | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith("urn:")) {
    for (const key of Object.keys(resource)) {
      const k = key.toLowerCase();
      if (!k.startsWith("urn:")) continue;
      if (lower === k) return [k];
      if (lower.startsWith(`${k}:`)) return [k, ...lower.slice(k.length + 1).split(".")];
    }
    const colon = lower.lastIndexOf(":");
    const urn = lower.slice(0, colon);
    const schemas = Array.isArray(resource.schemas) ? (resource.schemas as unknown[]).map((s) => String(s).toLowerCase()) : [];
    // A core schema's attribute ("urn:…:core:2.0:User:userName"); an absent extension names nothing.
    if (schemas.includes(urn) && !Object.keys(resource).some((k) => k.toLowerCase() === urn)) return lower.slice(colon + 1).split(".");
    return undefined;
  }
  return lower.split(".");
}

function treeOf(names: string[], resource: Record<string, unknown>): Tree {
  const root: Tree = new Map();
  for (const name of names) {
    const segs = segments(name, resource);
    if (!segs || segs.some((s) => !s)) continue;
    let node = root;
    for (let i = 0; i < segs.length; i++) {
      const existing = node.get(segs[i]!);
      // An ancestor asked whole stays whole.
      if (existing && existing.size === 0 && i < segs.length) break;
      if (i === segs.length - 1) {
        node.set(segs[i]!, new Map());
        break;
      }
      const next = existing ?? new Map();
      node.set(segs[i]!, next);
      node = next;
    }
  }
  return root;
}

function include(value: unknown, tree: Tree): unknown {
  if (Array.isArray(value)) return value.map((v) => include(v, tree));
  if (!value || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const sub = tree.get(k.toLowerCase());
    if (!sub) continue;
    out[k] = sub.size === 0 ? v : include(v, sub);
  }
  return out;
}

function exclude(value: unknown, tree: Tree): unknown {
  if (Array.isArray(value)) return value.map((v) => exclude(v, tree));
  if (!value || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const sub = tree.get(k.toLowerCase());
    if (!sub) out[k] = v;
    else if (sub.size > 0) out[k] = exclude(v, sub);
  }
  return out;
}

/**
 * RFC 7644 §3.9: with `attributes`, only those (and `always`) are returned; with
 * `excludedAttributes`, all but those (never `always`). Names are case-insensitive, may be
 * sub-attributes ("name.familyName", "emails.value") and may carry their schema URN.
 * `attributes` wins when both are sent.
 */
export function projectAttributes<T extends Record<string, unknown>>(
  resource: T,
  attributes?: string | string[] | null,
  excludedAttributes?: string | string[] | null,
  always: string[] = ["id", "schemas"],
): Partial<T> {
  const inc = splitList(attributes);
  const exc = splitList(excludedAttributes);
  if (inc.length === 0 && exc.length === 0) return resource;
  const keep = new Set(always.map((a) => a.toLowerCase()));
  const out: Record<string, unknown> = {};
  if (inc.length > 0) {
    const tree = treeOf(inc, resource);
    for (const [k, v] of Object.entries(resource)) {
      const sub = tree.get(k.toLowerCase());
      if (keep.has(k.toLowerCase()) || (sub && sub.size === 0)) out[k] = v;
      else if (sub) {
        const projected = include(v, sub);
        if (projected !== undefined) out[k] = projected;
      }
    }
  } else {
    const tree = treeOf(exc, resource);
    for (const [k, v] of Object.entries(resource)) {
      const sub = tree.get(k.toLowerCase());
      if (keep.has(k.toLowerCase()) || !sub) out[k] = v;
      else if (sub.size > 0) out[k] = exclude(v, sub);
    }
  }
  return out as Partial<T>;
}

// ---------------------------------------------------------------------------------------------
// meta and ETags

/** meta.version and the ETag header: a weak tag of the row's version counter. */
export const etagOf = (version: number) => `W/"${version}"`;

const headerOf = (c: Context | string | null | undefined, name: string) => (typeof c === "string" || c == null ? (c ?? undefined) : c.req.header(name));
const tagsOf = (header: string) =>
  header
    .split(",")
    .map((t) => t.trim().replace(/^W\//i, ""))
    .filter(Boolean);

/** RFC 7644 §3.14: If-Match absent or "*" passes; otherwise it must name the current version, else 412. */
export function checkIfMatch(c: Context | string | null | undefined, version: number): void {
  const header = headerOf(c, "if-match");
  if (header === undefined || header.trim() === "") return;
  const tags = tagsOf(header);
  if (tags.includes("*") || tags.includes(`"${version}"`)) return;
  throw new ScimError(412, `The resource has changed: its version is ${etagOf(version)}, If-Match named ${header.slice(0, 100)}.`);
}

/** True when If-None-Match names the current version: answer 304 with no body. */
export function notModified(c: Context | string | null | undefined, version: number): boolean {
  const header = headerOf(c, "if-none-match");
  if (!header) return false;
  const tags = tagsOf(header);
  return tags.includes("*") || tags.includes(`"${version}"`);
}

export type ScimResourceType = "User" | "Group";

export function scimLocation(config: Pick<Config, "apiBaseUrl"> | string, resourceType: ScimResourceType, id: string): string {
  const base = (typeof config === "string" ? config : config.apiBaseUrl).replace(/\/+$/, "");
  return `${base}/scim/v2/${resourceType}s/${encodeURIComponent(id)}`;
}

export function scimMeta(
  resourceType: ScimResourceType,
  id: string,
  createdMs: number,
  updatedMs: number,
  version: number,
  config: Pick<Config, "apiBaseUrl"> | string,
) {
  return { resourceType, created: iso(createdMs), lastModified: iso(updatedMs), location: scimLocation(config, resourceType, id), version: etagOf(version) };
}

/** The common attribute specs of meta for compileScimFilter (millisecond columns). */
export function metaAttrs(created: SQL | SQLiteColumn, updated: SQL | SQLiteColumn) {
  return {
    "meta.created": { type: "dateTime" as const, column: created },
    "meta.lastmodified": { type: "dateTime" as const, column: updated },
  };
}
