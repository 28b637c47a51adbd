/**
 * The bare worker (worker.ts beside this file): the floor every row of the bench is read against,
 * and the trivial worker of the startup measurement. Built and served like the systems under test,
 * with a D1 table of as many rows as the largest organization, read by primary key.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { buildWorker, freePort, startWorker, writeWorkerConfig, type WorkerSpec } from "../../lib/runtime";
import { SEQUENCE_CTE, formatCount, type RequestSpec, type RouteKey, type System } from "../../lib/systems";
import { PEER_COMPATIBILITY } from "../better-auth/config";

const HERE = import.meta.dirname;
const LIMIT_KEY = "limit:key";
const LIMIT_ROW_ID = "row-000042";

export async function startBare(opts: { tmp: string; sizes: number[]; minify: boolean; log: (msg: string) => void }): Promise<System> {
  const dir = path.join(opts.tmp, "bare");
  mkdirSync(dir, { recursive: true });
  const main = path.join(HERE, "worker.ts");
  const config = writeWorkerConfig(dir, { name: "bare", main, ...PEER_COMPATIBILITY, minify: opts.minify });
  const bundle = await buildWorker({ config, main, outDir: path.join(dir, "dist") });
  const spec: Omit<WorkerSpec, "port" | "persistDir"> = {
    name: "bare",
    bundle,
    ...PEER_COMPATIBILITY,
    bindings: { LIMIT_KEY, LIMIT_ROW_ID },
    d1Databases: { DB: "bare-bench" },
    kvNamespaces: { KV: "bare-bench-kv" },
  };
  const port = await freePort();
  const { mf, url } = await startWorker({ ...spec, port, persistDir: dir });
  const stop = () => mf.dispose();
  try {
    const db = await mf.getD1Database("DB");
    const rows = Math.max(...opts.sizes);
    await db.batch([
      db.prepare("create table rows (id text primary key, body text not null)"),
      db.prepare(`${SEQUENCE_CTE} insert into rows (id, body) select printf('row-%06d', i), printf('Row %06d', i) from seq`).bind(rows),
    ]);
    await (await mf.getKVNamespace("KV")).put(LIMIT_KEY, "1");
    const check = await fetch(`${url}/limit`);
    if (!check.ok) throw new Error(`bare worker: /limit answered ${check.status}`);
    opts.log(`bare: ${formatCount(rows)} rows, read by primary key`);

    const requests: Partial<Record<RouteKey, RequestSpec>> = {
      floor: { label: "GET / (returns at once)", method: "GET", path: "/", headers: {} },
      limit: { label: "GET /limit (KV get, then D1 select by primary key)", method: "GET", path: "/limit", headers: {} },
    };
    return {
      key: "bare",
      name: "bare worker",
      url,
      requestFor: (route) => requests[route] ?? null,
      notes: [`no framework; /limit: one KV.get, then one D1 \`select … where id = ?\` over ${formatCount(rows)} rows`],
      fresh: { spec, path: "/" },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
