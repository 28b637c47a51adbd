/** What the runner needs of each system under test: where it listens, and its request for each route. */
import type { MiniflareInstance, WorkerSpec } from "./runtime";

/** The tenancy API, Better Auth, and the bare worker that measures the floor of the stack. */
export type SystemKey = "ours" | "theirs" | "bare";

/**
 * The operations compared. `size: true` routes depend on the organization and run once per size;
 * the others touch only the caller and run once.
 */
export const ROUTES = [
  { key: "floor", title: "bare worker, no work (workerd alone)", size: false },
  { key: "healthz", title: "runtime ceiling (no auth, no D1)", size: false },
  { key: "limit", title: "physical limit: bare worker, 1 KV get + 1 D1 primary-key read", size: false },
  { key: "me", title: "who am I (access token)", size: false },
  { key: "my-orgs", title: "my organizations", size: false },
  { key: "org-bookmark", title: "get organization, sending X-D1-Bookmark (smallest size)", size: false },
  { key: "login", title: "sign in (password hash)", size: false },
  { key: "org", title: "get organization", size: true },
  { key: "members", title: "members, first page of 50", size: true },
  { key: "members-deep", title: "members, last page of 50", size: true },
  { key: "members-search", title: 'members, search prefix "member 000"', size: true },
  { key: "projects", title: "projects, first page of 50 (admin)", size: true },
  { key: "projects-member", title: "projects, first page of 50 (member: public + granted)", size: true },
  { key: "invite", title: "invite a new email", size: true },
] as const;

export type RouteKey = (typeof ROUTES)[number]["key"];
/** The bare worker's rows: every other row's req/s is also given as a fraction of `limit`'s. */
export const FLOOR_ROUTES: readonly RouteKey[] = ["floor", "limit"];

export interface RequestSpec {
  /** What this system calls the operation, for the report. */
  label: string;
  method: "GET" | "POST";
  path: string;
  headers: Record<string, string>;
  /** A fixed body, or a function for a fresh one per request (e.g. a new email each time). */
  body?: string | (() => string);
}

export interface System {
  key: SystemKey;
  name: string;
  url: string;
  /** The request for a route (with the organization of that size), or null when there is no equivalent. */
  requestFor(route: RouteKey, size: number): RequestSpec | null;
  /** Facts about the setup worth printing with the results (hash parameters, limits raised). */
  notes: string[];
  /** How to start this worker again from nothing, for the startup measurement. */
  fresh: FreshWorker;
  stop(): Promise<void>;
}

/** A worker's build and bindings, and the cheapest request it answers (no D1, no KV). */
export interface FreshWorker {
  spec: Omit<WorkerSpec, "port" | "persistDir">;
  path: string;
  /** What its empty state needs before that request can succeed (not timed). */
  prepare?: (mf: MiniflareInstance) => Promise<void>;
}

/** The seeded population, the same for both systems. */
export const ADMIN = { email: "admin@bench.test", password: "correct horse battery staple", name: "Bench Admin" };
/** A member with the built-in `user` role: sees public projects and the private ones granted to it. */
export const MEMBER = { email: "member@bench.test", password: "correct horse battery staple", name: "Bench Member" };
/** The organization of size N also holds N projects, one in PRIVATE_EVERY public and the rest private; the member is granted GRANTED of the private ones. */
export const PRIVATE_EVERY = 10;
export const GRANTED = 100;
export const PAGE_SIZE = 50;
export const SEARCH_PREFIX = "member 000";

/**
 * Seeded member i (0-based) is "Member 000042" <m000042@bench.test>, as SQL over a column `i`; the
 * organization of size N holds members 0..N-1 plus the admin.
 */
export const memberNameSql = (i: string) => `printf('Member %06d', ${i})`;
export const memberEmailSql = (i: string) => `printf('m%06d@bench.test', ${i})`;

/** `WITH RECURSIVE seq(i)` over 0..?1-1: rows generated inside SQLite, no bound parameter per row. */
export const SEQUENCE_CTE = "with recursive seq(i) as (select 0 union all select i + 1 from seq where i + 1 < ?1)";

export const formatCount = (n: number) => n.toLocaleString("en-US");
