import { getTableName, sql } from "drizzle-orm";
import { integer, text, type SQLiteColumn } from "drizzle-orm/sqlite-core";

/** Milliseconds since the epoch: integers sort and compare cheaply in keyset conditions. */
export const ms = (name: string) => integer(name, { mode: "number" });
export const bool = (name: string) => integer(name, { mode: "boolean" });
export const json = <T>(name: string) => text(name, { mode: "json" }).$type<T>();

export const timestamps = {
  createdAt: ms("created_at").notNull(),
  updatedAt: ms("updated_at").notNull(),
};

/**
 * A column of the outer row, table-qualified, for use inside a correlated subquery. Drizzle prints
 * `${table.column}` unqualified in the select list of a single-table query, and inside a subquery
 * SQLite binds a bare name to the subquery's own table first: `r.organization_id =
 * "organization_id"` compares a role's column with itself, and matches every organization.
 */
export const outer = (column: SQLiteColumn) => sql`${sql.identifier(getTableName(column.table))}.${sql.identifier(column.name)}`;
