import { hmacHex } from "./crypto";
import { kvKeys } from "./kv-keys";

/** What a response reports in RateLimit-* headers: the tightest limit met on the request. */
export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  reset: number;
}

export interface Limit {
  /** What is counted (`client`, `credential`, `login-email`, …): buckets never share a counter. */
  bucket: string;
  /** Whose budget: an IP prefix, a credential, an email. Only its HMAC reaches KV. */
  subject: string;
  limit: number;
  windowSeconds: number;
}

/** A limit resolved to its KV counter for the current fixed window. */
export interface Counter {
  limit: Limit;
  key: string;
  ttl: number;
  windowEnd: number;
  reset: number;
}

// A credential makes many requests: its subject's HMAC is kept per isolate (bounded).
const subjectKeys = new Map<string, string>();

async function subjectKey(hmacSecret: string, subject: string): Promise<string> {
  const id = `${hmacSecret}\n${subject}`;
  let hashed = subjectKeys.get(id);
  if (hashed === undefined) {
    hashed = (await hmacHex(hmacSecret, `rl:${subject}`)).slice(0, 32);
    if (subjectKeys.size >= 10_000) subjectKeys.clear();
    subjectKeys.set(id, hashed);
  }
  return hashed;
}

export async function counterFor(hmacSecret: string, limit: Limit, nowMs = Date.now()): Promise<Counter> {
  const now = Math.floor(nowMs / 1000);
  const windowStart = now - (now % limit.windowSeconds);
  const windowEnd = windowStart + limit.windowSeconds;
  // Subjects (IPs, emails, credentials) are keyed by HMAC so KV holds no personal data in the clear.
  const hashed = await subjectKey(hmacSecret, limit.subject);
  const { key, ttl } = kvKeys.rateLimit(limit.bucket, hashed, windowStart, limit.windowSeconds);
  return { limit, key, ttl, windowEnd, reset: windowEnd - now };
}

/**
 * This isolate's hits per counter. KV allows about one write a second per key and is eventually
 * consistent, so hits are counted here exactly and written to KV in steps (`flushEvery`): the
 * shared count lags by less than a step per isolate. The limit is a brake on abuse, not a quota.
 */
const local = new Map<string, { written: number; pending: number; windowEnd: number; shared?: { stored: string | null; readAt: number } }>();

/** How long an isolate goes on using its last read of a counter written in steps. */
export const SHARED_COUNT_REREAD_MS = 1_000;

/** Hits between two writes of a counter's total to KV: about one write a second at the limit's own rate. */
const flushEveryOf = (limit: Limit) => Math.max(1, Math.ceil(limit.limit / limit.windowSeconds));

function entry(counter: Counter) {
  let e = local.get(counter.key);
  if (!e) {
    if (local.size > 10_000) {
      const now = Date.now() / 1000;
      for (const [k, v] of local) if (v.windowEnd <= now) local.delete(k);
    }
    e = { written: 0, pending: 0, windowEnd: counter.windowEnd };
    local.set(counter.key, e);
  }
  return e;
}

/**
 * The counter's KV value as this isolate read it less than a second ago, or undefined: read it
 * again. Only a counter written in steps is read in steps too; a tight limit (login failures, a
 * client's budget at its default) is written on every hit and read on every request. Other
 * isolates' hits show here a second later at most: KV itself shows them up to a minute later in
 * other locations, so reading a busy counter on every request bought no precision, only a key read.
 */
export function recentSharedCount(counter: Counter, nowMs = Date.now()): string | null | undefined {
  if (flushEveryOf(counter.limit) === 1) return undefined;
  const shared = local.get(counter.key)?.shared;
  return shared && nowMs - shared.readAt < SHARED_COUNT_REREAD_MS ? shared.stored : undefined;
}

/** Remembers what KV held for the counter, for recentSharedCount. */
export function noteSharedCount(counter: Counter, stored: string | null, nowMs = Date.now()): void {
  if (flushEveryOf(counter.limit) > 1) entry(counter).shared = { stored, readAt: nowMs };
}

/** Hits so far in the window: the larger of KV's count and what this isolate last wrote, plus its unwritten hits. */
function countOf(counter: Counter, stored: string | null): number {
  const e = local.get(counter.key);
  const kv = Number(stored ?? "0") || 0;
  return Math.max(kv, e?.written ?? 0) + (e?.pending ?? 0);
}

/** The state after this request, and whether the request is over the limit. */
export function evaluate(counter: Counter, stored: string | null): { count: number; state: RateLimitState; exceeded: boolean } {
  const count = countOf(counter, stored);
  const { limit } = counter.limit;
  return { count, state: { limit, remaining: Math.max(0, limit - count - 1), reset: counter.reset }, exceeded: count >= limit };
}

/**
 * Counts one hit. Every `flushEvery` hits (about one write a second at the limit's own rate) the
 * total goes to KV; the write runs after the response and a failed one is counted again later.
 */
export function recordHit(counter: Counter, stored: string | null, kv: KVNamespace, waitUntil: (p: Promise<unknown>) => void): void {
  const total = countOf(counter, stored) + 1;
  const e = entry(counter);
  const pending = e.pending + 1;
  const flushEvery = flushEveryOf(counter.limit);
  if (pending < flushEvery) {
    e.pending = pending;
    return;
  }
  const base = e.written;
  e.written = total;
  e.pending = 0;
  waitUntil(
    kv.put(counter.key, String(total), { expirationTtl: counter.ttl }).catch(() => {
      e.written = base;
      e.pending += pending;
    }),
  );
}

/** The tighter of two states: the one with fewer requests left. */
export function tighter(a: RateLimitState | undefined, b: RateLimitState): RateLimitState {
  return !a || b.remaining < a.remaining ? b : a;
}

/**
 * The budget a client address draws on: an IPv4 address, or an IPv6 /64 (one subscriber's
 * network; a client that holds a /64 could otherwise rotate through 2^64 addresses).
 */
export function clientSubject(ip: string): string {
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4mapped) return v4mapped[1]!;
  if (!ip.includes(":")) return ip;
  const [head = "", tail = ""] = ip.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = ip.includes("::") ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(":")}::/64`;
}
