import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { loadConfig } from "../env";
import { createDb, newDbStats } from "../db/client";
import { countedKv, newKvStats } from "../lib/kv";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

const SECURITY_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/**
 * Builds what every handler reads from `c.var` (config, counted db and KV, request id) and, on
 * the way out, stamps the request id, security headers and the Server-Timing cost report.
 */
export const requestContext: MiddlewareHandler<AppEnv> = async (c, next) => {
  const incoming = c.req.header("x-request-id");
  const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : `req_${crypto.randomUUID().replace(/-/g, "")}`;
  c.set("requestId", requestId);
  const started = Date.now();
  const config = loadConfig(c.env);
  const dbStats = newDbStats(config.environment !== "production");
  const kvStats = newKvStats();
  c.set("dbStats", dbStats);
  c.set("kvStats", kvStats);
  c.set("config", config);
  c.set("db", createDb(c.env.DB, dbStats));
  c.set("kv", countedKv(c.env.KV, kvStats));

  await next();

  const h = c.res.headers;
  h.set("X-Request-Id", requestId);
  h.set(
    "Server-Timing",
    `db;dur=${dbStats.durationMs};desc="queries=${dbStats.queries} rows_read=${dbStats.rowsRead} statements=${dbStats.statements}", kv;desc="reads=${kvStats.reads} writes=${kvStats.writes}", total;dur=${Date.now() - started}`,
  );
  const limit = c.get("rateLimit");
  if (limit) {
    h.set("RateLimit-Limit", String(limit.limit));
    h.set("RateLimit-Remaining", String(limit.remaining));
    h.set("RateLimit-Reset", String(limit.reset));
  }
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!h.has(k)) h.set(k, v);
  if (!h.has("Content-Security-Policy")) h.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  if (!h.has("Cache-Control")) h.set("Cache-Control", "no-store");
};
