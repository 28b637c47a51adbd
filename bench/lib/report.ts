/** The bench's results: medians over alternating rounds, Markdown tables, checks, and run-to-run comparison. */
import type { Cost, RoundResult } from "./load";
import { PAGE_SIZE, ROUTES, formatCount, type RouteKey, type SystemKey } from "./systems";

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
  settings: { sizes: number[]; seconds: number; rounds: number; warmupSeconds: number; connections: number; pageSize: number };
  systems: Partial<Record<SystemKey, { name: string; notes: string[] }>>;
  results: RouteResult[];
  checks: Check[];
}

const median = (values: number[]) => {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export function summarize(label: string, rounds: RoundResult[]): SystemMeasurement {
  const mean = (k: keyof Cost) => rounds.reduce((a, r) => a + r.cost[k], 0) / rounds.length;
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

function pair(ours: SystemMeasurement | undefined, theirs: SystemMeasurement | undefined, pick: (m: SystemMeasurement) => number, fmt: (v: number) => string) {
  const a = ours ? fmt(pick(ours)) + (ours.failures.length ? "!" : "") : "–";
  const b = theirs ? fmt(pick(theirs)) + (theirs.failures.length ? "!" : "") : "n/a";
  return `${a} / ${b}`;
}

function ratio(ours: SystemMeasurement | undefined, theirs: SystemMeasurement | undefined): string {
  if (!ours || !theirs || !(theirs.median.rps > 0)) return "–";
  const r = ours.median.rps / theirs.median.rps;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×`;
}

/** One Markdown table: each cell is "ours / theirs"; × is our req/s over theirs. */
export function table(rows: RouteResult[]): string {
  const header = ["operation", "req/s (ours / theirs)", "×", "p50 ms", "p99 ms", "D1 round trips", "D1 ms", "rows read", "KV reads"];
  const lines = rows.map((r) => {
    const o = r.systems.ours;
    const t = r.systems.theirs;
    return [
      r.title,
      pair(o, t, (m) => m.median.rps, fmtRps),
      ratio(o, t),
      pair(o, t, (m) => m.median.p50, fmtMs),
      pair(o, t, (m) => m.median.p99, fmtMs),
      pair(o, t, (m) => m.cost.queries, fmtCost),
      pair(o, t, (m) => m.cost.dbMs, fmtMs),
      pair(o, t, (m) => m.cost.rowsRead, fmtCost),
      pair(o, t, (m) => m.cost.kvReads, fmtCost),
    ];
  });
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
    `Each cell: ${sysName("ours")} / ${sysName("theirs")}. Medians of ${s.rounds} alternating rounds of ${s.seconds} s at ${s.connections} connections (after ${s.warmupSeconds} s of warm-up). ` +
      `D1 round trips, D1 ms (time spent awaiting D1), rows read and KV reads are means per request from Server-Timing. "×" = our req/s ÷ theirs. "!" = some responses were not 2xx (listed below).`,
  );
  const independent = results.results.filter((r) => r.size === null);
  if (independent.length > 0) out.push("", "Independent of organization size (the caller belongs to every seeded organization):", "", table(independent));
  for (const size of s.sizes) {
    const rows = results.results.filter((r) => r.size === size);
    if (rows.length > 0) out.push("", `Organization of ${formatCount(size)} members (+ the admin), page_size ${PAGE_SIZE}:`, "", table(rows));
  }
  out.push("", "Requests:");
  for (const route of ROUTES) {
    const r = results.results.find((x) => x.route === route.key);
    if (!r) continue;
    const labels = (["ours", "theirs"] as const).map((k) => r.systems[k]?.label ?? "(no equivalent)");
    out.push(`  ${route.title}: ${labels.join("  |  ")}`);
  }
  const failures = results.results.flatMap((r) =>
    (["ours", "theirs"] as const).flatMap((k) => (r.systems[k]?.failures ?? []).map((f) => `  ${sysName(k)}, ${r.title}${r.size === null ? "" : ` @ ${formatCount(r.size)}`}: ${f}`)),
  );
  if (failures.length > 0) out.push("", "Non-2xx responses or errors:", ...failures);
  for (const k of ["ours", "theirs"] as const) {
    const sys = results.systems[k];
    if (sys) out.push("", `${sys.name}:`, ...sys.notes.map((n) => `  - ${n}`));
  }
  if (results.checks.length > 0) out.push("", "Checks:", ...results.checks.map((c) => `  ${c.pass ? "PASS" : "FAIL"}  ${c.name}: ${c.detail}`));
  return out.join("\n");
}

/** The issue's acceptance bars, on our side: list cost flat in the organization's size. */
export function checks(results: RouteResult[], sizes: number[]): Check[] {
  const out: Check[] = [];
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
    for (const k of ["ours", "theirs"] as const) {
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
