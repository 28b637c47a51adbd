import { drizzle } from "drizzle-orm/d1";

export interface DbStats {
  /** Round trips to D1; a batch is one. */
  queries: number;
  rowsRead: number;
  rowsWritten: number;
  /** Statements, each statement of a batch counted: what D1's per-invocation query limit counts. */
  statements: number;
  durationMs: number;
  /** Outside production, a request past STATEMENT_BUDGET fails loudly so every test checks it. */
  strictBudget?: boolean;
}

/**
 * D1 counts every statement of a batch against a per-invocation limit (50 on the Free plan, 1,000
 * on Paid). No request may need more than the Free plan's: multi-row changes are set-based.
 */
export const STATEMENT_BUDGET = 50;

export const newDbStats = (strictBudget = false): DbStats => ({ queries: 0, rowsRead: 0, rowsWritten: 0, statements: 0, durationMs: 0, strictBudget });

function spend(stats: DbStats, statements: number) {
  stats.statements += statements;
  if (stats.statements <= STATEMENT_BUDGET) return;
  const msg = `this request issued ${stats.statements} D1 statements, over the budget of ${STATEMENT_BUDGET}`;
  if (stats.strictBudget) throw new Error(msg);
  if (stats.statements - statements <= STATEMENT_BUDGET) console.error(JSON.stringify({ level: "error", msg }));
}

function record(stats: DbStats, started: number, results: D1Result[]) {
  stats.queries += 1;
  stats.durationMs += Date.now() - started;
  for (const r of results) {
    stats.rowsRead += r.meta?.rows_read ?? 0;
    stats.rowsWritten += r.meta?.rows_written ?? 0;
  }
}

/**
 * Number of columns in the outermost select list of `sql`. Used only for statements with a
 * join: D1 returns rows as objects, so two selected columns with the same name collapse into
 * one and a positional (Drizzle) mapping would silently shift every later field.
 */
function selectListWidth(sql: string): number | undefined {
  const m = /^\s*select\s+(?:distinct\s+)?/i.exec(sql);
  if (!m) return undefined;
  let depth = 0;
  let width = 1;
  let quote: string | null = null;
  for (let i = m[0].length; i < sql.length; i++) {
    const ch = sql[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === "(") depth++;
    else if (ch === ")") depth--;
    else if (depth === 0 && ch === ",") width++;
    else if (depth === 0 && /\sfrom\s/i.test(sql.slice(i - 1, i + 5))) return width;
  }
  return width;
}

class CountedStatement {
  constructor(
    readonly inner: D1PreparedStatement,
    private readonly sql: string,
    private readonly stats: DbStats,
  ) {}

  bind(...values: unknown[]): CountedStatement {
    return new CountedStatement(this.inner.bind(...values), this.sql, this.stats);
  }

  async all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
    spend(this.stats, 1);
    const started = Date.now();
    const res = await this.inner.all<T>();
    record(this.stats, started, [res]);
    return res;
  }

  run<T = Record<string, unknown>>(): Promise<D1Result<T>> {
    return this.all<T>();
  }

  async first<T = Record<string, unknown>>(column?: string): Promise<T | null> {
    const res = await this.all<Record<string, unknown>>();
    const row = res.results[0];
    if (!row) return null;
    return (column ? row[column] : row) as T;
  }

  /**
   * D1's raw() drops `meta` (and with it rows_read), so rows are fetched with all() and
   * turned into arrays in column order, as Drizzle itself does for batch results.
   */
  async raw<T = unknown[]>(): Promise<T[]> {
    const res = await this.all<Record<string, unknown>>();
    this.assertUnambiguous(res.results);
    return res.results.map((r) => Object.values(r)) as T[];
  }

  assertUnambiguous(rows: unknown[] | undefined) {
    if (!rows || rows.length === 0 || !/ join /i.test(this.sql)) return;
    const width = selectListWidth(this.sql);
    if (width !== undefined && Object.keys(rows[0] as object).length !== width) {
      throw new Error(`Ambiguous column names in a joined select; alias them: ${this.sql}`);
    }
  }
}

/** A D1Database look-alike that counts round trips and rows for `Server-Timing`. */
class CountedD1 {
  constructor(
    private readonly inner: D1Database,
    readonly stats: DbStats,
  ) {}

  prepare(sql: string): CountedStatement {
    return new CountedStatement(this.inner.prepare(sql), sql, this.stats);
  }

  async batch<T = unknown>(statements: CountedStatement[]): Promise<D1Result<T>[]> {
    if (statements.length === 0) return [];
    spend(this.stats, statements.length);
    const started = Date.now();
    const res = await this.inner.batch<T>(statements.map((s) => s.inner));
    record(this.stats, started, res);
    // Drizzle maps batch rows by position too, so the same guard applies.
    statements.forEach((s, i) => s.assertUnambiguous(res[i]?.results));
    return res;
  }

  async exec(sql: string): Promise<D1ExecResult> {
    const started = Date.now();
    const res = await this.inner.exec(sql);
    record(this.stats, started, []);
    return res;
  }

  dump(): Promise<ArrayBuffer> {
    throw new Error("dump is not supported");
  }

  withSession(): never {
    throw new Error("withSession is not supported through the counting wrapper");
  }
}

export function createDb(binding: D1Database, stats: DbStats = newDbStats()) {
  const counted = new CountedD1(binding, stats);
  return drizzle(counted as unknown as D1Database);
}

export type Db = ReturnType<typeof createDb>;

/** A db handle for work outside a request's cost report: the cron, the queue consumer, bookkeeping after the response. */
export const backgroundDb = (env: { DB: D1Database }) => createDb(env.DB);
