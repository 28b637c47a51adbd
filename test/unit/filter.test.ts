import { describe, expect, it } from "vitest";
import { sqliteTable, text } from "drizzle-orm/sqlite-core";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { compileFilter, parseFilter, parseOrderBy } from "../../src/lib/filter";
import type { ApiError } from "../../src/lib/errors";

const t = sqliteTable("t", { name: text("name"), role: text("role"), email: text("email") });
const dialect = new SQLiteSyncDialect();
const render = (sql: ReturnType<typeof compileFilter>) => (sql ? dialect.sqlToQuery(sql) : undefined);
const FIELDS = {
  name: { kind: "string" as const, column: t.name },
  role: { kind: "enum" as const, column: t.role, values: ["admin", "user"] },
  email: { kind: "string" as const, column: t.email, lowercase: true },
};

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as ApiError).code;
  }
  return "no error";
};

describe("happy", () => {
  it("parses comparisons joined by AND, with escapes", () => {
    expect(parseFilter(`name = "Ac\\"me" AND role != "admin" AND email:"Jo"`)).toEqual([
      { field: "name", op: "=", value: 'Ac"me' },
      { field: "role", op: "!=", value: "admin" },
      { field: "email", op: ":", value: "Jo" },
    ]);
    expect(parseFilter("   ")).toEqual([]);
    expect(parseFilter("active = true")).toEqual([{ field: "active", op: "=", value: true }]);
  });

  it("compiles to parameterised SQL; prefix matches escape LIKE wildcards; lower-cased fields compare lower-cased", () => {
    const q = render(compileFilter(parseFilter(`name:"50%_off" AND email = "Ada@X.io"`), FIELDS))!;
    expect(q.sql).toBe(`("t"."name" like ? escape '\\' and "t"."email" = ?)`);
    expect(q.params).toEqual(["50\\%\\_off%", "ada@x.io"]);
  });

  it("parses order_by with directions and falls back to the default", () => {
    const fields = { name: t.name, email: t.email };
    expect(parseOrderBy("name desc, email", fields, []).names).toEqual([
      { field: "name", desc: true },
      { field: "email", desc: false },
    ]);
    expect(parseOrderBy(undefined, fields, [{ field: "email", desc: true }]).names).toEqual([{ field: "email", desc: true }]);
  });
});

describe("errors", () => {
  it.each([[`name = Acme`], [`name ~ "x"`], [`name = "x" OR role = "user"`], [`name = "unterminated`], [`= "x"`], [`name = "x" AND`]])(
    "refuses %s as invalid_filter",
    (input) => {
      expect(code(() => compileFilter(parseFilter(input), FIELDS))).toBe("invalid_filter");
    },
  );

  it("refuses unknown fields, wrong operators and values outside an enum", () => {
    expect(code(() => compileFilter(parseFilter(`nope = "x"`), FIELDS))).toBe("invalid_filter");
    expect(code(() => compileFilter(parseFilter(`role:"ad"`), FIELDS))).toBe("invalid_filter");
    expect(code(() => compileFilter(parseFilter(`role = "owner"`), FIELDS))).toBe("invalid_filter");
    expect(code(() => compileFilter(parseFilter(`name = true`), FIELDS))).toBe("invalid_filter");
  });

  it("does not treat prototype keys as fields", () => {
    expect(code(() => compileFilter(parseFilter(`constructor = "x"`), FIELDS))).toBe("invalid_filter");
    expect(code(() => parseOrderBy("constructor", { name: t.name }, []))).toBe("invalid_order_by");
  });

  it.each([["name sideways"], ["nope"], ["name, name desc"], ["name;drop"]])("refuses order_by %s", (input) => {
    expect(code(() => parseOrderBy(input, { name: t.name }, []))).toBe("invalid_order_by");
  });
});
