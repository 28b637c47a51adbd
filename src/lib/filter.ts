import { and, eq, gt, gte, lt, lte, ne, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { ApiError } from "./errors";

/**
 * The AIP-160 subset every list accepts:
 *   expr  := term ("AND" term)*
 *   term  := field ("=" | "!=" | ":" | "<" | "<=" | ">" | ">=") value
 *   value := "double-quoted string" (\" and \\ escape) | true | false
 * `=` and `!=` are exact; `field:"v"` is a case-insensitive prefix match; the comparisons apply to
 * timestamp fields only (an RFC 3339 value, e.g. `created_at >= "2025-01-01T00:00:00Z"`).
 */
export type FilterOp = "=" | "!=" | ":" | "<" | "<=" | ">" | ">=";
const COMPARISONS = ["<=", ">=", "<", ">"] as const;
export interface FilterTerm {
  field: string;
  op: FilterOp;
  value: string | boolean;
}

const invalid = (detail: string) => new ApiError("invalid_filter", detail);

export function parseFilter(input: string): FilterTerm[] {
  const s = input;
  let i = 0;
  const terms: FilterTerm[] = [];
  const ws = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const expectTerm = () => {
    ws();
    const start = i;
    while (i < s.length && /[A-Za-z0-9_.]/.test(s[i]!)) i++;
    const field = s.slice(start, i);
    if (!field) throw invalid(`Expected a field name at position ${start + 1}, e.g. name = "Acme".`);
    ws();
    let op: FilterOp;
    const comparison = COMPARISONS.find((c) => s.startsWith(c, i));
    if (s.startsWith("!=", i)) {
      op = "!=";
      i += 2;
    } else if (comparison) {
      op = comparison;
      i += comparison.length;
    } else if (s[i] === "=" || s[i] === ":") {
      op = s[i] as FilterOp;
      i += 1;
    } else {
      throw invalid(`Expected =, != or : (or <, <=, >, >= on a timestamp) after \`${field}\` at position ${i + 1}.`);
    }
    ws();
    let value: string | boolean;
    if (s[i] === '"') {
      i++;
      let out = "";
      let closed = false;
      while (i < s.length) {
        const ch = s[i]!;
        if (ch === "\\" && i + 1 < s.length) {
          out += s[i + 1];
          i += 2;
          continue;
        }
        if (ch === '"') {
          closed = true;
          i++;
          break;
        }
        out += ch;
        i++;
      }
      if (!closed) throw invalid(`Unterminated string value for \`${field}\`.`);
      value = out;
    } else {
      const start = i;
      while (i < s.length && /[A-Za-z]/.test(s[i]!)) i++;
      const word = s.slice(start, i);
      if (word === "true" || word === "false") value = word === "true";
      else throw invalid(`Expected a double-quoted value for \`${field}\` at position ${start + 1}, e.g. ${field} = "value".`);
    }
    terms.push({ field, op, value });
  };
  ws();
  if (i >= s.length) return [];
  expectTerm();
  for (;;) {
    ws();
    if (i >= s.length) break;
    // AND followed by a space, or ending the input (then expectTerm reports the missing term).
    if (s.startsWith("AND", i) && (i + 3 === s.length || /\s/.test(s[i + 3]!))) {
      i += 3;
      expectTerm();
      continue;
    }
    throw invalid(`Expected AND or the end of the filter at position ${i + 1}; only AND is supported.`);
  }
  if (terms.length > 10) throw invalid("At most 10 terms may be combined.");
  return terms;
}

export interface FilterField {
  /** `timestamp`: an integer column of epoch milliseconds, compared with an RFC 3339 value. */
  kind: "string" | "enum" | "boolean" | "timestamp";
  column?: SQLiteColumn | SQL;
  values?: readonly string[];
  /** Values are stored lower-cased (emails): compare lower-cased. */
  lowercase?: boolean;
  ops?: readonly FilterOp[];
  /** Builds the condition for a prefix (`:`) match when the default LIKE is not good enough. */
  prefix?: (value: string) => SQL;
}

const escapeLike = (v: string) => v.replace(/[\\%_]/g, (m) => `\\${m}`);

/** Case-insensitive prefix match; SQLite's LIKE folds ASCII case. */
export const likePrefix = (column: SQLiteColumn | SQL, value: string) => sql`${column} like ${`${escapeLike(value)}%`} escape '\\'`;

const COMPARE = { "<": lt, "<=": lte, ">": gt, ">=": gte } as const;

// RFC 3339 with an explicit offset: a bare date or local time would be read in an unstated zone.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** Epoch ms of an RFC 3339 time. Checked field by field: Date.parse rolls "02-30" over into March. */
function timestampOf(field: string, value: string): number {
  const m = RFC3339.exec(value);
  const [y, mo, d, h, mi, s, , oh = 0, om = 0] = (m ?? []).slice(1).map((x) => (x === undefined ? undefined : Number(x)));
  const valid =
    m && mo! >= 1 && mo! <= 12 && d! >= 1 && d! <= new Date(Date.UTC(y!, mo!, 0)).getUTCDate() && h! <= 23 && mi! <= 59 && s! <= 59 && oh! <= 23 && om! <= 59;
  if (!valid) throw invalid(`\`${field}\` takes an RFC 3339 time with an offset, e.g. "2025-01-31T00:00:00Z".`);
  return Date.parse(value.toUpperCase().replace(" ", "T"));
}

export function compileFilter(terms: FilterTerm[], fields: Record<string, FilterField>): SQL | undefined {
  const conds: SQL[] = [];
  const names = Object.keys(fields).join(", ");
  for (const t of terms) {
    const f = Object.hasOwn(fields, t.field) ? fields[t.field] : undefined;
    if (!f) throw invalid(`Unknown filter field \`${t.field}\`; filterable fields: ${names}.`);
    const ops = f.ops ?? (f.kind === "string" ? ["=", "!=", ":"] : f.kind === "timestamp" ? ["<", "<=", ">", ">="] : ["=", "!="]);
    if (!ops.includes(t.op)) throw invalid(`\`${t.field}\` supports ${ops.map((o) => `\`${o}\``).join(", ")} only.`);
    if (f.kind === "boolean") {
      if (typeof t.value !== "boolean") throw invalid(`\`${t.field}\` takes true or false.`);
    } else if (typeof t.value !== "string") {
      throw invalid(`\`${t.field}\` takes a double-quoted string.`);
    }
    if (f.kind === "enum" && !f.values!.includes(t.value as string)) {
      // Custom role names are open-ended; enum fields list their closed set of values.
      throw invalid(`\`${t.field}\` must be one of: ${f.values!.join(", ")}.`);
    }
    if (typeof t.value === "string" && t.value.length > 256) throw invalid(`The value for \`${t.field}\` is longer than 256 characters.`);
    if (f.kind === "timestamp") {
      conds.push(COMPARE[t.op as (typeof COMPARISONS)[number]](f.column! as SQLiteColumn, timestampOf(t.field, t.value as string)));
      continue;
    }
    const value = typeof t.value === "string" && f.lowercase ? t.value.toLowerCase() : t.value;
    if (t.op === ":") {
      conds.push(f.prefix ? f.prefix(value as string) : likePrefix(f.column!, value as string));
    } else {
      const col = f.column! as SQLiteColumn;
      conds.push(t.op === "=" ? eq(col, value) : ne(col, value));
    }
  }
  return conds.length ? and(...conds) : undefined;
}

export interface OrderName {
  field: string;
  desc: boolean;
}

/**
 * AIP-132 order_by: `field[ desc][, field[ desc]]…` over an allow-list of field names; empty or
 * absent is `fallback`.
 */
/** One column of a list's order; pagination.ts builds keyset conditions from a list of them. */
export interface SortKey {
  column: SQLiteColumn | SQL;
  desc: boolean;
}

export function parseOrderNames(input: string | undefined, fields: readonly string[], fallback: OrderName[]): OrderName[] {
  if (input === undefined || input.trim() === "") return fallback;
  const names: OrderName[] = [];
  for (const part of input.split(",")) {
    const m = /^\s*([a-z_][a-z_.]*)(?:\s+(asc|desc))?\s*$/i.exec(part);
    if (!m) throw new ApiError("invalid_order_by", `Cannot parse \`${part.trim()}\`; expected \`field\` or \`field desc\`.`);
    const field = m[1]!;
    if (!fields.includes(field)) throw new ApiError("invalid_order_by", `Cannot order by \`${field}\`; sortable fields: ${fields.join(", ")}.`);
    if (names.some((n) => n.field === field)) throw new ApiError("invalid_order_by", `\`${field}\` appears twice.`);
    names.push({ field, desc: m[2]?.toLowerCase() === "desc" });
  }
  return names;
}

/** parseOrderNames, mapped to the columns of `fields`. The caller appends its unique tiebreaker so the keyset is total. */
export function parseOrderBy(
  input: string | undefined,
  fields: Record<string, SQLiteColumn | SQL>,
  fallback: OrderName[],
): { keys: SortKey[]; names: OrderName[] } {
  const names = parseOrderNames(input, Object.keys(fields), fallback);
  return { keys: names.map((n) => ({ column: fields[n.field]!, desc: n.desc })), names };
}
