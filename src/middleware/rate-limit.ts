import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { hmacHex } from "../lib/crypto";
import { ApiError } from "../lib/errors";
import { kvKeys } from "../lib/kv-keys";

const WINDOW_SECONDS = 60;

export interface RateLimitState {
  limit: number;
  remaining: number;
  reset: number;
}

export function clientIp(c: Context<AppEnv>): string {
  // Cloudflare sets CF-Connecting-IP and strips any client-sent copy; locally it is absent.
  return c.req.header("cf-connecting-ip") ?? "local";
}

/**
 * A fixed one-minute window counted in KV: one read and one write per check. KV is eventually
 * consistent, so concurrent requests in different locations may each see a stale count; the
 * limit is a brake on brute force, not an exact quota.
 */
export async function enforceRateLimit(c: Context<AppEnv>, bucket: string, subject: string, limit: number): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const windowStart = now - (now % WINDOW_SECONDS);
  const reset = windowStart + WINDOW_SECONDS - now;
  // Subjects (IPs, emails) are keyed by HMAC so KV holds no personal data in the clear.
  const hashed = (await hmacHex(c.var.config.hmacSecret, `rl:${subject}`)).slice(0, 32);
  const { key, ttl } = kvKeys.rateLimit(bucket, hashed, windowStart, WINDOW_SECONDS);
  const count = Number((await c.var.kv.get(key)) ?? "0");
  const state: RateLimitState = { limit, remaining: Math.max(0, limit - count - 1), reset };
  // The tightest limit met on this request is the one reported.
  const prev = c.get("rateLimit");
  if (!prev || state.remaining < prev.remaining) c.set("rateLimit", state);
  if (count >= limit) {
    c.set("rateLimit", { limit, remaining: 0, reset });
    throw new ApiError("rate_limited", `Too many requests; retry in ${reset} s.`, { headers: { "Retry-After": String(reset) } });
  }
  await c.var.kv.put(key, String(count + 1), { expirationTtl: ttl });
}

/** Per-IP limit for the unauthenticated auth routes. */
export const authRateLimit: MiddlewareHandler<AppEnv> = async (c, next) => {
  await enforceRateLimit(c, "auth-ip", clientIp(c), c.var.config.authRateLimitPerMinute);
  return next();
};

export function rateLimitHeaders(state: RateLimitState | undefined): Record<string, string> {
  if (!state) return {};
  return {
    "RateLimit-Limit": String(state.limit),
    "RateLimit-Remaining": String(state.remaining),
    "RateLimit-Reset": String(state.reset),
  };
}
