/**
 * The Better Auth peer worker: serves Better Auth under /api/auth and reports each request's D1 round
 * trips and rows read in the same `Server-Timing` format as the tenancy API, so that the bench
 * reads both systems' cost the same way. The counting wrapper only tallies what D1 reports.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createAuth, type D1Like, type D1ResultLike, type D1StatementLike, type PeerEnv } from "./auth";

interface Stats {
  queries: number;
  rowsRead: number;
  durationMs: number;
}

type Counted = D1StatementLike & { inner: D1StatementLike };

function record(stats: Stats, started: number, results: D1ResultLike[]) {
  stats.queries += 1;
  stats.durationMs += Date.now() - started;
  for (const r of results) stats.rowsRead += r.meta?.rows_read ?? 0;
}

function countedStatement(inner: D1StatementLike, stats: Stats): Counted {
  return {
    inner,
    bind: (...values: unknown[]) => countedStatement(inner.bind(...values), stats),
    all: async <T>() => {
      const started = Date.now();
      const res = await inner.all<T>();
      record(stats, started, [res as D1ResultLike]);
      return res;
    },
  };
}

/** A D1 look-alike that counts round trips (a batch is one) and rows read. */
function countedD1(inner: D1Like, stats: Stats): D1Like {
  return {
    prepare: (query) => countedStatement(inner.prepare(query), stats),
    batch: async (statements) => {
      const started = Date.now();
      const res = await inner.batch(statements.map((s) => (s as Counted).inner));
      record(stats, started, res);
      return res;
    },
    exec: async (query) => {
      const started = Date.now();
      const res = await inner.exec(query);
      record(stats, started, []);
      return res;
    },
  };
}

/** Each request's counter travels with it: an isolate interleaves concurrent requests. */
const requestStats = new AsyncLocalStorage<Stats>();
const untracked: Stats = { queries: 0, rowsRead: 0, durationMs: 0 };

/**
 * One Better Auth instance per isolate (env objects are stable for an isolate's lifetime), as a
 * deployment would have; its D1 handle counts into whichever request is running the query.
 */
const instances = new WeakMap<object, ReturnType<typeof createAuth>>();

function authFor(env: PeerEnv) {
  let auth = instances.get(env);
  if (!auth) {
    const db: D1Like = {
      prepare: (q) => countedD1(env.DB, requestStats.getStore() ?? untracked).prepare(q),
      batch: (s) => countedD1(env.DB, requestStats.getStore() ?? untracked).batch(s),
      exec: (q) => countedD1(env.DB, requestStats.getStore() ?? untracked).exec(q),
    };
    auth = createAuth(db, env);
    instances.set(env, auth);
  }
  return auth;
}

export default {
  async fetch(request: Request, env: PeerEnv): Promise<Response> {
    const started = Date.now();
    const stats: Stats = { queries: 0, rowsRead: 0, durationMs: 0 };
    const auth = authFor(env);
    const res = await requestStats.run(stats, () => auth.handler(request));
    const out = new Response(res.body, res);
    out.headers.set(
      "Server-Timing",
      `db;dur=${stats.durationMs};desc="queries=${stats.queries} rows_read=${stats.rowsRead}", kv;desc="reads=0 writes=0", total;dur=${Date.now() - started}`,
    );
    return out;
  },
};
