import { env } from "cloudflare:workers";

/** The error D1 answers with when it cannot serve a session's bookmark (another database's, or one from its future). */
export const refusal = () => new Error("D1_ERROR: D1_SESSION_ERROR: bookmark is not valid for this database");

/** A session that refuses its bookmark on every round trip, as production D1 does with one it cannot serve. */
function refusingSession(bookmark: string): D1DatabaseSession {
  const statement = {
    bind: () => statement,
    all: () => Promise.reject(refusal()),
    run: () => Promise.reject(refusal()),
    first: () => Promise.reject(refusal()),
    raw: () => Promise.reject(refusal()),
  };
  return {
    prepare: () => statement as unknown as D1PreparedStatement,
    batch: () => Promise.reject(refusal()),
    getBookmark: () => bookmark,
  } as unknown as D1DatabaseSession;
}

/**
 * The real local D1 binding, recording what every `withSession` starts from. Pass it as
 * `env: { DB: spy.binding }`; a bookmark `refuse` names gets a session that D1 refuses.
 */
export function spyD1(refuse: (start: string | undefined) => boolean = () => false) {
  const real = env.DB as D1Database;
  const starts: (string | undefined)[] = [];
  const binding = {
    // testEnv caches env objects by their JSON, which drops functions: a distinct key per spy.
    spy: crypto.randomUUID(),
    prepare: (sql: string) => real.prepare(sql),
    batch: (statements: D1PreparedStatement[]) => real.batch(statements),
    exec: (sql: string) => real.exec(sql),
    dump: () => real.dump(),
    withSession(start?: string) {
      starts.push(start);
      return start !== undefined && refuse(start) ? refusingSession(start) : real.withSession(start);
    },
  };
  return { binding: binding as unknown as D1Database, starts };
}

/**
 * The real local KV binding, recording the keys each `get` asks for (one array per call). Pass it
 * as `env: { KV: spy.binding }`.
 */
export function spyKV() {
  const real = env.KV as KVNamespace;
  const calls: string[][] = [];
  const binding = {
    spy: crypto.randomUUID(),
    get: (key: string | string[], opts?: unknown) => {
      calls.push(Array.isArray(key) ? [...key] : [key]);
      return (real.get as (k: unknown, o?: unknown) => Promise<unknown>)(key, opts);
    },
    getWithMetadata: (key: string, opts?: unknown) => (real.getWithMetadata as (k: string, o?: unknown) => Promise<unknown>)(key, opts),
    put: (key: string, value: string, opts?: KVNamespacePutOptions) => real.put(key, value, opts),
    delete: (key: string) => real.delete(key),
    list: (opts?: KVNamespaceListOptions) => real.list(opts),
  };
  return { binding: binding as unknown as KVNamespace, calls };
}
