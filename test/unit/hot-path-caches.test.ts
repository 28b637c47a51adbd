import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { loadConfig, type Bindings } from "../../src/env";
import { signAccessToken, verifyAccessToken } from "../../src/lib/jwt";
import { counterFor, noteSharedCount, recentSharedCount, SHARED_COUNT_REREAD_MS, type Limit } from "../../src/lib/rate-limit";
import { testEnv } from "../helpers/client";

/**
 * The two per-isolate memories that keep GET /v1/me off D1 and cheap on KV (issue 14): verified
 * access tokens, and the last read of a busy rate-limit counter. Neither may stretch what it
 * remembers past what the original check would have answered.
 */

const config = () => loadConfig(env as unknown as Bindings);
const profile = { email: "cache@example.com", name: "Cache", emailVerified: true, createdAt: 1_700_000_000_000, updatedAt: 1_700_000_000_000 };

describe("verified access tokens", () => {
  it("a token verified once is answered from memory until its exp, and refused from then on", async () => {
    const { token, exp } = await signAccessToken(config(), { sub: "usr_cache", sid: "ses_cache_1", authTime: 1, profile });
    const first = await verifyAccessToken(config(), token);
    expect(first).toMatchObject({ sub: "usr_cache", sid: "ses_cache_1", exp });
    expect(await verifyAccessToken(config(), token)).toBe(first);
    expect(await verifyAccessToken(config(), token, exp * 1000 - 1)).toBe(first);
    expect(await verifyAccessToken(config(), token, exp * 1000)).toBeNull();
    // Forgotten once seen expired: the next check verifies the signature again (a new object).
    const again = await verifyAccessToken(config(), token, exp * 1000 - 1);
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });

  it("memory is per configuration: a token of another audience stays refused", async () => {
    const { token } = await signAccessToken(config(), { sub: "usr_cache", sid: "ses_cache_2", authTime: 1, profile });
    expect(await verifyAccessToken(config(), token)).not.toBeNull();
    const other = loadConfig(testEnv({ JWT_AUDIENCE: "https://another.example" }));
    expect(await verifyAccessToken(other, token)).toBeNull();
  });

  it("at 1,000 tokens the oldest makes room, and is verified again when it comes back", async () => {
    const cfg = loadConfig(testEnv({ JWT_AUDIENCE: "https://eviction.example" }));
    const sign = (sid: string) => signAccessToken(cfg, { sub: "usr_cache", sid, authTime: 1, profile });
    const { token: oldest } = await sign("ses_oldest");
    const first = await verifyAccessToken(cfg, oldest);
    const { token: recent } = await sign("ses_recent");
    const recentClaims = await verifyAccessToken(cfg, recent);
    for (let i = 0; i < 999; i++) await verifyAccessToken(cfg, (await sign(`ses_fill_${i}`)).token);
    expect(await verifyAccessToken(cfg, recent)).toBe(recentClaims);
    const again = await verifyAccessToken(cfg, oldest);
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });

  it("only valid tokens are remembered: an altered one is refused every time", async () => {
    const { token } = await signAccessToken(config(), { sub: "usr_cache", sid: "ses_cache_3", authTime: 1, profile });
    expect(await verifyAccessToken(config(), token)).not.toBeNull();
    const [h, p, s] = token.split(".");
    const altered = `${h}.${p}.${s!.slice(0, -2)}${s!.endsWith("AA") ? "BB" : "AA"}`;
    expect(await verifyAccessToken(config(), altered)).toBeNull();
    expect(await verifyAccessToken(config(), altered)).toBeNull();
  });
});

describe("shared rate-limit counts", () => {
  const T = 1_800_000_000_000;
  const busy: Limit = { bucket: "credential", subject: `busy-${crypto.randomUUID()}`, limit: 600, windowSeconds: 60 };
  const tight: Limit = { bucket: "client", subject: `tight-${crypto.randomUUID()}`, limit: 60, windowSeconds: 60 };

  it("a counter written in steps is read again once its last read is a second old", async () => {
    const counter = await counterFor("secret", busy, T);
    expect(recentSharedCount(counter, T)).toBeUndefined();
    noteSharedCount(counter, "42", T);
    expect(recentSharedCount(counter, T + SHARED_COUNT_REREAD_MS - 1)).toBe("42");
    expect(recentSharedCount(counter, T + SHARED_COUNT_REREAD_MS)).toBeUndefined();
    noteSharedCount(counter, null, T + SHARED_COUNT_REREAD_MS);
    expect(recentSharedCount(counter, T + SHARED_COUNT_REREAD_MS + 1)).toBeNull();
  });

  it("a counter written on every hit is read on every request", async () => {
    const counter = await counterFor("secret", tight, T);
    noteSharedCount(counter, "7", T);
    expect(recentSharedCount(counter, T)).toBeUndefined();
  });
});
