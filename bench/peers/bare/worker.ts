/**
 * The floor of the bench: no framework, no authentication, no validation. `/` answers at once
 * (what workerd itself costs per request); `/limit` does exactly one KV get and then one D1 read
 * by primary key (an authenticated read cannot do less: check the credential, read the row) and
 * reports them in the same `Server-Timing` format as the systems under test.
 */
interface Env {
  DB: { prepare(sql: string): { bind(...values: unknown[]): { all(): Promise<{ results: unknown[]; meta: { rows_read?: number } }> } } };
  KV: { get(key: string): Promise<string | null> };
  LIMIT_KEY: string;
  LIMIT_ROW_ID: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (new URL(request.url).pathname !== "/limit") return new Response("ok");
    const started = Date.now();
    const value = await env.KV.get(env.LIMIT_KEY);
    const dbStarted = Date.now();
    const read = await env.DB.prepare("select id, body from rows where id = ?").bind(env.LIMIT_ROW_ID).all();
    const dbMs = Date.now() - dbStarted;
    if (value === null || read.results.length !== 1) return new Response("not seeded", { status: 500 });
    return Response.json(read.results[0], {
      headers: {
        "Server-Timing": `db;dur=${dbMs};desc="queries=1 rows_read=${read.meta.rows_read ?? 0}", kv;desc="reads=1 writes=0", total;dur=${Date.now() - started}`,
      },
    });
  },
};
