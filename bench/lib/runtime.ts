/**
 * The local runtime the bench drives: workers bundled with esbuild and served by Miniflare's API
 * on workerd, each with a fresh local D1 (and KV, queues) under a temporary directory.
 *
 * Miniflare and esbuild are the copies wrangler itself depends on and pins (so the bench runs on
 * the workerd that `wrangler dev` uses, without a version of its own to keep in step). Not
 * `wrangler dev`: its proxy and debugger hook add 4–5 ms to every D1 query, against 1.2–1.7 ms
 * here, and would drown the differences the bench is there to show.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import path from "node:path";

const require = createRequire(import.meta.url);
const fromWrangler = createRequire(require.resolve("wrangler/package.json"));

/** The parts of wrangler's Miniflare this bench uses. */
export interface D1Result<T = Record<string, unknown>> {
  results: T[];
  meta: { rows_read?: number; rows_written?: number; changes?: number; duration?: number };
}
export interface D1Statement {
  bind(...values: unknown[]): D1Statement;
  all<T = Record<string, unknown>>(): Promise<D1Result<T>>;
  run(): Promise<D1Result>;
  first<T = Record<string, unknown>>(): Promise<T | null>;
}
export interface D1 {
  prepare(sql: string): D1Statement;
  batch(statements: D1Statement[]): Promise<D1Result[]>;
}
export interface MiniflareInstance {
  ready: Promise<URL>;
  getD1Database(binding: string): Promise<D1>;
  dispose(): Promise<void>;
}
type MiniflareCtor = new (options: Record<string, unknown>) => MiniflareInstance;

interface EsbuildModule {
  build(options: Record<string, unknown>): Promise<{ errors: unknown[]; warnings: { text: string }[] }>;
}

const { Miniflare } = fromWrangler("miniflare") as { Miniflare: MiniflareCtor };
const esbuild = fromWrangler("esbuild") as EsbuildModule;

export const runtimeVersions = () => ({
  wrangler: (require("wrangler/package.json") as { version: string }).version,
  miniflare: (fromWrangler("miniflare/package.json") as { version: string }).version,
  workerd: (createRequire(fromWrangler.resolve("miniflare"))("workerd/package.json") as { version: string }).version,
});

/**
 * Bundles a worker as wrangler does for workerd: ES module output, the `workerd`/`worker`/`browser`
 * export conditions, and the runtime's own modules (`cloudflare:*`, `node:*` with nodejs_compat)
 * left external.
 */
export async function bundleWorker(entry: string, outfile: string): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["workerd", "worker", "browser", "module", "main"],
    external: ["cloudflare:*", "node:*"],
    define: { "process.env.NODE_ENV": '"production"' },
    minify: false,
    sourcemap: false,
    logLevel: "silent",
  });
  if (result.errors.length > 0) throw new Error(`esbuild failed for ${entry}`);
  return outfile;
}

/** A free TCP port on 127.0.0.1, so a worker's base URL is known before it starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface WorkerSpec {
  name: string;
  scriptPath: string;
  port: number;
  /** Where this worker's D1, KV and queue state live (a fresh temporary directory). */
  persistDir: string;
  compatibilityDate: string;
  compatibilityFlags?: string[];
  bindings: Record<string, string>;
  d1Databases: Record<string, string>;
  kvNamespaces?: Record<string, string>;
  queueProducers?: Record<string, { queueName: string }>;
  queueConsumers?: Record<string, { maxBatchSize?: number; maxBatchTimeout?: number; maxRetries?: number; deadLetterQueue?: string }>;
}

/** Starts one worker on workerd, listening on 127.0.0.1 only. Stop it with `dispose()`. */
export async function startWorker(spec: WorkerSpec): Promise<{ mf: MiniflareInstance; url: string }> {
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: spec.port,
    d1Persist: path.join(spec.persistDir, "d1"),
    kvPersist: path.join(spec.persistDir, "kv"),
    cachePersist: path.join(spec.persistDir, "cache"),
    durableObjectsPersist: path.join(spec.persistDir, "do"),
    workers: [
      {
        name: spec.name,
        // The bundle is one module: declared as such, Miniflare does not walk its imports (and so
        // does not trip over dynamic import() of node:sqlite in code paths that never run here).
        modules: [{ type: "ESModule", path: spec.scriptPath, contents: readFileSync(spec.scriptPath) }],
        modulesRoot: path.dirname(spec.scriptPath),
        compatibilityDate: spec.compatibilityDate,
        compatibilityFlags: spec.compatibilityFlags ?? [],
        bindings: spec.bindings,
        d1Databases: spec.d1Databases,
        kvNamespaces: spec.kvNamespaces ?? {},
        queueProducers: spec.queueProducers ?? {},
        queueConsumers: spec.queueConsumers ?? {},
      },
    ],
  });
  const url = await mf.ready;
  return { mf, url: url.origin };
}
