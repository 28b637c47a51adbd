import { Column, is, sql, type SQL } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { outer } from "../db/schema/columns";
import { ScimError } from "./errors";

/**
 * SCIM filters (RFC 7644 §3.4.2.2) → an AST → parameterized drizzle SQL. Values only ever reach
 * SQL as bound parameters; attribute names only select an `AttrSpec` the route declared.
 *
 *   parseScimFilter(text): FilterNode            throws ScimError(400, …, "invalidFilter")
 *   compileScimFilter(node, attrs): SQL          throws ScimError(400, …, "invalidFilter")
 *   scimFilterSql(text | undefined, attrs)       both at once; undefined/blank → undefined
 *
 * Grammar (operators, keywords and attribute names case-insensitive):
 *   filter   := or
 *   or       := and ("or" and)*                     and binds tighter than or
 *   and      := unary ("and" unary)*
 *   unary    := "not" "(" filter ")" | "(" filter ")" | attrExp | valuePath
 *   attrExp  := path "pr" | path op value
 *   valuePath:= attr "[" valFilter "]" [ "." sub (op value | "pr") ]
 *   path     := [urn ":"] attr ["." sub]            e.g. name.familyName, meta.lastModified,
 *                                                  urn:ietf:params:scim:schemas:core:2.0:User:userName
 *   op       := eq ne co sw ew gt ge lt le
 *   value    := JSON string | number | true | false | null
 * `emails[type eq "work"].value eq "a@b.c"` (the PATCH path form followed by a comparison) is
 * accepted as "some email of type work has that value".
 *
 * `attrs` is keyed by the lower-cased attribute path as the client may write it ("username",
 * "name.familyname", "meta.lastmodified", "emails"); a core-schema URN prefix is dropped, an
 * extension's is kept ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department").
 * A multi-valued attribute is one key with `multi`; its sub-attributes ("emails.value",
 * `emails[value co "x"]`, bare "emails" = its default sub "value") are judged per element inside
 * one EXISTS. Helpers: `jsonField(column, "$.name.familyName")`, `jsonMulti(column, "$.emails",
 * {value: {type: "string"}, …})`, `scimDateTime(text)`.
 *
 * Semantics: a missing attribute matches no comparison but does match its negation (`not`, `ne`),
 * so `not (title eq "x")` includes people without a title. caseExact false compares lower-cased
 * (SQLite's lower() folds ASCII only; declare `folded: true` for a column that already stores
 * the JS-lower-cased value, e.g. user_name_key, so the index serves `eq`/`sw`). dateTime literals
 * are RFC 3339 and compare with millisecond columns. Limits: 4 KiB of text, 100 nodes, 16 levels.
 */

export type CompareOp = "eq" | "ne" | "co" | "sw" | "ew" | "gt" | "ge" | "lt" | "le";
export type FilterValue = string | number | boolean | null;

export interface FilterPath {
  /** Lower-cased key into `attrs`: "username", "name.familyname", "emails", an extension's "urn:…:department". */
  attr: string;
  /** Lower-cased sub-attribute of a multi-valued attribute ("value" in "emails.value"), if any. */
  sub?: string;
  /** As written, for error messages. */
  text: string;
}

export type FilterNode =
  | { kind: "compare"; path: FilterPath; op: CompareOp; value: FilterValue }
  | { kind: "present"; path: FilterPath }
  | { kind: "and" | "or"; left: FilterNode; right: FilterNode }
  | { kind: "not"; expr: FilterNode }
  /** `attr[filter]`: some element of the multi-valued attribute matches `filter` (paths inside are subs). */
  | { kind: "valuePath"; attr: string; text: string; filter: FilterNode };

export type AttrType = "string" | "boolean" | "dateTime" | "integer" | "decimal";

export interface AttrSpec {
  type: AttrType;
  /** The SQL value of a single-valued attribute (a column, `jsonField(...)`, or any SQL expression). */
  column?: SQL | SQLiteColumn;
  /** RFC 7643 caseExact; default false for strings (compare lower-cased). */
  caseExact?: boolean;
  /** The column already holds the lower-cased value: compare it bare, so its index applies. */
  folded?: boolean;
  /** A multi-valued attribute: judged element by element inside one EXISTS. */
  multi?: MultiSpec;
}

export interface MultiSpec {
  /** Wraps a condition on one element: `exists (select 1 from … el where <owner matches> and ${cond})`. */
  exists: (cond: SQL) => SQL;
  /** The element's sub-attributes, lower-cased keys ("value", "type", "primary", "display"). */
  sub: Record<string, AttrSpec>;
  /** The sub-attribute a bare `emails eq "x"` means; default "value". */
  defaultSub?: string;
}

export const FILTER_MAX_LENGTH = 4096;
export const FILTER_MAX_NODES = 100;
export const FILTER_MAX_DEPTH = 16;

const invalid = (detail: string) => new ScimError(400, detail, "invalidFilter");
const OPS = new Set<string>(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]);
const CORE_URN = /^urn:ietf:params:scim:schemas:core:2\.0:(user|group)$/i;

// ---------------------------------------------------------------------------------------------
// Lexer

type Tok =
  | { t: "(" | ")" | "[" | "]"; at: number }
  | { t: "word"; v: string; at: number } // attribute path, keyword or operator
  | { t: "sub"; v: string; at: number } // ".value" right after "]"
  | { t: "value"; v: FilterValue; at: number };

function lex(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i]!;
    if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") {
      i++;
    } else if (ch === "(" || ch === ")" || ch === "[" || ch === "]") {
      out.push({ t: ch, at: i });
      i++;
      if (ch === "]" && s[i] === ".") {
        const m = /^\.([A-Za-z$][A-Za-z0-9_$-]*)/.exec(s.slice(i));
        if (!m) throw invalid(`Expected a sub-attribute name after "]." at position ${i + 1}.`);
        out.push({ t: "sub", v: m[1]!, at: i });
        i += m[0].length;
      }
    } else if (ch === '"') {
      const start = i;
      i++;
      while (i < s.length && s[i] !== '"') i += s[i] === "\\" ? 2 : 1;
      if (i >= s.length) throw invalid(`Unterminated string starting at position ${start + 1}.`);
      i++;
      let v: unknown;
      try {
        v = JSON.parse(s.slice(start, i));
      } catch {
        throw invalid(`Invalid string escape in the string at position ${start + 1}.`);
      }
      out.push({ t: "value", v: v as string, at: start });
    } else if (ch === "-" || (ch >= "0" && ch <= "9")) {
      const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(s.slice(i));
      if (!m) throw invalid(`Invalid number at position ${i + 1}.`);
      out.push({ t: "value", v: Number(m[0]), at: i });
      i += m[0].length;
    } else if (/[A-Za-z$]/.test(ch)) {
      const m = /^[A-Za-z0-9_$:.-]+/.exec(s.slice(i))!;
      const word = m[0];
      const lower = word.toLowerCase();
      if (lower === "true" || lower === "false") out.push({ t: "value", v: lower === "true", at: i });
      else if (lower === "null") out.push({ t: "value", v: null, at: i });
      else out.push({ t: "word", v: word, at: i });
      i += word.length;
    } else {
      throw invalid(`Unexpected character ${JSON.stringify(ch)} at position ${i + 1}.`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser (recursive descent)

export function parseScimFilter(text: string): FilterNode {
  if (typeof text !== "string" || !text.trim()) throw invalid("The filter is empty.");
  if (text.length > FILTER_MAX_LENGTH) throw invalid(`The filter is longer than ${FILTER_MAX_LENGTH} characters.`);
  const toks = lex(text);
  let p = 0;
  let nodes = 0;
  const count = <N extends FilterNode>(n: N): N => {
    if (++nodes > FILTER_MAX_NODES) throw invalid(`The filter has more than ${FILTER_MAX_NODES} terms.`);
    return n;
  };
  const peek = () => toks[p];
  const where = () => (p < toks.length ? `at position ${toks[p]!.at + 1}` : "at the end of the filter");
  const isWord = (tok: Tok | undefined, w: string) => tok?.t === "word" && tok.v.toLowerCase() === w;

  const orExpr = (depth: number, inBrackets: boolean): FilterNode => {
    if (depth > FILTER_MAX_DEPTH) throw invalid(`The filter nests deeper than ${FILTER_MAX_DEPTH} levels.`);
    let left = andExpr(depth, inBrackets);
    while (isWord(peek(), "or")) {
      p++;
      left = count({ kind: "or", left, right: andExpr(depth, inBrackets) });
    }
    return left;
  };
  const andExpr = (depth: number, inBrackets: boolean): FilterNode => {
    let left = unary(depth, inBrackets);
    while (isWord(peek(), "and")) {
      p++;
      left = count({ kind: "and", left, right: unary(depth, inBrackets) });
    }
    return left;
  };
  const group = (depth: number, inBrackets: boolean): FilterNode => {
    if (peek()?.t !== "(") throw invalid(`Expected "(" ${where()}.`);
    p++;
    const inner = orExpr(depth + 1, inBrackets);
    if (peek()?.t !== ")") throw invalid(`Expected ")" ${where()}.`);
    p++;
    return inner;
  };
  const unary = (depth: number, inBrackets: boolean): FilterNode => {
    const tok = peek();
    if (!tok) throw invalid(`Expected an expression ${where()}.`);
    if (isWord(tok, "not") && toks[p + 1]?.t === "(") {
      p++;
      return count({ kind: "not", expr: group(depth, inBrackets) });
    }
    if (tok.t === "(") return group(depth, inBrackets);
    if (tok.t !== "word") throw invalid(`Expected an attribute name ${where()}.`);
    p++;
    if (peek()?.t === "[") {
      if (inBrackets) throw invalid(`Value filters cannot nest (${tok.v}[…] inside […]).`);
      const attr = attrPath(tok.v, tok.at, false);
      if (attr.sub) throw invalid(`"${tok.v}[…]": a value filter applies to a multi-valued attribute, not to a sub-attribute.`);
      p++;
      const filter = orExpr(depth + 1, true);
      if (peek()?.t !== "]") throw invalid(`Expected "]" ${where()}.`);
      p++;
      const sub = peek();
      if (sub?.t !== "sub") return count({ kind: "valuePath", attr: attr.attr, text: tok.v, filter });
      p++;
      // attr[filter].sub op value: some element matching `filter` whose `sub` compares.
      const subPath: FilterPath = { attr: sub.v.toLowerCase(), text: `${tok.v}[…].${sub.v}` };
      const cmp = comparison(subPath);
      return count({ kind: "valuePath", attr: attr.attr, text: tok.v, filter: count({ kind: "and", left: filter, right: cmp }) });
    }
    return comparison(attrPath(tok.v, tok.at, inBrackets));
  };
  const comparison = (path: FilterPath): FilterNode => {
    const opTok = peek();
    if (opTok?.t !== "word") throw invalid(`Expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after "${path.text}" ${where()}.`);
    const op = opTok.v.toLowerCase();
    p++;
    if (op === "pr") return count({ kind: "present", path });
    if (!OPS.has(op)) throw invalid(`Unknown operator "${opTok.v}" after "${path.text}"; use eq, ne, co, sw, ew, gt, ge, lt, le or pr.`);
    const val = peek();
    if (val?.t !== "value") throw invalid(`Expected a value (a "string", number, true, false or null) after "${path.text} ${op}" ${where()}.`);
    p++;
    return count({ kind: "compare", path, op: op as CompareOp, value: val.v });
  };

  const node = orExpr(0, false);
  if (p < toks.length) throw invalid(`Unexpected ${describe(toks[p]!)} at position ${toks[p]!.at + 1}; join expressions with "and" / "or".`);
  return node;
}

function describe(tok: Tok): string {
  return tok.t === "word" || tok.t === "sub" ? `"${tok.v}"` : tok.t === "value" ? `value ${JSON.stringify(tok.v)}` : `"${tok.t}"`;
}

/** `[urn:]attr[.sub]` → a lower-cased key; inside brackets the path is an element's sub-attribute. */
function attrPath(word: string, at: number, inBrackets: boolean): FilterPath {
  let urn = "";
  let rest = word;
  const colon = word.lastIndexOf(":");
  if (colon >= 0) {
    if (inBrackets || !/^urn:/i.test(word)) throw invalid(`Invalid attribute path "${word}" at position ${at + 1}.`);
    urn = word.slice(0, colon);
    rest = word.slice(colon + 1);
  }
  const parts = rest.split(".");
  const nameOk = (n: string) => /^[A-Za-z$][A-Za-z0-9_$-]*$/.test(n);
  if (parts.length > 2 || !parts.every(nameOk) || (inBrackets && parts.length > 1)) throw invalid(`Invalid attribute path "${word}" at position ${at + 1}.`);
  const base = CORE_URN.test(urn) || !urn ? "" : `${urn.toLowerCase()}:`;
  return { attr: base + rest.toLowerCase(), text: word };
}

// ---------------------------------------------------------------------------------------------
// Compiler

/**
 * The SQL condition for `node` over the attributes a route declares. Negation is pushed down to
 * the leaves (De Morgan) so each negated comparison can say "or the attribute is missing", and
 * positive comparisons stay bare `col = ?` that an index can serve.
 */
export function compileScimFilter(node: FilterNode, attrs: Record<string, AttrSpec>): SQL {
  return compile(node, attrs, false, undefined);
}

/** Parse and compile in one go; a blank or absent filter is `undefined` (no condition). */
export function scimFilterSql(text: string | undefined | null, attrs: Record<string, AttrSpec>): SQL | undefined {
  if (text === undefined || text === null || text.trim() === "") return undefined;
  return compileScimFilter(parseScimFilter(text), attrs);
}

function compile(node: FilterNode, attrs: Record<string, AttrSpec>, neg: boolean, element: MultiSpec | undefined): SQL {
  switch (node.kind) {
    case "and":
    case "or": {
      const l = compile(node.left, attrs, neg, element);
      const r = compile(node.right, attrs, neg, element);
      // not (a and b) = not a or not b; not (a or b) = not a and not b.
      return (node.kind === "and") !== neg ? sql`(${l} and ${r})` : sql`(${l} or ${r})`;
    }
    case "not":
      return compile(node.expr, attrs, !neg, element);
    case "valuePath": {
      const spec = attrs[node.attr];
      if (!spec) throw invalid(`Unknown or unfilterable attribute "${node.text}".`);
      if (!spec.multi) throw invalid(`"${node.text}[…]" needs a multi-valued attribute.`);
      const inner = compile(node.filter, spec.multi.sub, false, spec.multi);
      const ex = spec.multi.exists(inner);
      return neg ? sql`not ${ex}` : ex;
    }
    case "present":
    case "compare": {
      // Inside brackets, `attrs` is the element's sub-attributes.
      if (element) return leaf(node, resolveScalar(attrs, node.path.attr, node.path.text), neg);
      const dot = node.path.attr.lastIndexOf(".");
      const direct = attrs[node.path.attr];
      if (direct && !direct.multi) return leaf(node, resolveScalar(attrs, node.path.attr, node.path.text), neg);
      // emails.value → the "emails" multi spec, sub "value"; bare "emails" → its default sub.
      const [multiKey, subKey] = direct?.multi
        ? [node.path.attr, direct.multi.defaultSub ?? "value"]
        : dot > 0
          ? [node.path.attr.slice(0, dot), node.path.attr.slice(dot + 1)]
          : [node.path.attr, ""];
      const multi = attrs[multiKey]?.multi;
      if (!multi || !subKey) throw invalid(`Unknown or unfilterable attribute "${node.path.text}".`);
      const sub = resolveScalar(multi.sub, subKey, node.path.text);
      const ex = multi.exists(leaf(node, sub, false));
      return neg ? sql`not ${ex}` : ex;
    }
  }
}

function resolveScalar(attrs: Record<string, AttrSpec>, key: string, text: string): AttrSpec & { column: SQL | SQLiteColumn } {
  const spec = attrs[key];
  if (!spec || spec.multi || spec.column === undefined) throw invalid(`Unknown or unfilterable attribute "${text}".`);
  return spec as AttrSpec & { column: SQL | SQLiteColumn };
}

function leaf(node: Extract<FilterNode, { kind: "compare" | "present" }>, spec: AttrSpec & { column: SQL | SQLiteColumn }, neg: boolean): SQL {
  const col = is(spec.column, Column) ? outer(spec.column as SQLiteColumn) : (spec.column as SQL);
  if (node.kind === "present") {
    const present = spec.type === "string" ? sql`(${col} is not null and ${col} <> '')` : sql`(${col} is not null)`;
    return neg ? sql`not ${present}` : present;
  }
  const { op, value } = node;
  const name = node.path.text;
  if (value === null) {
    // RFC 7644 §3.4.2.2: comparing with null is testing for absence.
    if (op !== "eq" && op !== "ne") throw invalid(`"${name} ${op} null": only eq and ne compare with null.`);
    return (op === "eq") !== neg ? sql`(${col} is null)` : sql`(${col} is not null)`;
  }
  // `ne` is the negation of `eq`, so a missing attribute matches it too.
  if (op === "ne") return leaf({ ...node, op: "eq" }, spec, !neg);
  const cond = positive(col, spec, op, value, name);
  // A missing attribute matches no comparison, and so matches every negated one.
  return neg ? sql`(${col} is null or not ${cond})` : cond;
}

function positive(col: SQL, spec: AttrSpec, op: CompareOp, value: Exclude<FilterValue, null>, name: string): SQL {
  switch (spec.type) {
    case "boolean": {
      const b = typeof value === "boolean" ? value : typeof value === "string" && /^(true|false)$/i.test(value) ? value.toLowerCase() === "true" : undefined;
      if (b === undefined) throw invalid(`"${name}" is a boolean: compare it with true or false.`);
      if (op !== "eq" && op !== "ne") throw invalid(`"${name}" is a boolean: only eq, ne and pr apply.`);
      return op === "eq" ? sql`(${col} = ${b ? 1 : 0})` : sql`(${col} <> ${b ? 1 : 0})`;
    }
    case "integer":
    case "decimal": {
      const n = typeof value === "number" ? value : typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
      if (!Number.isFinite(n) || (spec.type === "integer" && !Number.isInteger(n))) throw invalid(`"${name}" is a number: compare it with a number.`);
      if (op === "co" || op === "sw" || op === "ew") throw invalid(`"${name}" is a number: ${op} does not apply.`);
      return ordered(col, op, n);
    }
    case "dateTime": {
      if (typeof value !== "string") throw invalid(`"${name}" is a dateTime: compare it with an RFC 3339 string such as "2024-01-31T12:00:00Z".`);
      if (op === "co" || op === "sw" || op === "ew") throw invalid(`"${name}" is a dateTime: ${op} does not apply; use eq, ne, gt, ge, lt, le or pr.`);
      return ordered(col, op, scimDateTime(value, name));
    }
    case "string": {
      if (typeof value !== "string") throw invalid(`"${name}" is a string: compare it with a "quoted" value.`);
      const exact = spec.caseExact === true;
      const v = exact ? value : value.toLowerCase();
      const c = exact || spec.folded ? col : sql`lower(${col})`;
      switch (op) {
        case "co":
          return sql`(instr(${c}, ${v}) > 0)`;
        case "sw":
          // The range lets an index on a folded/exact column serve the prefix; substr keeps it exact.
          return sql`(${c} >= ${v} and substr(${c}, 1, length(${v})) = ${v})`;
        case "ew":
          return sql`(length(${c}) >= length(${v}) and substr(${c}, -length(${v})) = ${v})`;
        default:
          // gt/ge/lt/le on strings compare lexically (RFC 7644 §3.4.2.2).
          return ordered(c, op, v);
      }
    }
  }
}

function ordered(col: SQL, op: CompareOp, v: string | number): SQL {
  switch (op) {
    case "eq":
      return sql`(${col} = ${v})`;
    case "ne":
      return sql`(${col} <> ${v})`;
    case "gt":
      return sql`(${col} > ${v})`;
    case "ge":
      return sql`(${col} >= ${v})`;
    case "lt":
      return sql`(${col} < ${v})`;
    case "le":
      return sql`(${col} <= ${v})`;
    default:
      throw invalid(`${op} does not apply here.`);
  }
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})?)?$/;

/** An RFC 3339 date-time (or a bare date, as midnight UTC) → epoch milliseconds; else invalidFilter. */
export function scimDateTime(text: string, name = "dateTime"): number {
  const m = RFC3339.exec(text);
  const t = m ? Date.parse(m[4] ? text.replace(" ", "T").replace(/(\.\d{3})\d+/, "$1") + (m[8] ? "" : "Z") : `${text}T00:00:00Z`) : NaN;
  if (!Number.isFinite(t)) throw invalid(`"${name}": ${JSON.stringify(text)} is not an RFC 3339 date-time such as "2024-01-31T12:00:00Z".`);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Helpers for declaring attributes

const colSql = (column: SQL | SQLiteColumn): SQL => (is(column, Column) ? outer(column as SQLiteColumn) : (column as SQL));

/** A value inside a JSON column: `json_extract(<table>.<column>, '$.name.familyName')` (path bound). */
export function jsonField(column: SQL | SQLiteColumn, path: string): SQL {
  return sql`json_extract(${colSql(column)}, ${path})`;
}

/**
 * A multi-valued complex attribute stored as a JSON array inside a column (`emails` in
 * `attributes`): each element is judged by `json_each`, e.g.
 *   emails: jsonMulti(scimUsers.attributes, "$.emails", { value: { type: "string" }, type: { type: "string" }, primary: { type: "boolean" } })
 * Sub-attribute keys are lower-cased for lookup; the JSON member read is the key as given
 * (store elements with canonical member names: value, type, primary, display).
 */
export function jsonMulti(column: SQL | SQLiteColumn, path: string, sub: Record<string, Omit<AttrSpec, "column" | "multi">>, defaultSub = "value"): AttrSpec {
  const subs: Record<string, AttrSpec> = {};
  // A string array (["a@x"]) is its own `value` and has no other sub-attribute.
  for (const [key, spec] of Object.entries(sub))
    subs[key.toLowerCase()] = {
      ...spec,
      column:
        key.toLowerCase() === defaultSub
          ? sql`(case when scim_el.type = 'object' then json_extract(scim_el.value, ${`$.${key}`}) else scim_el.value end)`
          : sql`(case when scim_el.type = 'object' then json_extract(scim_el.value, ${`$.${key}`}) end)`,
    };
  return {
    type: "string",
    multi: {
      sub: subs,
      defaultSub,
      exists: (cond) => sql`exists (select 1 from json_each(${colSql(column)}, ${path}) as scim_el where ${cond})`,
    },
  };
}
