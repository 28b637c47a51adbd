import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env";
import { loadConfig } from "../env";
import { createSessionDb, newDbStats, type SessionStart } from "../db/client";
import { validationError } from "../lib/errors";
import { countedKv, newKvStats } from "../lib/kv";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Carries a D1 session bookmark: on a response, where the request's session got to; on a request, where to resume. */
export const BOOKMARK_HEADER = "X-D1-Bookmark";

/**
 * D1 issues bookmarks as dash-separated lowercase hex groups (8-8-8-32 digits today). The shape is
 * checked, not the widths, so a change on D1's side does not turn every client's stored bookmark
 * into a 400. Anything else is refused: the runtime would pass any string on (workerd keeps it as
 * the session's bookmark and would echo it back on every response).
 */
const BOOKMARK = /^[0-9a-f]{1,64}(?:-[0-9a-f]{1,64}){1,7}$/;

/**
 * Without a bookmark, a read starts anywhere (the nearest replica). Anything else starts at the
 * primary: a mutation's reads (authorization, the rows it loads, uniqueness checks) decide what it
 * writes, so they must see the latest state, not a replica's lag; and its writes go to the primary
 * anyway, so starting there costs no extra hop. SCIM reads start there too: identity providers
 * cannot carry a bookmark, and they read right after they write (create, then look the user up).
 */
function sessionStart(method: string, path: string, bookmark: string | undefined): SessionStart {
  if (bookmark) return bookmark;
  if (path.startsWith("/scim/")) return "first-primary";
  return method === "GET" || method === "HEAD" ? "first-unconstrained" : "first-primary";
}

const SECURITY_HEADERS: Record<string, string> = {
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/**
 * Opens the request's D1 session from the client's bookmark. It runs after CORS, so a refused
 * bookmark is a 400 a browser can read; every handler's db is the session it names, so it is
 * settled before any handler runs.
 */
export const d1Session: MiddlewareHandler<AppEnv> = async (c, next) => {
  // An empty value is "no bookmark": Cloudflare's own example sends back `getBookmark() ?? ""`.
  const sent = c.req.header(BOOKMARK_HEADER)?.trim() || undefined;
  if (sent !== undefined && !BOOKMARK.test(sent)) {
    throw validationError(
      [{ path: BOOKMARK_HEADER, message: "must be the X-D1-Bookmark value of an earlier response" }],
      "The X-D1-Bookmark header is not a D1 bookmark; send back the one an earlier response carried, or none.",
    );
  }
  const session = createSessionDb(c.env.DB, c.var.dbStats, sessionStart(c.req.method, c.req.path, sent));
  c.set("db", session.db);
  c.set("d1Bookmark", session.bookmark);
  await next();
};

/**
 * Builds what every handler reads from `c.var` (config, counted db and KV, request id) and, on
 * the way out, stamps the request id, the D1 bookmark, security headers and the Server-Timing
 * cost report.
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
  c.set("kv", countedKv(c.env.KV, kvStats));

  await next();

  // A request that never reached D1 hands back the bookmark it resumed from, so a client that
  // keeps "the last response's bookmark" never loses its place; a fresh one has none to give.
  const bookmark = c.get("d1Bookmark")?.() ?? null;

  const h = c.res.headers;
  h.set("X-Request-Id", requestId);
  if (bookmark) h.set(BOOKMARK_HEADER, bookmark);
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
