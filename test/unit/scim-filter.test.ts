import { env } from "cloudflare:test";
import { asc, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { integer, SQLiteSyncDialect, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { beforeAll, describe, expect, it } from "vitest";
import { ScimError } from "../../src/scim/errors";
import { compileScimFilter, jsonField, jsonMulti, parseScimFilter, scimDateTime, scimFilterSql, type AttrSpec } from "../../src/scim/filter";
import { metaAttrs, parsePaging, projectAttributes, scimList, checkIfMatch, etagOf, totalResults } from "../../src/scim/resource";

/**
 * The filter runs for real against D1 on a scratch table shaped like scim_users, so each
 * operator's meaning (case rules, missing attributes, value paths) is checked, not just its text.
 */
const people = sqliteTable("scim_filter_people", {
  id: text("id").primaryKey(),
  userName: text("user_name").notNull(),
  userNameKey: text("user_name_key").notNull(),
  externalId: text("external_id"),
  active: integer("active", { mode: "boolean" }).notNull(),
  attributes: text("attributes", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

const ATTRS: Record<string, AttrSpec> = {
  id: { type: "string", caseExact: true, column: people.id },
  username: { type: "string", column: people.userNameKey, folded: true },
  externalid: { type: "string", caseExact: true, column: people.externalId },
  active: { type: "boolean", column: people.active },
  title: { type: "string", column: jsonField(people.attributes, "$.title") },
  "name.familyname": { type: "string", column: jsonField(people.attributes, "$.name.familyName") },
  "name.givenname": { type: "string", column: jsonField(people.attributes, "$.name.givenName") },
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department": {
    type: "string",
    column: jsonField(people.attributes, '$."urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".department'),
  },
  emails: jsonMulti(people.attributes, "$.emails", { value: { type: "string" }, type: { type: "string" }, primary: { type: "boolean" } }),
  ...metaAttrs(people.createdAt, people.updatedAt),
};

const T0 = Date.parse("2024-01-01T00:00:00Z");
const ROWS = [
  {
    id: "u1",
    userName: "Alice@Example.com",
    externalId: "ext-1",
    active: true,
    attributes: {
      title: "Engineer",
      name: { givenName: "Alice", familyName: "Smith" },
      emails: [
        { value: "alice@example.com", type: "work", primary: true },
        { value: "alice@home.net", type: "home" },
      ],
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { department: "R&D" },
    },
    createdAt: T0,
  },
  {
    id: "u2",
    userName: "bob@example.com",
    externalId: "EXT-2",
    active: false,
    attributes: { name: { givenName: "Bob", familyName: "Jones" }, emails: [{ value: "bob@other.org", type: "work" }] },
    createdAt: T0 + 86_400_000,
  },
  {
    id: "u3",
    userName: "carol@sample.io",
    externalId: null,
    active: true,
    attributes: { title: "", name: { familyName: "Smithers" }, emails: ["carol@sample.io"] },
    createdAt: T0 + 2 * 86_400_000,
  },
  {
    id: "u4",
    userName: "o'brien@example.com",
    externalId: "x' or '1'='1",
    active: true,
    attributes: { title: "Manager" },
    createdAt: T0 + 3 * 86_400_000,
  },
];

const db = drizzle(env.DB);

beforeAll(async () => {
  await env.DB.exec("DROP TABLE IF EXISTS scim_filter_people");
  await env.DB.exec(
    "CREATE TABLE scim_filter_people (id TEXT PRIMARY KEY, user_name TEXT NOT NULL, user_name_key TEXT NOT NULL, external_id TEXT, active INTEGER NOT NULL, attributes TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
  );
  await db.insert(people).values(ROWS.map((r) => ({ ...r, userNameKey: r.userName.toLowerCase(), updatedAt: r.createdAt + 1000 })));
});

async function ids(filter: string): Promise<string[]> {
  const where = compileScimFilter(parseScimFilter(filter), ATTRS);
  const rows = await db.select({ id: people.id }).from(people).where(where).orderBy(asc(people.id));
  return rows.map((r) => r.id);
}

function scimTypeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ScimError) return `${e.status} ${e.scimType}`;
    throw e;
  }
  return "no error";
}
const bad = (filter: string) => scimTypeOf(() => compileScimFilter(parseScimFilter(filter), ATTRS));

describe("happy", () => {
  it("eq on userName is case-insensitive (caseExact false) and served from the folded column", async () => {
    expect(await ids('userName eq "alice@example.com"')).toEqual(["u1"]);
    expect(await ids('USERNAME EQ "ALICE@EXAMPLE.COM"')).toEqual(["u1"]);
    expect(await ids('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@EXAMPLE.com"')).toEqual(["u2"]);
    const q = new SQLiteSyncDialect().sqlToQuery(compileScimFilter(parseScimFilter('userName eq "A@B"'), ATTRS));
    expect(q.sql).toBe('("scim_filter_people"."user_name_key" = ?)');
    expect(q.params).toEqual(["a@b"]);
  });

  it("caseExact attributes compare exactly", async () => {
    expect(await ids('externalId eq "ext-2"')).toEqual([]);
    expect(await ids('externalId eq "EXT-2"')).toEqual(["u2"]);
    expect(await ids('id eq "U1"')).toEqual([]);
  });

  it("ne, co, sw, ew, pr and the ordering operators", async () => {
    expect(await ids('userName ne "alice@example.com"')).toEqual(["u2", "u3", "u4"]);
    expect(await ids('userName co "EXAMPLE"')).toEqual(["u1", "u2", "u4"]);
    expect(await ids('userName sw "B"')).toEqual(["u2"]);
    expect(await ids('userName ew ".IO"')).toEqual(["u3"]);
    expect(await ids('externalId sw "ext"')).toEqual(["u1"]);
    expect(await ids("externalId pr")).toEqual(["u1", "u2", "u4"]);
    // An empty string is not "present".
    expect(await ids("title pr")).toEqual(["u1", "u4"]);
    expect(await ids('userName gt "bob@example.com"')).toEqual(["u3", "u4"]);
    expect(await ids('userName ge "bob@example.com"')).toEqual(["u2", "u3", "u4"]);
    expect(await ids('userName lt "bob@example.com"')).toEqual(["u1"]);
    expect(await ids('userName le "bob@example.com"')).toEqual(["u1", "u2"]);
  });

  it("LIKE wildcards in a value are literal", async () => {
    expect(await ids('userName co "%"')).toEqual([]);
    expect(await ids('userName sw "_"')).toEqual([]);
  });

  it("dateTime attributes compare RFC 3339 instants with millisecond columns", async () => {
    expect(await ids('meta.created gt "2024-01-02T00:00:00Z"')).toEqual(["u3", "u4"]);
    expect(await ids('meta.created ge "2024-01-02T00:00:00Z"')).toEqual(["u2", "u3", "u4"]);
    expect(await ids('meta.created lt "2024-01-02T01:30:00+01:00"')).toEqual(["u1", "u2"]);
    expect(await ids('meta.created le "2024-01-01"')).toEqual(["u1"]);
    expect(await ids('meta.created eq "2024-01-01T00:00:00.000Z"')).toEqual(["u1"]);
    expect(await ids('meta.lastModified gt "2024-01-03T00:00:00Z"')).toEqual(["u3", "u4"]);
    expect(scimDateTime("2024-01-31T12:00:00.123456Z")).toBe(Date.parse("2024-01-31T12:00:00.123Z"));
  });

  it('booleans: true/false literals, also as strings in any case (Entra sends "False")', async () => {
    expect(await ids("active eq true")).toEqual(["u1", "u3", "u4"]);
    expect(await ids('active eq "False"')).toEqual(["u2"]);
    expect(await ids("active ne true")).toEqual(["u2"]);
  });

  it("sub-attributes inside the JSON attributes", async () => {
    expect(await ids('name.familyName eq "smith"')).toEqual(["u1"]);
    expect(await ids('name.familyName sw "Smith"')).toEqual(["u1", "u3"]);
    expect(await ids("name.givenName pr")).toEqual(["u1", "u2"]);
    expect(await ids('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d"')).toEqual(["u1"]);
  });

  it("multi-valued attributes: emails.value, bare emails, value paths with and/or, path-then-compare", async () => {
    expect(await ids('emails.value eq "alice@home.net"')).toEqual(["u1"]);
    expect(await ids('emails eq "CAROL@sample.io"')).toEqual(["u3"]);
    expect(await ids('emails[type eq "work"]')).toEqual(["u1", "u2"]);
    expect(await ids('emails[type eq "work" and value co "other"]')).toEqual(["u2"]);
    // The two conditions must hold for the SAME element: alice's home address is not of type work.
    expect(await ids('emails[type eq "work" and value ew "home.net"]')).toEqual([]);
    expect(await ids('emails.type eq "work" and emails.value ew "home.net"')).toEqual(["u1"]);
    expect(await ids('emails[type eq "home" or primary eq true]')).toEqual(["u1"]);
    expect(await ids('emails[type eq "work"].value eq "bob@other.org"')).toEqual(["u2"]);
    expect(await ids('emails[type eq "work"].value co "example"')).toEqual(["u1"]);
    expect(await ids("emails pr")).toEqual(["u1", "u2", "u3"]);
    expect(await ids('not (emails[type eq "work"])')).toEqual(["u3", "u4"]);
  });

  it("precedence: and binds tighter than or; parentheses group; not negates a group", async () => {
    // a or (b and c)
    expect(await ids('userName sw "alice" or userName sw "bob" and active eq true')).toEqual(["u1"]);
    expect(await ids('(userName sw "alice" or userName sw "bob") and active eq false')).toEqual(["u2"]);
    expect(await ids('not (userName sw "alice" or userName sw "bob")')).toEqual(["u3", "u4"]);
    expect(await ids("not (active eq true and title pr)")).toEqual(["u2", "u3"]);
    expect(await ids('not (not (userName sw "alice"))')).toEqual(["u1"]);
    expect(await ids('((userName sw "carol"))')).toEqual(["u3"]);
  });

  it("a missing attribute matches no comparison and every negated one", async () => {
    expect(await ids('title eq "engineer"')).toEqual(["u1"]);
    expect(await ids('not (title eq "engineer")')).toEqual(["u2", "u3", "u4"]);
    expect(await ids('title ne "engineer"')).toEqual(["u2", "u3", "u4"]);
    expect(await ids("externalId eq null")).toEqual(["u3"]);
    expect(await ids("externalId ne null")).toEqual(["u1", "u2", "u4"]);
  });

  it("values are bound parameters: quotes and SQL in a value match literally", async () => {
    expect(await ids(`externalId eq "x' or '1'='1"`)).toEqual(["u4"]);
    expect(await ids(`userName eq "o'brien@example.com"`)).toEqual(["u4"]);
    expect(await ids(`userName eq "\\" or 1=1 --"`)).toEqual([]);
    const q = new SQLiteSyncDialect().sqlToQuery(compileScimFilter(parseScimFilter(`title co "'); drop table users; --"`), ATTRS));
    expect(q.sql).not.toContain("drop");
    expect(q.params).toContain("'); drop table users; --");
  });

  it("parses escapes, numbers and keywords in any case", () => {
    expect(parseScimFilter('title eq "a\\"b\\u00e9"')).toEqual({ kind: "compare", path: { attr: "title", text: "title" }, op: "eq", value: 'a"bé' });
    expect(parseScimFilter("x Gt -1.5e2")).toMatchObject({ op: "gt", value: -150 });
    expect(parseScimFilter("a pr AND b Pr oR NOT (c PR)")).toMatchObject({ kind: "or", left: { kind: "and" }, right: { kind: "not" } });
    expect(scimFilterSql("  ", ATTRS)).toBeUndefined();
  });
});

describe("errors", () => {
  it("invalid filters are 400 invalidFilter", () => {
    for (const f of [
      "",
      "userName",
      "userName eq",
      'userName xx "a"',
      'userName eq "a" extra',
      'userName eq "unterminated',
      '(userName eq "a"',
      'userName eq "a")',
      'not userName eq "a"',
      'userName eq "a" and',
      "userName eq bare",
      'emails[type eq "work"',
      'emails[type[value eq "x"] eq "y"]',
      'emails[type eq "work"].',
      "userName eq 'single'",
      'a.b.c eq "x"',
      "userName ; drop",
    ]) {
      expect(bad(f), f).toBe("400 invalidFilter");
    }
  });

  it("unknown attributes, wrong types and operators that do not apply are invalidFilter", () => {
    for (const f of [
      'password eq "x"',
      'nickName eq "x"',
      'emails.nope eq "x"',
      'name[givenName eq "x"]',
      'userName[type eq "x"]',
      "active gt true",
      'active eq "maybe"',
      "userName eq 1",
      'meta.created co "2024"',
      'meta.created gt "yesterday"',
      "meta.created gt 5",
      "userName gt null",
      'urn:ietf:params:scim:schemas:extension:other:1.0:User:department eq "x"',
    ]) {
      expect(bad(f), f).toBe("400 invalidFilter");
    }
  });

  it("limits: length, node count, nesting", () => {
    expect(bad(`userName eq "${"a".repeat(4100)}"`)).toBe("400 invalidFilter");
    expect(bad(Array.from({ length: 60 }, (_, i) => `userName eq "${i}"`).join(" or "))).toBe("400 invalidFilter");
    expect(bad(`${"(".repeat(20)}userName pr${")".repeat(20)}`)).toBe("400 invalidFilter");
    expect(bad(`${"not (".repeat(10)}userName pr${")".repeat(10)}`)).toBe("no error");
  });
});

describe("resource helpers", () => {
  it("parsePaging: defaults, clamps, RFC coercions", () => {
    expect(parsePaging({})).toEqual({ startIndex: 1, count: 100, offset: 0 });
    expect(parsePaging({ startIndex: "0", count: "-5" })).toEqual({ startIndex: 1, count: 0, offset: 0 });
    expect(parsePaging({ startIndex: "11", count: "5000" })).toEqual({ startIndex: 11, count: 200, offset: 10 });
    expect(scimTypeOf(() => parsePaging({ count: "ten" }))).toBe("400 invalidValue");
  });

  it("totalResults: a short page pins the total; otherwise the capped count", () => {
    const p = parsePaging({ startIndex: "101", count: "100" });
    expect(totalResults([{ n: 1100 }], p, 100)).toBe(1100);
    expect(totalResults([{ n: 150 }], p, 50)).toBe(150);
    expect(totalResults([{ n: 40 }], p, 0)).toBe(40);
  });

  it("scimList envelope", () => {
    expect(scimList([{ id: "a" }], { totalResults: 7, startIndex: 3 })).toEqual({
      schemas: ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
      totalResults: 7,
      startIndex: 3,
      itemsPerPage: 1,
      Resources: [{ id: "a" }],
    });
  });

  const user = {
    schemas: ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    id: "scu_1",
    userName: "a@b.c",
    name: { givenName: "A", familyName: "B" },
    emails: [{ value: "a@b.c", type: "work", primary: true }],
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { department: "R&D", manager: { value: "scu_2", displayName: "M" } },
    meta: { resourceType: "User" },
  };

  it("projectAttributes: attributes, sub-attributes, URNs, case-insensitive; id and schemas always", () => {
    expect(projectAttributes(user, "USERNAME")).toEqual({ schemas: user.schemas, id: "scu_1", userName: "a@b.c" });
    expect(projectAttributes(user, "name.familyName,emails.value")).toEqual({
      schemas: user.schemas,
      id: "scu_1",
      name: { familyName: "B" },
      emails: [{ value: "a@b.c" }],
    });
    expect(
      projectAttributes(user, [
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
      ]),
    ).toEqual({
      schemas: user.schemas,
      id: "scu_1",
      userName: "a@b.c",
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { manager: { value: "scu_2" } },
    });
    expect(projectAttributes(user, undefined, "emails,name.givenName,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")).toEqual({
      schemas: user.schemas,
      id: "scu_1",
      userName: "a@b.c",
      name: { familyName: "B" },
      meta: { resourceType: "User" },
    });
  });

  it("ETags: If-Match absent or * passes, the current version passes, anything else is 412", () => {
    expect(etagOf(3)).toBe('W/"3"');
    expect(() => checkIfMatch(undefined, 3)).not.toThrow();
    expect(() => checkIfMatch("*", 3)).not.toThrow();
    expect(() => checkIfMatch('W/"3"', 3)).not.toThrow();
    expect(() => checkIfMatch('"3"', 3)).not.toThrow();
    expect(() => checkIfMatch('W/"1", W/"3"', 3)).not.toThrow();
    expect(scimTypeOf(() => checkIfMatch('W/"2"', 3))).toBe("412 undefined");
  });
});

void sql;
