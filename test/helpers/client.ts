import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { nonConformance } from "./openapi";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";

export interface Cost {
  queries: number;
  rowsRead: number;
  /** Statements, each statement of a batch counted (D1's per-invocation query limit). */
  statements: number;
  kvReads: number;
  kvWrites: number;
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
  cost: Cost;
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  /** A raw body string (sent as-is), for malformed-input tests. */
  raw?: string;
  headers?: Record<string, string>;
  /** Bindings/vars to override for this request (config is parsed per env object). */
  env?: Partial<Bindings>;
}

const envCache = new Map<string, Bindings>();

export function testEnv(overrides?: Partial<Bindings>): Bindings {
  if (!overrides) return env as unknown as Bindings;
  const key = JSON.stringify(overrides);
  let e = envCache.get(key);
  if (!e) {
    e = { ...(env as unknown as Bindings), ...overrides };
    envCache.set(key, e);
  }
  return e;
}

export function parseServerTiming(header: string | null): Cost {
  const h = header ?? "";
  const num = (re: RegExp) => Number(re.exec(h)?.[1] ?? NaN);
  return {
    queries: num(/queries=(\d+)/),
    rowsRead: num(/rows_read=(\d+)/),
    statements: num(/statements=(\d+)/),
    kvReads: num(/reads=(\d+)/),
    kvWrites: num(/writes=(\d+)/),
  };
}

/** Sends one request through the worker's real fetch handler, against the real local bindings. */
export async function api<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["Content-Type"] ??= "application/json";
  }
  const request = new Request(`http://api.test${path}`, { method, headers, body });
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, testEnv(opts.env), ctx);
  await waitOnExecutionContext(ctx);
  const text = await res.text();
  let parsed: unknown;
  if (text && /json/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
  // Every response of the suite is checked against /openapi.json (status, media type, body
  // schema), as an OpenAPI fuzzer would: a test that gets an undocumented answer fails.
  if (!path.startsWith("/openapi.json")) {
    const problems = await nonConformance(method, path, res.status, res.headers.get("content-type"), parsed ?? (text || undefined));
    if (problems.length > 0)
      throw new Error(`${method} ${path} answered ${res.status}, which /openapi.json does not allow: ${problems.join("; ")}\n${text.slice(0, 500)}`);
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text, cost: parseServerTiming(res.headers.get("server-timing")) };
}

export const get = <T = any>(path: string, opts?: RequestOptions) => api<T>("GET", path, opts);
export const post = <T = any>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("POST", path, { ...opts, body });
export const patch = <T = any>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("PATCH", path, { ...opts, body });
export const put = <T = any>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("PUT", path, { ...opts, body });
export const del = <T = any>(path: string, opts?: RequestOptions) => api<T>("DELETE", path, opts);
