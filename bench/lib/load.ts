/**
 * Drives one route with autocannon for a bounded time and reads, from every response, its status
 * and the Server-Timing cost report: `db;dur=..;desc="queries=N rows_read=M", kv;desc="reads=R
 * writes=W", total;dur=..`. Latency percentiles come from each response's own time (sub-ms
 * precision; autocannon's histogram rounds to whole milliseconds).
 */
import autocannon from "autocannon";
import type { RequestSpec } from "./systems";

export interface Cost {
  queries: number;
  rowsRead: number;
  kvReads: number;
  kvWrites: number;
  dbMs: number;
}

export interface RoundResult {
  seconds: number;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  /** Responses by status code; anything but 2xx means the run measured an error path. */
  statuses: Record<string, number>;
  errors: number;
  /** Mean per response. */
  cost: Cost;
}

const METRIC = {
  queries: /queries=(\d+)/,
  rowsRead: /rows_read=(\d+)/,
  kvReads: /reads=(\d+) writes/,
  kvWrites: /writes=(\d+)/,
  dbMs: /db;dur=([\d.]+)/,
};

export function parseServerTiming(header: string | undefined): Cost | null {
  if (!header || !METRIC.queries.test(header)) return null;
  const num = (re: RegExp) => Number(re.exec(header)?.[1] ?? 0);
  return { queries: num(METRIC.queries), rowsRead: num(METRIC.rowsRead), kvReads: num(METRIC.kvReads), kvWrites: num(METRIC.kvWrites), dbMs: num(METRIC.dbMs) };
}

/** http-parser's headers as they reach autocannon's `headers` event: a flat [name, value, …] list. */
function headerValue(parsed: unknown, name: string): { status?: number; value?: string } {
  const p = parsed as { statusCode?: number; headers?: string[] };
  const list = p.headers ?? [];
  for (let i = 0; i < list.length - 1; i += 2) {
    if (list[i]!.toLowerCase() === name) return { status: p.statusCode, value: list[i + 1] };
  }
  return { status: p.statusCode };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx]!;
}

export async function drive(baseUrl: string, spec: RequestSpec, opts: { seconds: number; connections: number }): Promise<RoundResult> {
  const url = new URL(baseUrl);
  if (url.hostname !== "127.0.0.1") throw new Error(`refusing to send load anywhere but 127.0.0.1 (got ${url.hostname})`);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const sum: Cost = { queries: 0, rowsRead: 0, kvReads: 0, kvWrites: 0, dbMs: 0 };
  let costed = 0;
  const body = spec.body;
  const request: autocannon.Request = {
    method: spec.method,
    path: spec.path,
    headers: spec.headers,
    ...(typeof body === "string" ? { body } : {}),
    ...(typeof body === "function" ? { setupRequest: (req: autocannon.Request) => ({ ...req, body: body() }) } : {}),
  };
  const result = await autocannon({
    url: url.origin,
    connections: opts.connections,
    duration: opts.seconds,
    requests: [request],
    setupClient: (client) => {
      client.on("headers", (parsed: unknown) => {
        const { status, value } = headerValue(parsed, "server-timing");
        statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
        const cost = parseServerTiming(value);
        if (cost) {
          costed++;
          for (const k of Object.keys(sum) as (keyof Cost)[]) sum[k] += cost[k];
        }
      });
      client.on("response", (_status: number, _bytes: number, responseTime: number) => {
        latencies.push(responseTime);
      });
    },
  });
  latencies.sort((a, b) => a - b);
  const mean = (v: number) => (costed === 0 ? NaN : v / costed);
  return {
    seconds: result.duration,
    requests: latencies.length,
    rps: latencies.length / result.duration,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    statuses,
    errors: result.errors + result.timeouts,
    cost: { queries: mean(sum.queries), rowsRead: mean(sum.rowsRead), kvReads: mean(sum.kvReads), kvWrites: mean(sum.kvWrites), dbMs: mean(sum.dbMs) },
  };
}
