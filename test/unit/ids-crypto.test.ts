import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decryptString, encryptString, hashPassword, timingSafeEqual, verifyPassword, needsRehash } from "../../src/lib/crypto";
import { isId, newId } from "../../src/lib/ids";
import { createDb, newDbStats } from "../../src/db/client";
import { users, sessions } from "../../src/db/schema";
import { eq } from "drizzle-orm";

describe("ids", () => {
  it("are prefixed, validated per kind and sort by creation time", () => {
    const a = newId("organization", 1_700_000_000_000);
    const b = newId("organization", 1_700_000_000_001);
    expect(a).toMatch(/^org_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(a < b).toBe(true);
    expect(isId("organization", a)).toBe(true);
    expect(isId("user", a)).toBe(false);
    expect(isId("organization", "org_nope")).toBe(false);
    expect(isId("organization", `${a}x`)).toBe(false);
  });

  it("keep creation order within one millisecond", () => {
    const ids = Array.from({ length: 2000 }, () => newId("token", 1_800_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => isId("token", id))).toBe(true);
  });
});

describe("crypto", () => {
  it("hashes passwords with their parameters and verifies them", async () => {
    const h = await hashPassword("a long enough password", 1000);
    expect(h).toMatch(/^pbkdf2-sha256\$1000\$/);
    expect(await verifyPassword("a long enough password", h)).toBe(true);
    expect(await verifyPassword("a long enough passwort", h)).toBe(false);
    expect(await verifyPassword("x", "garbage")).toBe(false);
    expect(needsRehash(h, 100_000)).toBe(true);
    expect(needsRehash(h, 1000)).toBe(false);
  });

  it("encrypts with AES-GCM bound to its row", async () => {
    const key = env.ENCRYPTION_KEY as string;
    const sealed = await encryptString(key, "s3cret", "org-secret:org_1:api");
    expect(sealed.startsWith("v1.")).toBe(true);
    expect(sealed).not.toContain("s3cret");
    expect(await decryptString(key, sealed, "org-secret:org_1:api")).toBe("s3cret");
    await expect(decryptString(key, sealed, "org-secret:org_2:api")).rejects.toThrow();
  });

  it("compares in constant time", () => {
    expect(timingSafeEqual("abc", "abc")).toBe(true);
    expect(timingSafeEqual("abc", "abd")).toBe(false);
    expect(timingSafeEqual("abc", "abcd")).toBe(false);
  });
});

describe("counted db", () => {
  it("counts round trips and rows, a batch as one", async () => {
    const db = createDb(env.DB);
    const stats = newDbStats();
    const counted = createDb(env.DB, stats);
    await counted.select().from(users).limit(1);
    await counted.batch([counted.select().from(users).limit(1), counted.select().from(sessions).limit(1)]);
    expect(stats.queries).toBe(2);
    expect(stats.statements).toBe(3);
    expect(db).toBeDefined();
  });

  it("refuses a joined select whose column names collide instead of shifting fields", async () => {
    const db = createDb(env.DB);
    const now = Date.now();
    const id = newId("user");
    await db.insert(users).values({ id, email: `${id.toLowerCase()}@x.io`, displayName: "x", createdAt: now, updatedAt: now });
    await db.insert(sessions).values({ id: newId("session"), userId: id, createdAt: now, expiresAt: now + 1000 });
    await expect(
      db.select({ a: users.createdAt, b: sessions.createdAt }).from(users).innerJoin(sessions, eq(sessions.userId, users.id)).where(eq(users.id, id)),
    ).rejects.toSatisfy((e: unknown) => /Ambiguous column names/.test(String((e as Error).cause ?? e)));
  });
});
