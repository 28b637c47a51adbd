import { and, eq, gt, lt, or, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { z } from "@hono/zod-openapi";
import { hmacBase64Url, timingSafeEqual } from "./crypto";
import { fromBase64Url, toBase64Url, utf8 } from "./encoding";
import { ApiError } from "./errors";
import { parseFilter, parseOrderNames, type OrderName, type SortKey } from "./filter";

export type { SortKey };

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

const PAGE_SIZE_MESSAGE = `must be an integer between 1 and ${MAX_PAGE_SIZE}`;

/**
 * `page_size` (default 50; above 1000 is coerced to 1000; 0 or negative is 400) and `page_token`.
 * A parameter that is sent is judged as sent: `page_size=` is as wrong as `page_size=abc`, so a
 * client that builds the query from an unset variable hears about it instead of getting 50 rows.
 */
export const PageQuery = z.object({
  page_size: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return DEFAULT_PAGE_SIZE;
      if (!/^-?\d+$/.test(v)) {
        ctx.addIssue({ code: "custom", message: PAGE_SIZE_MESSAGE });
        return z.NEVER;
      }
      const n = Number(v);
      if (n < 1) {
        ctx.addIssue({ code: "custom", message: "must be at least 1" });
        return z.NEVER;
      }
      return Math.min(n, MAX_PAGE_SIZE);
    })
    .openapi({
      param: { name: "page_size", in: "query" },
      type: "integer",
      minimum: 1,
      default: DEFAULT_PAGE_SIZE,
      description: `An integer of at least 1, default ${DEFAULT_PAGE_SIZE}. Larger than ${MAX_PAGE_SIZE} is not an error: the page holds at most ${MAX_PAGE_SIZE}. Empty (\`page_size=\`) is 400 like any other non-integer.`,
    }),
  page_token: z
    .string()
    .max(2048)
    .optional()
    .openapi({ param: { name: "page_token", in: "query" }, description: "The `next_page_token` of the previous page; empty means the first page." }),
});

/**
 * The `filter` parameter of a list; `description` names its fields and operators. Fields, values
 * and operators are judged by the list's service against its column map (compileFilter).
 */
export const filterParam = (description: string, example?: string) =>
  z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description: `AIP-160 subset (see Pagination and filters). ${description}`,
      ...(example ? { example } : {}),
    });

/** `filter` on a list with no filterable fields: accepted for the one list contract, empty only. */
export const noFilterParam = () =>
  z
    .string()
    .max(1024)
    .optional()
    .superRefine((v) => {
      const [term] = v ? parseFilter(v) : [];
      if (term) throw new ApiError("invalid_filter", `Unknown filter field \`${term.field}\`: this list has no filterable fields.`);
    })
    .openapi({ param: { name: "filter", in: "query" }, description: "This list has no filterable fields; only an empty filter is accepted." });

/**
 * The `order_by` parameter of a list (AIP-132), checked against `fields` before anything is read.
 * `only`: the list has one order (its keyset index allows no other), which `order_by` may name.
 */
export function orderByParam(spec: { fields: readonly string[]; default: string; only?: boolean; note?: string }) {
  const fallback = parseOrderNames(spec.default, spec.fields, []);
  const same = (a: OrderName[], b: OrderName[]) => a.length === b.length && a.every((n, i) => n.field === b[i]!.field && n.desc === b[i]!.desc);
  const listed = spec.fields.map((f) => `\`${f}\``).join(", ");
  const description = spec.only
    ? `This list has one order, \`${spec.default}\`; \`order_by\` may name it and nothing else.`
    : `${listed}, each optionally \` desc\`, comma-separated; default \`${spec.default}\`.`;
  return z
    .string()
    .max(256)
    .optional()
    .superRefine((v) => {
      const names = parseOrderNames(v, spec.fields, fallback);
      if (spec.only && !same(names, fallback)) throw new ApiError("invalid_order_by", `This list is ordered by \`${spec.default}\` only.`);
    })
    .openapi({ param: { name: "order_by", in: "query" }, description: [description, spec.note].filter(Boolean).join(" "), example: spec.default });
}

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), next_page_token: z.string().openapi({ description: "Empty when there are no more pages." }) });

export type KeyValue = string | number | boolean | null;

/**
 * Page tokens are `base64url(JSON).hmac`: the position of the last row plus a fingerprint of the
 * query (route, filter, order_by, …). A forged position or a token replayed with another query
 * is a 400, never a silently different page.
 */
export async function encodePageToken(secret: string, query: string, keys: KeyValue[]): Promise<string> {
  const body = toBase64Url(utf8(JSON.stringify({ q: query, k: keys })));
  const sig = await hmacBase64Url(secret, `page:${body}`);
  return `${body}.${sig}`;
}

export async function decodePageToken(secret: string, query: string, token: string, arity: number): Promise<KeyValue[]> {
  const bad = () => new ApiError("invalid_page_token", "The page_token is malformed, forged, or was issued for a different filter or order_by.");
  const [body, sig, ...rest] = token.split(".");
  if (!body || !sig || rest.length > 0) throw bad();
  const expected = await hmacBase64Url(secret, `page:${body}`);
  if (!timingSafeEqual(sig, expected)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(fromBase64Url(body)));
  } catch {
    throw bad();
  }
  const p = parsed as { q?: unknown; k?: unknown };
  if (p.q !== query || !Array.isArray(p.k) || p.k.length !== arity) throw bad();
  return p.k as KeyValue[];
}

/**
 * Rows strictly after `values` in the order given by `keys` (the last key must be unique).
 * Same-direction keys use a row-value comparison, which SQLite answers with an index range;
 * mixed directions fall back to the expanded OR form.
 */
export function keysetAfter(keys: SortKey[], values: KeyValue[]): SQL {
  const allSame = keys.every((k) => k.desc === keys[0]!.desc);
  if (allSame) {
    const cols = sql.join(
      keys.map((k) => sql`${k.column}`),
      sql`, `,
    );
    const vals = sql.join(
      values.map((v) => sql`${v}`),
      sql`, `,
    );
    return keys[0]!.desc ? sql`(${cols}) < (${vals})` : sql`(${cols}) > (${vals})`;
  }
  const branches: SQL[] = [];
  for (let i = 0; i < keys.length; i++) {
    const eqs = keys.slice(0, i).map((k, j) => eq(k.column as SQLiteColumn, values[j]));
    const k = keys[i]!;
    const cmp = k.desc ? lt(k.column as SQLiteColumn, values[i]) : gt(k.column as SQLiteColumn, values[i]);
    branches.push(and(...eqs, cmp)!);
  }
  return or(...branches)!;
}

export function orderBy(keys: SortKey[]): SQL[] {
  return keys.map((k) => (k.desc ? sql`${k.column} desc` : sql`${k.column} asc`));
}

/**
 * Given rows fetched with `limit pageSize + 1`, returns the page and the token for the next one.
 */
export async function finishPage<Row>(
  secret: string,
  query: string,
  rows: Row[],
  pageSize: number,
  keyOf: (row: Row) => KeyValue[],
): Promise<{ rows: Row[]; nextPageToken: string }> {
  if (rows.length <= pageSize) return { rows, nextPageToken: "" };
  const page = rows.slice(0, pageSize);
  return { rows: page, nextPageToken: await encodePageToken(secret, query, keyOf(page[page.length - 1]!)) };
}

/**
 * The query of a list with no filterable fields and one order (`order`, e.g. `created_at desc`):
 * small per-organization collections walked by one index, kept to the one list contract.
 */
export const plainListQuery = (order: string, note?: string) =>
  PageQuery.extend({ filter: noFilterParam(), order_by: orderByParam({ fields: [order.split(" ")[0]!], default: order, only: true, note }) });
