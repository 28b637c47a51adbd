/**
 * `npm run bench`: the tenancy API and Better Auth side by side, on the same local runtime
 * (Miniflare's API on workerd), each with a fresh local D1 seeded with organizations of 100,
 * 10,000 and 100,000 members; bounded load from autocannon against 127.0.0.1 only.
 *
 *   npm run bench                                  the full run (about 6 minutes on 2 cores)
 *   npm run bench -- --sizes 100,10000 --rounds 1  a quicker one
 *   npm run bench -- --compare A.json B.json       two saved runs side by side
 *
 * Options: --sizes, --seconds (per round), --rounds, --warmup (seconds), --connections,
 * --routes (keys, comma-separated), --systems ours,theirs,bare, --startup-samples (0: skip),
 * --out FILE.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { drive, type RoundResult } from "./lib/load";
import { startOurs } from "./lib/ours";
import { checks, compare, renderReport, summarize, type BenchResults, type RouteResult } from "./lib/report";
import { runtimeVersions } from "./lib/runtime";
import { measureStartup } from "./lib/startup";
import { PAGE_SIZE, ROUTES, formatCount, type RouteKey, type System, type SystemKey } from "./lib/systems";
import { startBare } from "./peers/bare/system";
import { startBetterAuth } from "./peers/better-auth/system";
import { unstable_readConfig } from "wrangler";

const { values: args, positionals } = parseArgs({
  options: {
    sizes: { type: "string", default: "100,10000,100000" },
    seconds: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    connections: { type: "string", default: "10" },
    routes: { type: "string" },
    systems: { type: "string", default: "ours,theirs,bare" },
    "startup-samples": { type: "string", default: "9" },
    out: { type: "string" },
    compare: { type: "boolean", default: false },
  },
  allowPositionals: true,
  strict: true,
});

if (args.compare) {
  if (positionals.length !== 2) throw new Error("--compare needs two result files");
  const [a, b] = positionals.map((f) => JSON.parse(readFileSync(f, "utf8")) as BenchResults);
  console.log(compare(a!, b!));
  process.exit(0);
}

const int = (name: string, v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
};
const settings = {
  sizes: args.sizes.split(",").map((s) => Math.round(int("sizes", s))),
  seconds: int("seconds", args.seconds),
  rounds: Math.round(int("rounds", args.rounds)),
  warmupSeconds: Number(args.warmup),
  connections: Math.round(int("connections", args.connections)),
  pageSize: PAGE_SIZE,
  startupSamples: Math.max(0, Math.round(Number(args["startup-samples"]) || 0)),
};
const onlyRoutes = args.routes ? new Set(args.routes.split(",")) : null;
const wanted = new Set(args.systems.split(",") as SystemKey[]);

const root = path.resolve(import.meta.dirname, "..");
const startedAt = new Date();
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s`;
const log = (msg: string) => console.log(`[${elapsed()}] ${msg}`);

const tmp = mkdtempSync(path.join(os.tmpdir(), "tenancy-bench-"));
const systems: System[] = [];
let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  // Each worker is stopped through the handle its start returned; nothing is killed by name.
  await Promise.allSettled(systems.map((s) => s.stop()));
  rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the workers`);
    void shutdown().then(() => process.exit(130));
  });
}

try {
  const cpus = os.cpus();
  log(`${cpus.length} × ${cpus[0]?.model ?? "cpu"}, Node ${process.version}, ${JSON.stringify(runtimeVersions())}`);
  log(
    `sizes ${settings.sizes.map(formatCount).join(", ")}; ${settings.rounds} rounds × ${settings.seconds} s per system and operation, ${settings.connections} connections`,
  );
  // The peers are built as the tenancy API is: minified when wrangler.toml says so.
  const minify = unstable_readConfig({ config: path.join(root, "wrangler.toml") }).minify ?? false;
  const seed = { tmp, sizes: settings.sizes, minify, log };
  if (wanted.has("ours")) systems.push(await startOurs(seed));
  if (wanted.has("theirs")) systems.push(await startBetterAuth(seed));
  if (wanted.has("bare")) systems.push(await startBare(seed));
  log(`ready: ${systems.map((s) => `${s.name} on ${s.url}`).join(", ")}`);

  // Before any load, while nothing else of the bench runs.
  const startup = settings.startupSamples > 0 ? await measureStartup(systems, { samples: settings.startupSamples, tmp, log }) : [];

  // Size-independent operations once, then per size; invitations last so that none of the reads
  // of an organization sees the invitations the bench adds.
  const plan: { route: RouteKey; title: string; size: number | null }[] = [];
  for (const r of ROUTES.filter((r) => !r.size)) plan.push({ route: r.key, title: r.title, size: null });
  for (const size of settings.sizes) for (const r of ROUTES.filter((r) => r.size)) plan.push({ route: r.key, title: r.title, size });
  const todo = plan.filter((p) => !onlyRoutes || onlyRoutes.has(p.route));

  const results: RouteResult[] = [];
  for (const [n, item] of todo.entries()) {
    const size = item.size ?? Math.min(...settings.sizes);
    const runs = systems.map((s) => ({ system: s, spec: s.requestFor(item.route, size), rounds: [] as RoundResult[] })).filter((r) => r.spec !== null);
    if (runs.length === 0) continue;
    if (settings.warmupSeconds > 0) {
      for (const r of runs) await drive(r.system.url, r.spec!, { seconds: settings.warmupSeconds, connections: settings.connections });
    }
    // Alternate the systems round by round, and which goes first, so drift on a shared machine
    // falls on both alike.
    for (let round = 0; round < settings.rounds; round++) {
      const order = round % 2 === 0 ? runs : [...runs].reverse();
      for (const r of order) r.rounds.push(await drive(r.system.url, r.spec!, { seconds: settings.seconds, connections: settings.connections }));
    }
    const result: RouteResult = { route: item.route, title: item.title, size: item.size, systems: {} };
    for (const r of runs) result.systems[r.system.key] = summarize(r.spec!.label, r.rounds);
    results.push(result);
    const line = runs
      .map((r) => {
        const m = result.systems[r.system.key]!;
        return `${r.system.key} ${formatCount(Math.round(m.median.rps))} req/s p50 ${m.median.p50.toFixed(1)} ms${m.failures.length ? " (non-2xx!)" : ""}`;
      })
      .join(" | ");
    log(`(${n + 1}/${todo.length}) ${item.title}${item.size === null ? "" : ` @ ${formatCount(item.size)}`}: ${line}`);
  }

  const report: BenchResults = {
    version: 1,
    startedAt: startedAt.toISOString(),
    wallSeconds: (Date.now() - t0) / 1000,
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? "", node: process.version, platform: `${os.platform()} ${os.release()}` },
    runtime: runtimeVersions(),
    settings,
    systems: Object.fromEntries(systems.map((s) => [s.key, { name: s.name, notes: s.notes }])),
    results,
    startup,
    checks: checks(results, settings.sizes, startup),
  };
  console.log(`\n${renderReport(report)}\n`);
  const out = args.out ?? path.join(root, "bench", "results", `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`results: ${path.relative(process.cwd(), out)}; wall time ${(report.wallSeconds / 60).toFixed(1)} min`);
  process.exitCode = report.checks.every((c) => c.pass) ? 0 : 1;
} finally {
  await shutdown();
}
