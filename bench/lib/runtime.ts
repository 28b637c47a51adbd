/**
 * The local runtime the bench drives: workers built by wrangler itself (`wrangler deploy --dry-run
 * --outdir`, the artifact `wrangler deploy` would upload, minified as its config says) and served
 * by Miniflare's API on workerd, each with a fresh local D1 (and KV, queues) under a temporary
 * directory.
 *
 * Miniflare is the copy wrangler itself depends on and pins (so the bench runs on the workerd that
 * `wrangler dev` uses, without a version of its own to keep in step). Not `wrangler dev`: its proxy
 * and debugger hook add 4–5 ms to every D1 query, against 1.2–1.7 ms here, and would drown the
 * differences the bench is there to show.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { unstable_readConfig } from "wrangler";

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
export interface KVNamespace {
  put(key: string, value: string): Promise<void>;
}
export interface MiniflareInstance {
  ready: Promise<URL>;
  getD1Database(binding: string): Promise<D1>;
  getKVNamespace(binding: string): Promise<KVNamespace>;
  dispose(): Promise<void>;
}
type MiniflareCtor = new (options: Record<string, unknown>) => MiniflareInstance;

const { Miniflare } = fromWrangler("miniflare") as { Miniflare: MiniflareCtor };

export const runtimeVersions = () => ({
  wrangler: (require("wrangler/package.json") as { version: string }).version,
  miniflare: (fromWrangler("miniflare/package.json") as { version: string }).version,
  workerd: (createRequire(fromWrangler.resolve("miniflare"))("workerd/package.json") as { version: string }).version,
});

type ModuleType = "ESModule" | "Text" | "Data" | "CompiledWasm";
export interface WorkerModule {
  type: ModuleType;
  /** The module's name: its path relative to the bundle's directory, as the main module imports it. */
  path: string;
}
export interface Bundle {
  dir: string;
  /** The main module first, then any module wrangler emitted beside it (text, data, wasm). */
  modules: WorkerModule[];
  bytes: number;
  gzipBytes: number;
}

/** wrangler's default module rules, for a module no rule of the config names. */
const DEFAULT_TYPES: [RegExp, ModuleType][] = [
  [/\.wasm$/, "CompiledWasm"],
  [/\.bin$/, "Data"],
  [/./, "Text"],
];

/**
 * The type of a module wrangler emitted beside the main one (`<content hash>-<file name>`): the
 * config's `[[rules]]` decide, as they did for wrangler. A rule's glob is matched on its last
 * segment, since only the file name survives.
 */
function moduleType(file: string, rules: { type: string; globs: string[] }[]): ModuleType {
  const name = file.replace(/^[0-9a-f]{40}-/, "");
  const globRe = (glob: string) =>
    new RegExp(
      `^${path
        .basename(glob)
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
  const rule = rules.find((r) => r.globs.some((g) => globRe(g).test(name)));
  if (rule) return rule.type as ModuleType;
  return DEFAULT_TYPES.find(([re]) => re.test(name))![1];
}

/**
 * Builds a worker exactly as `wrangler deploy` would (the same esbuild settings, node built-ins
 * resolved for nodejs_compat, `minify` and module rules from the config), without uploading it.
 * Works offline.
 */
export async function buildWorker(worker: { config: string; main: string; outDir: string }): Promise<Bundle> {
  const { config, outDir } = worker;
  const wranglerBin = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
  await promisify(execFile)(process.execPath, [wranglerBin, "deploy", "--dry-run", "--outdir", outDir, "--config", config], {
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    maxBuffer: 16 * 1024 * 1024,
  });
  const files = readdirSync(outDir).filter((f) => f !== "README.md" && !f.endsWith(".map"));
  // wrangler names the bundle after its entry point.
  const main = path.basename(worker.main).replace(/\.[cm]?[jt]sx?$/, ".js");
  if (!files.includes(main)) throw new Error(`wrangler emitted no ${main} for ${config} in ${outDir} (found ${files.join(", ")})`);
  const rules = unstable_readConfig({ config }).rules ?? [];
  const others = files.filter((f) => f !== main);
  const contents = [main, ...others].map((f) => readFileSync(path.join(outDir, f)));
  return {
    dir: outDir,
    modules: [{ path: main, type: "ESModule" }, ...others.map((f) => ({ path: f, type: moduleType(f, rules) }))],
    bytes: contents.reduce((n, c) => n + c.length, 0),
    gzipBytes: contents.reduce((n, c) => n + gzipSync(c).length, 0),
  };
}

/** A wrangler config for a worker that has none of its own (the peers), written into `dir`. */
export function writeWorkerConfig(
  dir: string,
  worker: { name: string; main: string; compatibilityDate: string; compatibilityFlags?: string[]; minify: boolean },
): string {
  const file = path.join(dir, "wrangler.json");
  writeFileSync(
    file,
    JSON.stringify({
      name: worker.name,
      main: worker.main,
      compatibility_date: worker.compatibilityDate,
      compatibility_flags: worker.compatibilityFlags ?? [],
      minify: worker.minify,
    }),
  );
  return file;
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
  bundle: Bundle;
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
        // The modules are declared one by one: Miniflare does not walk their imports (and so does
        // not trip over dynamic import() of node:sqlite in code paths that never run here).
        modules: spec.bundle.modules.map((m) => ({
          type: m.type,
          path: path.join(spec.bundle.dir, m.path),
          contents: readFileSync(path.join(spec.bundle.dir, m.path)),
        })),
        modulesRoot: spec.bundle.dir,
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
