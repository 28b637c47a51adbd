/** The bench's results: medians over alternating rounds, Markdown tables, checks, and run-to-run comparison. */
import type { Cost, RoundResult } from "./load";
import { STARTUP_BUDGET_OVER_BARE_MS, type StartupResult } from "./startup";
import { FLOOR_ROUTES, PAGE_SIZE, ROUTES, formatCount, type RouteKey, type SystemKey } from "./systems";

export interface SystemMeasurement {
  label: string;
  rounds: RoundResult[];
  median: { rps: number; p50: number; p99: number };
  cost: Cost;
  /** Responses that were not 2xx, or connection errors, over all rounds. */
  failures: string[];
}

export interface RouteResult {
  route: RouteKey;
  title: string;
  /** null for routes that do not depend on the organization. */
  size: number | null;
  systems: Partial<Record<SystemKey, SystemMeasurement>>;
}

export interface Check {
  name: string;
  pass: boolean;
  detail: string;
}

export interface BenchResults {
  version: 1;
  startedAt: string;
  wallSeconds: number;
  machine: { cpus: number; cpuModel: string; node: string; platform: string };
  runtime: Record<string, string>;
  settings: { sizes: number[]; seconds: number; rounds: number; warmupSeconds: number; connections: number; pageSize: number; startupSamples?: number };
  systems: Partial<Record<SystemKey, { name: string; notes: string[] }>>;
  results: RouteResult[];
  /** Fresh-isolate startup per worker (absent when the run skipped it). */
  startup?: StartupResult[];
  checks: Check[];
}

const median = (values: number[]) => {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export function summarize(label: string, rounds: RoundResult[]): SystemMeasurement {
  // A round that completed no request (a slow login on a loaded machine) has no cost to average.
  const costed = rounds.filter((r) => r.requests > 0);
  const mean = (k: keyof Cost) => costed.reduce((a, r) => a + r.cost[k], 0) / costed.length;
  const failures: string[] = [];
  for (const [i, r] of rounds.entries()) {
    const bad = Object.entries(r.statuses).filter(([s]) => !s.startsWith("2"));
    if (bad.length > 0 || r.errors > 0) {
      failures.push(`round ${i + 1}: ${bad.map(([s, n]) => `${n}× ${s}`).join(", ")}${r.errors ? ` ${r.errors} errors` : ""}`);
    }
  }
  return {
    label,
    rounds,
    median: { rps: median(rounds.map((r) => r.rps)), p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)) },
    cost: { queries: mean("queries"), rowsRead: mean("rowsRead"), kvReads: mean("kvReads"), kvWrites: mean("kvWrites"), dbMs: mean("dbMs") },
    failures,
  };
}

// ---- formatting ------------------------------------------------------------------------------

const fmtRps = (v: number) => (Number.isFinite(v) ? formatCount(Math.round(v)) : "–");
const fmtMs = (v: number) => (!Number.isFinite(v) ? "–" : v < 10 ? v.toFixed(1) : formatCount(Math.round(v)));
const fmtCost = (v: number) => (!Number.isFinite(v) ? "–" : Number.isInteger(v) ? formatCount(v) : v < 100 ? v.toFixed(1) : formatCount(Math.round(v)));

/** "ours / theirs", or the bare worker's figure alone on its own rows. */
function cell(r: RouteResult, pick: (m: SystemMeasurement) => number, fmt: (v: number) => string) {
  const show = (m: SystemMeasurement) => fmt(pick(m)) + (m.failures.length ? "!" : "");
  const { ours, theirs, bare } = r.systems;
  if (bare && !ours && !theirs) return show(bare);
  return `${ours ? show(ours) : "–"} / ${theirs ? show(theirs) : "n/a"}`;
}

/**
 * Our req/s over theirs: the median of each round's ratio. The rounds of one pair ran back to back,
 * so a load spike on a shared machine falls on both sides of a pair; a ratio of the two medians
 * could pair a fast round of one with a slow round of the other.
 */
export function pairedRatio(ours: SystemMeasurement, theirs: SystemMeasurement): number {
  const ratios = ours.rounds.flatMap((r, i) => {
    const t = theirs.rounds[i];
    return t && r.rps > 0 && t.rps > 0 ? [r.rps / t.rps] : [];
  });
  return median(ratios);
}

function ratio(ours: SystemMeasurement | undefined, theirs: SystemMeasurement | undefined): string {
  if (!ours || !theirs) return "–";
  const r = pairedRatio(ours, theirs);
  if (!Number.isFinite(r)) return "–";
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

const fmtShare = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "–");

/**
 * One Markdown table: each cell is "ours / theirs"; × is our req/s over theirs (paired rounds); "of limit" is each
 * side's req/s as a fraction of the physical limit's (one KV get + one D1 read) in the same run.
 */
export function table(rows: RouteResult[], limitRps: number): string {
  const header = ["operation", "req/s (ours / theirs)", "×", "of limit", "p50 ms", "p99 ms", "D1 round trips", "D1 ms", "rows read", "KV reads"];
  const lines = rows.map((r) => {
    const o = r.systems.ours;
    const t = r.systems.theirs;
    return [
      r.title,
      cell(r, (m) => m.median.rps, fmtRps),
      ratio(o, t),
      cell(r, (m) => m.median.rps / limitRps, fmtShare),
      cell(r, (m) => m.median.p50, fmtMs),
      cell(r, (m) => m.median.p99, fmtMs),
      cell(r, (m) => m.cost.queries, fmtCost),
      cell(r, (m) => m.cost.dbMs, fmtMs),
      cell(r, (m) => m.cost.rowsRead, fmtCost),
      cell(r, (m) => m.cost.kvReads, fmtCost),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtLine = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${"-".repeat(w)} ` : ` ${"-".repeat(w - 1)}: `)).join("|")}|`;
  return [fmtLine(header), rule, ...lines.map(fmtLine)].join("\n");
}

const KiB = (bytes: number) => `${formatCount(Math.round(bytes / 1024))} KiB`;

/** Fresh-isolate startup, one row per worker, medians; "over bare" is what the worker adds to an empty one. */
export function startupTable(startup: StartupResult[]): string {
  const bare = startup.find((s) => s.system === "bare");
  const header = ["worker", "bundle (gzip)", "to first response ms", "ready ms", "first request ms", "over bare ms", "module evaluation (Node) ms"];
  const lines = startup.map((s) => [
    s.name,
    `${KiB(s.bundleBytes)} (${KiB(s.gzipBytes)})`,
    fmtMs(s.median.totalMs),
    fmtMs(s.median.readyMs),
    fmtMs(s.median.firstRequestMs),
    bare && s !== bare ? fmtMs(s.median.totalMs - bare.median.totalMs) : "–",
    s.moduleEvalMs === null ? "n/a" : fmtMs(s.moduleEvalMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtLine = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? ` ${"-".repeat(w)} ` : ` ${"-".repeat(w - 1)}: `)).join("|")}|`;
  return [fmtLine(header), rule, ...lines.map(fmtLine)].join("\n");
}

export function renderReport(results: BenchResults): string {
  const out: string[] = [];
  const s = results.settings;
  const sysName = (k: SystemKey) => results.systems[k]?.name ?? k;
  const m = results.machine;
  out.push(
    `Run of ${results.startedAt} on ${m.cpus} × ${m.cpuModel}, Node ${m.node}, workerd ${results.runtime.workerd ?? "?"} (Miniflare ${results.runtime.miniflare ?? "?"}).`,
    `Each cell: ${sysName("ours")} / ${sysName("theirs")} (the bare worker's rows: its figure alone). Medians of ${s.rounds} alternating rounds of ${s.seconds} s at ${s.connections} connections (after ${s.warmupSeconds} s of warm-up). ` +
      `D1 round trips, D1 ms (time spent awaiting D1), rows read and KV reads are means per request from Server-Timing. "×" = our req/s ÷ theirs (the median of the ratios of rounds run back to back). ` +
      `"of limit" = req/s ÷ the physical limit's (a bare worker doing one KV get and one D1 primary-key read). "!" = some responses were not 2xx (listed below).`,
  );
  if (results.startup && results.startup.length > 0) {
    const n = results.startup[0]!.samples.length;
    out.push(
      "",
      `Startup of a fresh isolate (a new workerd process, then one request to the worker's cheapest route; medians of ${n} samples each, taking turns):`,
      "",
      startupTable(results.startup),
    );
  }
  const limitRps = results.results.find((r) => r.route === "limit")?.systems.bare?.median.rps ?? NaN;
  const independent = results.results.filter((r) => r.size === null);
  if (independent.length > 0) {
    out.push("", "Independent of organization size (the caller belongs to every seeded organization):", "", table(independent, limitRps));
  }
  for (const size of s.sizes) {
    const rows = results.results.filter((r) => r.size === size);
    if (rows.length > 0) out.push("", `Organization of ${formatCount(size)} members (+ the admin), page_size ${PAGE_SIZE}:`, "", table(rows, limitRps));
  }
  out.push("", "Requests:");
  for (const route of ROUTES) {
    const r = results.results.find((x) => x.route === route.key);
    if (!r) continue;
    const keys = FLOOR_ROUTES.includes(route.key) ? (["bare"] as const) : (["ours", "theirs"] as const);
    const labels = keys.map((k) => r.systems[k]?.label ?? "(no equivalent)");
    out.push(`  ${route.title}: ${labels.join("  |  ")}`);
  }
  const failures = results.results.flatMap((r) =>
    (["ours", "theirs", "bare"] as const).flatMap((k) =>
      (r.systems[k]?.failures ?? []).map((f) => `  ${sysName(k)}, ${r.title}${r.size === null ? "" : ` @ ${formatCount(r.size)}`}: ${f}`),
    ),
  );
  if (failures.length > 0) out.push("", "Non-2xx responses or errors:", ...failures);
  for (const k of ["ours", "theirs", "bare"] as const) {
    const sys = results.systems[k];
    if (sys) out.push("", `${sys.name}:`, ...sys.notes.map((n) => `  - ${n}`));
  }
  if (results.checks.length > 0) out.push("", "Checks:", ...results.checks.map((c) => `  ${c.pass ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`));
  return out.join("\n");
}

/**
 * The issues' acceptance bars, on our side: list cost flat in the organization's size, who-am-I
 * well ahead of Better Auth's session read, and the startup budget.
 */
export function checks(results: RouteResult[], sizes: number[], startup: StartupResult[] = []): Check[] {
  const out: Check[] = [];
  const me = results.find((r) => r.route === "me");
  if (me?.systems.ours && me.systems.theirs) {
    const x = pairedRatio(me.systems.ours, me.systems.theirs);
    out.push({
      name: "me: GET /v1/me (access token) at least 3× Better Auth's get-session, 0 D1 round trips",
      pass: x >= 3 && me.systems.ours.cost.queries === 0,
      detail: `${x.toFixed(1)}× (rounds: ${me.systems.ours.rounds.map((r, i) => `${fmtRps(r.rps)} vs ${fmtRps(me.systems.theirs!.rounds[i]?.rps ?? NaN)}`).join(", ")} req/s), ${fmtCost(me.systems.ours.cost.queries)} D1 round trips`,
    });
  }
  const ours = startup.find((s) => s.system === "ours");
  const bare = startup.find((s) => s.system === "bare");
  if (ours && bare) {
    const over = ours.median.totalMs - bare.median.totalMs;
    out.push({
      name: `startup: a fresh isolate answers within ${STARTUP_BUDGET_OVER_BARE_MS} ms of the bare worker's (medians)`,
      pass: over <= STARTUP_BUDGET_OVER_BARE_MS,
      detail: `${fmtMs(ours.median.totalMs)} ms vs ${fmtMs(bare.median.totalMs)} ms: +${fmtMs(over)} ms`,
    });
  }
  const at = (route: RouteKey, size: number) => results.find((r) => r.route === route && r.size === size)?.systems.ours;
  for (const route of ["members", "members-deep", "members-search"] as const) {
    const rows = sizes.map((size) => [size, at(route, size)?.cost.rowsRead] as const).filter(([, v]) => v !== undefined);
    if (rows.length === 0) continue;
    const max = Math.max(...rows.map(([, v]) => v!));
    out.push({
      name: `${route}: rows read per request ≤ page_size + 10 at every size`,
      pass: max <= PAGE_SIZE + 10,
      detail: rows.map(([size, v]) => `${formatCount(size)}: ${fmtCost(v!)}`).join(", "),
    });
  }
  for (const route of ["projects", "projects-member"] as const) {
    const rows = sizes.map((size) => [size, at(route, size)?.cost.rowsRead] as const).filter(([, v]) => v !== undefined);
    if (rows.length === 0) continue;
    const max = Math.max(...rows.map(([, v]) => v!));
    // Visibility is applied inside the query: a page merges at most three guarded, page-sized reads.
    out.push({
      name: `${route}: rows read per request ≤ 3 × (page_size + 1) + 10 at every size`,
      pass: max <= 3 * (PAGE_SIZE + 1) + 10,
      detail: rows.map(([size, v]) => `${formatCount(size)}: ${fmtCost(v!)}`).join(", "),
    });
  }
  const small = Math.min(...sizes);
  const large = Math.max(...sizes);
  if (small !== large) {
    for (const route of ["members", "members-deep"] as const) {
      const a = at(route, small)?.median.p50;
      const b = at(route, large)?.median.p50;
      if (a === undefined || b === undefined) continue;
      out.push({
        name: `${route}: p50 at ${formatCount(large)} within 1.5× of p50 at ${formatCount(small)}`,
        pass: b <= 1.5 * a,
        detail: `${fmtMs(a)} ms → ${fmtMs(b)} ms (${(b / a).toFixed(2)}×)`,
      });
    }
  }
  return out;
}

/** Two result files side by side: req/s and p50 per operation and system, and the change. */
export function compare(a: BenchResults, b: BenchResults): string {
  const out = [`A: ${a.startedAt} (${a.machine.cpuModel})`, `B: ${b.startedAt} (${b.machine.cpuModel})`, ""];
  const header = ["operation", "size", "system", "req/s A", "req/s B", "Δ", "p50 A", "p50 B", "rows A", "rows B"];
  const lines: string[][] = [];
  for (const rb of b.results) {
    const ra = a.results.find((x) => x.route === rb.route && x.size === rb.size);
    for (const k of ["ours", "theirs", "bare"] as const) {
      const mb = rb.systems[k];
      const ma = ra?.systems[k];
      if (!mb) continue;
      const delta = ma ? `${(((mb.median.rps - ma.median.rps) / ma.median.rps) * 100).toFixed(0)}%` : "new";
      lines.push([
        rb.title,
        rb.size === null ? "–" : formatCount(rb.size),
        k,
        ma ? fmtRps(ma.median.rps) : "–",
        fmtRps(mb.median.rps),
        delta,
        ma ? fmtMs(ma.median.p50) : "–",
        fmtMs(mb.median.p50),
        ma ? fmtCost(ma.cost.rowsRead) : "–",
        fmtCost(mb.cost.rowsRead),
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtLine = (cells: string[]) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  out.push(fmtLine(header), `|${widths.map((w) => ` ${"-".repeat(w)} `).join("|")}|`, ...lines.map(fmtLine));
  out.push("", "Shared machines vary by about ±30% between runs: compare ratios within a run before absolute numbers across runs.");
  return out.join("\n");
}
