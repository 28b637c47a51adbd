/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import * as schema from "../../src/db/schema";
import { isTable } from "drizzle-orm";

/**
 * Drizzle prints `${table.column}` unqualified in the select list of a one-table query, and inside
 * a subquery SQLite binds a bare name to the subquery's own table first. That is how a custom
 * role's permissions were once read from any organization's role of the same name. So inside a
 * subquery written as SQL text, a column of the outer row is always `${outer(table.column)}`; a
 * bare `${table.column}` is allowed only for the subquery's own table (`from ${table}`).
 */
const sources = import.meta.glob("../../src/**/*.ts", { query: "?raw", import: "default", eager: true }) as Record<string, string>;
const tableNames = new Set(
  Object.entries(schema)
    .filter(([, v]) => isTable(v))
    .map(([k]) => k),
);

/** Every `sql` template literal's text, with its line. */
function templates(source: string): { body: string; line: number }[] {
  const out: { body: string; line: number }[] = [];
  const start = /sql(?:<[^`]*?>)?`/g;
  for (let m = start.exec(source); m; m = start.exec(source)) {
    let i = m.index + m[0].length;
    let depth = 0;
    for (; i < source.length; i++) {
      if (source[i] === "$" && source[i + 1] === "{") {
        depth++;
        i++;
      } else if (source[i] === "}" && depth > 0) depth--;
      else if (source[i] === "`" && depth === 0) break;
    }
    out.push({ body: source.slice(m.index + m[0].length, i), line: source.slice(0, m.index).split("\n").length });
  }
  return out;
}

/** The text of each parenthesized subquery `(select …)`, balanced. */
function subqueries(body: string): string[] {
  const out: string[] = [];
  const open = /\(\s*select\b/gi;
  for (let m = open.exec(body); m; m = open.exec(body)) {
    let depth = 0;
    let i = m.index;
    for (; i < body.length; i++) {
      if (body[i] === "(") depth++;
      else if (body[i] === ")" && --depth === 0) break;
    }
    out.push(body.slice(m.index, i + 1));
  }
  return out;
}

describe("correlated subqueries name the outer row qualified", () => {
  it("no bare ${table.column} of another table inside a subquery", () => {
    const offenders: string[] = [];
    for (const [file, source] of Object.entries(sources)) {
      for (const { body, line } of templates(source)) {
        for (const sub of subqueries(body)) {
          const own = new Set([...sub.matchAll(/\bfrom\s+\$\{(\w+)\}/g)].map((m) => m[1]));
          for (const m of sub.matchAll(/\$\{(\w+)\.\w+\}/g)) {
            if (tableNames.has(m[1]!) && !own.has(m[1]!)) offenders.push(`${file}:${line}: ${m[0]}`);
          }
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it("finds the mistake it guards against", () => {
    const bad = "sql`(select r.permissions from roles r where r.organization_id = ${members.organizationId})`";
    const subs = templates(bad).flatMap((t) => subqueries(t.body));
    expect(subs.join()).toContain("${members.organizationId}");
    expect(Object.keys(sources).length).toBeGreaterThan(50);
  });
});
