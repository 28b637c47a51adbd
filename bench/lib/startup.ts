/**
 * Cold start: how long a fresh isolate of each worker takes to answer its first request. Each
 * sample starts the worker from nothing (a new Miniflare, hence a new workerd process, with fresh
 * D1/KV state), asks its cheapest route once, and stops it; the workers take turns
 * so that drift falls on all alike. A new workerd process also pays for itself (the bare worker's
 * figure), which a running Cloudflare location does not: the budget is on what our worker adds.
 *
 * Module evaluation is measured apart, in Node (the same V8 engine family): `import()` of the
 * built main module in a fresh process, the parse and every module-scope statement of the bundle.
 */
import { execFile } from "node:child_process";
import { copyFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { freePort, startWorker } from "./runtime";
import type { System, SystemKey } from "./systems";

/**
 * docs/performance.md states these: a fresh isolate of the tenancy API, minified, answers its
 * first request within this much of the bare worker's (medians of one run).
 */
export const STARTUP_BUDGET_OVER_BARE_MS = 600;

export interface StartupSample {
  /** From `new Miniflare()` to workerd listening (the script compiled and its module scope run). */
  readyMs: number;
  /** The first request after that. */
  firstRequestMs: number;
  /** Both: the time to first response. */
  totalMs: number;
}

export interface StartupResult {
  system: SystemKey;
  name: string;
  bundleBytes: number;
  gzipBytes: number;
  samples: StartupSample[];
  median: StartupSample;
  /** Median `import()` time of the built main module in a fresh Node process; null when Node cannot load it. */
  moduleEvalMs: number | null;
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function coldStart(system: System, persistDir: string): Promise<StartupSample> {
  const port = await freePort();
  const started = performance.now();
  const { mf, url } = await startWorker({ ...system.fresh.spec, port, persistDir });
  try {
    const readyMs = performance.now() - started;
    await system.fresh.prepare?.(mf);
    const asked = performance.now();
    const res = await fetch(`${url}${system.fresh.path}`);
    await res.arrayBuffer();
    const firstRequestMs = performance.now() - asked;
    if (!res.ok) throw new Error(`${system.name}: a fresh isolate answered ${res.status} on ${system.fresh.path}`);
    return { readyMs, firstRequestMs, totalMs: readyMs + firstRequestMs };
  } finally {
    await mf.dispose();
  }
}

async function moduleEvalMs(system: System, samples: number): Promise<number | null> {
  const { bundle } = system.fresh.spec;
  // The main module alone, as .mjs (a .js file outside a `"type": "module"` package is parsed twice
  // by Node to detect its format). Modules beside it (text, wasm) are workerd's: this fails only if
  // the module scope itself imports them, which it should not.
  const main = path.join(path.dirname(bundle.dir), `${system.key}-module-eval.mjs`);
  copyFileSync(path.join(bundle.dir, bundle.modules[0]!.path), main);
  const script = `const t = performance.now(); await import(${JSON.stringify(main)}); console.log(performance.now() - t);`;
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
      times.push(Number(stdout.trim().split("\n").at(-1)));
    }
  } catch {
    return null;
  }
  return median(times);
}

export async function measureStartup(systems: System[], opts: { samples: number; tmp: string; log: (msg: string) => void }): Promise<StartupResult[]> {
  const samples = new Map<SystemKey, StartupSample[]>(systems.map((s) => [s.key, []]));
  for (let i = 0; i < opts.samples; i++) {
    // Rotate who goes first.
    const order = systems.map((_, j) => systems[(i + j) % systems.length]!);
    for (const system of order) samples.get(system.key)!.push(await coldStart(system, path.join(opts.tmp, "startup", `${system.key}-${i}`)));
  }
  const results: StartupResult[] = [];
  for (const system of systems) {
    const list = samples.get(system.key)!;
    const result: StartupResult = {
      system: system.key,
      name: system.name,
      bundleBytes: system.fresh.spec.bundle.bytes,
      gzipBytes: system.fresh.spec.bundle.gzipBytes,
      samples: list,
      median: {
        readyMs: median(list.map((s) => s.readyMs)),
        firstRequestMs: median(list.map((s) => s.firstRequestMs)),
        totalMs: median(list.map((s) => s.totalMs)),
      },
      moduleEvalMs: await moduleEvalMs(system, opts.samples),
    };
    results.push(result);
    opts.log(
      `startup ${system.name}: ${Math.round(result.median.totalMs)} ms to first response (ready ${Math.round(result.median.readyMs)} ms + first request ${Math.round(result.median.firstRequestMs)} ms), module evaluation ${result.moduleEvalMs === null ? "n/a" : `${Math.round(result.moduleEvalMs)} ms`}`,
    );
  }
  return results;
}
