import { describe, expect, it } from "vitest";
import { sqliteTable, text, integer } from "drizzle-orm/sqlite-core";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { toBase64Url, utf8 } from "../../src/lib/encoding";
import { decodePageToken, encodePageToken, keysetAfter, PageQuery } from "../../src/lib/pagination";

const SECRET = "unit-test-secret-0123456789";
const t = sqliteTable("t", { a: text("a"), b: integer("b"), id: text("id") });
const dialect = new SQLiteSyncDialect();

describe("happy", () => {
  it("round-trips a token bound to its query", async () => {
    const token = await encodePageToken(SECRET, "q1", ["x", 3, null]);
    expect(await decodePageToken(SECRET, "q1", token, 3)).toEqual(["x", 3, null]);
  });

  it("uses a row-value comparison when all keys share a direction, an OR chain otherwise", () => {
    const same = dialect.sqlToQuery(
      keysetAfter(
        [
          { column: t.a, desc: true },
          { column: t.id, desc: true },
        ],
        ["x", "id1"],
      ),
    );
    expect(same.sql).toBe(`("t"."a", "t"."id") < (?, ?)`);
    const mixed = dialect.sqlToQuery(
      keysetAfter(
        [
          { column: t.a, desc: false },
          { column: t.id, desc: true },
        ],
        ["x", "id1"],
      ),
    );
    expect(mixed.sql).toBe(`("t"."a" > ? or ("t"."a" = ? and "t"."id" < ?))`);
  });

  it("defaults page_size to 50 and coerces large values to 1000", () => {
    expect(PageQuery.parse({}).page_size).toBe(50);
    expect(PageQuery.parse({ page_size: "5000" }).page_size).toBe(1000);
  });
});

describe("errors", () => {
  it("refuses a token from another query, a forged one, and garbage", async () => {
    const token = await encodePageToken(SECRET, "q1", ["x"]);
    await expect(decodePageToken(SECRET, "q2", token, 1)).rejects.toMatchObject({ code: "invalid_page_token" });
    const [body, sig] = token.split(".");
    const forged = toBase64Url(utf8(JSON.stringify({ q: "q1", k: ["y"] })));
    await expect(decodePageToken(SECRET, "q1", `${forged}.${sig}`, 1)).rejects.toMatchObject({ code: "invalid_page_token" });
    await expect(decodePageToken(SECRET, "q1", `${body}.AAAA`, 1)).rejects.toMatchObject({ code: "invalid_page_token" });
    await expect(decodePageToken(SECRET, "q1", "%%%", 1)).rejects.toMatchObject({ code: "invalid_page_token" });
    await expect(decodePageToken(SECRET, "q1", token, 2)).rejects.toMatchObject({ code: "invalid_page_token" });
  });

  it.each([["0"], ["-3"], ["abc"], ["1.5"]])("refuses page_size=%s", (v) => {
    expect(PageQuery.safeParse({ page_size: v }).success).toBe(false);
  });
});
