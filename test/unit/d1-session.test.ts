import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createSessionDb, newDbStats } from "../../src/db/client";
import { sessions, users } from "../../src/db/schema";
import { refusal, spyD1 } from "../helpers/binding-spies";

const REFUSED = "ffffffff-ffffffff-ffffffff-ffffffffffffffffffffffffffffffff";

describe("the counted db on a D1 session", () => {
  it("counts round trips, rows and statements as on the binding: a batch is one round trip", async () => {
    const stats = newDbStats();
    const { db } = createSessionDb(env.DB, stats, "first-unconstrained");
    await db.select().from(users).limit(1);
    await db.batch([db.select().from(users).limit(1), db.select().from(sessions).limit(1), db.select().from(users).limit(2)]);
    expect(stats.queries).toBe(2);
    expect(stats.statements).toBe(4);
    expect(stats.rowsRead).toBeGreaterThan(0);
  });

  it("has no bookmark until D1 answers when started from a constraint, then D1's latest", async () => {
    const { db, bookmark } = createSessionDb(env.DB, newDbStats(), "first-primary");
    expect(bookmark()).toBeNull();
    await db.select().from(users).limit(1);
    expect(bookmark()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/);
  });

  it("started from a bookmark, holds it before any query and never goes back before it", async () => {
    const first = createSessionDb(env.DB, newDbStats(), "first-primary");
    await first.db.select().from(users).limit(1);
    const start = first.bookmark()!;
    const resumed = createSessionDb(env.DB, newDbStats(), start);
    expect(resumed.bookmark()).toBe(start);
    await resumed.db.select().from(users).limit(1);
    expect(resumed.bookmark()! >= start).toBe(true);
  });

  it("a refused bookmark restarts at the primary once; statements prepared before still run there", async () => {
    const spy = spyD1((start) => start === REFUSED);
    const stats = newDbStats();
    const { db, bookmark } = createSessionDb(spy.binding, stats, REFUSED);
    const prepared = db.select().from(users).limit(1).prepare();
    await Promise.all([prepared.all(), db.batch([db.select().from(users).limit(1), db.select().from(sessions).limit(1)])]);
    await db.select().from(users).limit(1);
    expect(spy.starts).toEqual([REFUSED, "first-primary"]);
    expect(stats.queries).toBe(3);
    expect(bookmark()).not.toBe(REFUSED);
  });

  it("only a resumed session falls back, and only on a refusal", async () => {
    const spy = spyD1(() => true);
    const constrained = createSessionDb(spy.binding, newDbStats(), "first-primary");
    await expect(constrained.db.select().from(users).limit(1)).rejects.toSatisfy((e: unknown) => String((e as Error).cause).includes(refusal().message));
    expect(spy.starts).toEqual(["first-primary"]);

    const plain = spyD1();
    const resumed = createSessionDb(plain.binding, newDbStats(), REFUSED);
    await expect(resumed.db.run("select * from no_such_table")).rejects.toSatisfy((e: unknown) => /no such table/.test(String((e as Error).cause)));
    expect(plain.starts).toEqual([REFUSED]);
  });
});
