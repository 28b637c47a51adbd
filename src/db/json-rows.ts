import { sql } from "drizzle-orm";

/**
 * Rows passed as one JSON parameter and read as a table named `alias`: D1 allows 100 bound
 * parameters per statement and counts every statement of a batch against a per-request limit, so
 * a multi-row change sends its rows this way, one statement whatever their number. Column names
 * are the first row's keys, which callers define in code (never from input).
 */
export function jsonRows(rows: Record<string, unknown>[], alias: string) {
  const columns = Object.keys(rows[0] ?? {});
  return sql`(select ${sql.raw(columns.map((c) => `json_extract(value, '$.${c}') as ${c}`).join(", "))} from json_each(${JSON.stringify(rows)})) ${sql.raw(alias)}`;
}
