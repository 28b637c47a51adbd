import { integer, text } from "drizzle-orm/sqlite-core";

/** Milliseconds since the epoch: integers sort and compare cheaply in keyset conditions. */
export const ms = (name: string) => integer(name, { mode: "number" });
export const bool = (name: string) => integer(name, { mode: "boolean" });
export const json = <T>(name: string) => text(name, { mode: "json" }).$type<T>();

export const timestamps = {
  createdAt: ms("created_at").notNull(),
  updatedAt: ms("updated_at").notNull(),
};
