import type { Context } from "hono";
import type { AppEnv } from "../env";
import { ApiError } from "../lib/errors";
import {
  clientSubject,
  counterFor,
  evaluate,
  noteSharedCount,
  recentSharedCount,
  recordHit,
  tighter,
  type Counter,
  type Limit,
  type RateLimitState,
} from "../lib/rate-limit";

export function clientIp(c: Context<AppEnv>): string {
  // Cloudflare sets CF-Connecting-IP and strips any client-sent copy; locally it is absent.
  return c.req.header("cf-connecting-ip") ?? "local";
}

export const rateLimited = (state: RateLimitState) =>
  new ApiError("rate_limited", `Too many requests; retry in ${state.reset} s.`, { headers: { "Retry-After": String(state.reset) } });

export interface Reading {
  counter: Counter;
  stored: string | null;
  /** Hits already counted in the window. */
  count: number;
  state: RateLimitState;
  exceeded: boolean;
}

/**
 * Reads several counters, and any other keys the request needs (a session's revocation), in one
 * KV call. Nothing is counted yet. When the call is made for other keys anyway, a counter this
 * isolate read less than a second ago rides on that read (recentSharedCount) instead of being
 * read again; counters alone are always read, so every request that reads KV makes its one call
 * whatever its timing, and the cost report stays the same from one request to the next.
 */
export async function readCounters(
  c: Context<AppEnv>,
  limits: Limit[],
  alsoRead: string[] = [],
): Promise<{ readings: Reading[]; values: Map<string, string | null> }> {
  const counters = await Promise.all(limits.map((l) => counterFor(c.var.config.hmacSecret, l)));
  const now = Date.now();
  const canRide = alsoRead.length > 0;
  const recent = counters.map((counter) => (canRide ? recentSharedCount(counter, now) : undefined));
  const keys = [...counters.filter((_, i) => recent[i] === undefined).map((k) => k.key), ...alsoRead];
  const values = keys.length === 1 ? new Map([[keys[0]!, await c.var.kv.get(keys[0]!)]]) : await c.var.kv.get(keys);
  const readings = counters.map((counter, i) => {
    let stored = recent[i];
    if (stored === undefined) {
      stored = values.get(counter.key) ?? null;
      if (canRide) noteSharedCount(counter, stored, now);
    }
    return { counter, stored, ...evaluate(counter, stored) };
  });
  return { readings, values };
}

/** Reports a reading in the response's RateLimit-* headers (the tightest one wins). */
export function report(c: Context<AppEnv>, reading: Reading) {
  c.set("rateLimit", tighter(c.get("rateLimit"), reading.exceeded ? { ...reading.state, remaining: 0 } : reading.state));
}

export function countHit(c: Context<AppEnv>, reading: Reading) {
  recordHit(reading.counter, reading.stored, c.var.kv, (p) => c.executionCtx.waitUntil(p));
}

/** One limit: 429 when it is spent, otherwise the request counts against it. */
export async function admit(c: Context<AppEnv>, limit: Limit, alsoRead: string[] = [], inspect?: (values: Map<string, string | null>) => void): Promise<void> {
  const { readings, values } = await readCounters(c, [limit], alsoRead);
  inspect?.(values);
  const reading = readings[0]!;
  report(c, reading);
  if (reading.exceeded) throw rateLimited(reading.state);
  countHit(c, reading);
}

/** Unauthenticated /v1 routes: a budget per client address (an IPv6 /64 counts as one client). */
export const admitClient = (c: Context<AppEnv>) =>
  admit(c, { bucket: "client", subject: clientSubject(clientIp(c)), limit: c.var.config.clientRateLimitPerMinute, windowSeconds: 60 });
