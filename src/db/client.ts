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

/** Where a request's D1 session starts: a bookmark a client sent back, or a constraint. */
export type SessionStart = D1SessionBookmark | D1SessionConstraint;

type Target = D1Database | D1DatabaseSession;

const isConstraint = (start: SessionStart): start is D1SessionConstraint => start === "first-primary" || start === "first-unconstrained";

/**
 * D1 answers a bookmark it cannot serve (another database's, or one from a future it has not
 * reached) with an error that names the session or the bookmark, before running any statement.
 */
const refusesBookmark = (err: unknown) => err instanceof Error && /D1_SESSION_ERROR|bookmark/i.test(err.message);

class CountedStatement {
  constructor(
    private readonly db: CountedD1,
    private readonly sql: string,
    private readonly values: unknown[] = [],
  ) {}

  bind(...values: unknown[]): CountedStatement {
    return new CountedStatement(this.db, this.sql, values);
  }

  /** Prepared where it runs, not where it was built: the session may restart on the primary in between. */
  on(target: Target): D1PreparedStatement {
    const stmt = target.prepare(this.sql);
    return this.values.length > 0 ? stmt.bind(...this.values) : stmt;
  }

  async all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
    spend(this.db.stats, 1);
    const started = Date.now();
    const res = await this.db.roundTrip((target) => this.on(target).all<T>());
    record(this.db.stats, started, [res]);
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

/**
 * A D1Database look-alike that counts round trips and rows for `Server-Timing`. It sends every
 * statement to one target: a D1 session for a request, the plain binding (the primary) otherwise.
 */
class CountedD1 {
  private target: Target;
  /** True while the target is a session resumed from a client's bookmark. */
  private resumed: boolean;

  constructor(
    private readonly binding: D1Database,
    readonly stats: DbStats,
    start?: SessionStart,
  ) {
    this.target = start === undefined ? binding : binding.withSession(start);
    this.resumed = start !== undefined && !isConstraint(start);
  }

  /** The session's latest bookmark; null before its first answer, unless it resumed from one. */
  bookmark(): D1SessionBookmark | null {
    return "getBookmark" in this.target ? this.target.getBookmark() : null;
  }

  /**
   * One round trip. A client's bookmark that D1 refuses must not fail the request: the session
   * restarts on the primary, which is at least as recent as any bookmark the database issued, so
   * read-your-writes still holds, and the client gets a good bookmark back in place of its own.
   */
  async roundTrip<T>(send: (target: Target) => Promise<T>): Promise<T> {
    const target = this.target;
    try {
      return await send(target);
    } catch (err) {
      if (!refusesBookmark(err)) throw err;
      if (target === this.target) {
        if (!this.resumed) throw err;
        console.warn(JSON.stringify({ level: "warn", msg: "D1 refused the client's bookmark; the request continues on a session started at the primary" }));
        this.target = this.binding.withSession("first-primary");
        this.resumed = false;
      }
      return send(this.target);
    }
  }

  prepare(sql: string): CountedStatement {
    return new CountedStatement(this, sql);
  }

  async batch<T = unknown>(statements: CountedStatement[]): Promise<D1Result<T>[]> {
    if (statements.length === 0) return [];
    spend(this.stats, statements.length);
    const started = Date.now();
    const res = await this.roundTrip((target) => target.batch<T>(statements.map((s) => s.on(target))));
    record(this.stats, started, res);
    // Drizzle maps batch rows by position too, so the same guard applies.
    statements.forEach((s, i) => s.assertUnambiguous(res[i]?.results));
    return res;
  }

  /** A session has no exec(); nothing in a request needs it, and on the binding it reaches the primary. */
  async exec(sql: string): Promise<D1ExecResult> {
    const started = Date.now();
    const res = await this.binding.exec(sql);
    record(this.stats, started, []);
    return res;
  }

  dump(): Promise<ArrayBuffer> {
    throw new Error("dump is not supported");
  }
}

/** A db on the plain binding: every statement goes to the primary, no session, no bookmark. */
export function createDb(binding: D1Database, stats: DbStats = newDbStats()) {
  return drizzle(new CountedD1(binding, stats) as unknown as D1Database);
}

/**
 * A request's db: every statement on one D1 session (the Sessions API, which lets D1 serve reads
 * from replicas), and the session's bookmark for the response to hand back to the client.
 */
export function createSessionDb(binding: D1Database, stats: DbStats, start: SessionStart): { db: Db; bookmark: () => D1SessionBookmark | null } {
  const counted = new CountedD1(binding, stats, start);
  return { db: drizzle(counted as unknown as D1Database), bookmark: () => counted.bookmark() };
}

export type Db = ReturnType<typeof createDb>;

/** A db handle for work outside a request's cost report: the cron, the queue consumer, bookkeeping after the response. */
export const backgroundDb = (env: { DB: D1Database }) => createDb(env.DB);
