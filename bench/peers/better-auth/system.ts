/**
 * The Better Auth peer under test: worker.ts bundled and served like the tenancy API, its tables
 * created from schema.sql (Better Auth's own generated DDL), seeded with the same population.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { buildWorker, freePort, startWorker, writeWorkerConfig, type D1, type MiniflareInstance, type WorkerSpec } from "../../lib/runtime";
import { ADMIN, PAGE_SIZE, SEQUENCE_CTE, formatCount, memberEmailSql, memberNameSql, type RequestSpec, type RouteKey, type System } from "../../lib/systems";
import { BASE_PATH } from "./auth";
import { PEER_COMPATIBILITY } from "./config";

const HERE = import.meta.dirname;

/** schema.sql split into statements (it is generated: `;` ends each, never inside a literal). */
function schemaStatements(): string[] {
  return readFileSync(path.join(HERE, "schema.sql"), "utf8")
    .replace(/^--.*$/gm, "")
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean);
}

async function json(res: Response) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status} ${res.url}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** `minify` as the tenancy API's wrangler.toml sets it, so that both are built alike. */
export async function startBetterAuth(opts: { tmp: string; sizes: number[]; minify: boolean; log: (msg: string) => void }): Promise<System> {
  const dir = path.join(opts.tmp, "better-auth");
  mkdirSync(dir, { recursive: true });
  const main = path.join(HERE, "worker.ts");
  const config = writeWorkerConfig(dir, { name: "better-auth-peer", main, ...PEER_COMPATIBILITY, minify: opts.minify });
  const bundle = await buildWorker({ config, main, outDir: path.join(dir, "dist") });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const spec: Omit<WorkerSpec, "port" | "persistDir"> = {
    name: "better-auth-peer",
    bundle,
    ...PEER_COMPATIBILITY,
    bindings: { BETTER_AUTH_SECRET: randomBytes(32).toString("base64"), BETTER_AUTH_URL: url },
    d1Databases: { DB: "better-auth-bench" },
  };
  const { mf } = await startWorker({ ...spec, port, persistDir: dir });
  const stop = () => mf.dispose();
  const createSchema = async (instance: MiniflareInstance) => {
    const db = await instance.getD1Database("DB");
    await db.batch(schemaStatements().map((s) => db.prepare(s)));
  };
  try {
    const db = await mf.getD1Database("DB");
    await createSchema(mf);

    // Cookie-authenticated POSTs must come from a trusted origin (Better Auth's CSRF check).
    const origin = { Origin: url };
    const signup = await fetch(`${url}${BASE_PATH}/sign-up/email`, {
      method: "POST",
      headers: { ...origin, "Content-Type": "application/json" },
      body: JSON.stringify({ email: ADMIN.email, password: ADMIN.password, name: ADMIN.name }),
    });
    const admin = (await json(signup.clone())).user as { id: string };
    const cookie = signup.headers
      .getSetCookie()
      .map((c) => c.split(";")[0])
      .join("; ");

    const started = Date.now();
    const orgs = await seed(db, admin.id, opts.sizes);
    opts.log(
      `better-auth: seeded ${formatCount(Math.max(...opts.sizes))} users and ${opts.sizes.length} organizations in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    const auth = { ...origin, Cookie: cookie };
    const jsonHeaders = { ...origin, "Content-Type": "application/json" };
    let inviteCounter = 0;
    const listMembers = (size: number, offset: number) =>
      `${BASE_PATH}/organization/list-members?${new URLSearchParams({ organizationId: orgs.get(size)!, limit: String(PAGE_SIZE), offset: String(offset) })}`;
    const requests: Record<RouteKey, (size: number) => RequestSpec | null> = {
      healthz: () => ({ label: `GET ${BASE_PATH}/ok`, method: "GET", path: `${BASE_PATH}/ok`, headers: {} }),
      floor: () => null,
      limit: () => null,
      me: () => ({ label: "GET …/get-session", method: "GET", path: `${BASE_PATH}/get-session`, headers: auth }),
      "my-orgs": () => ({ label: "GET …/organization/list", method: "GET", path: `${BASE_PATH}/organization/list`, headers: auth }),
      // D1 sessions are not used by Better Auth's adapter: the same read, without a bookmark.
      "org-bookmark": (size) => ({
        label: "GET …/organization/get-full-organization?membersLimit=50 (no bookmark)",
        method: "GET",
        path: `${BASE_PATH}/organization/get-full-organization?organizationId=${orgs.get(size)}&membersLimit=${PAGE_SIZE}`,
        headers: auth,
      }),
      login: () => ({
        label: "POST …/sign-in/email",
        method: "POST",
        path: `${BASE_PATH}/sign-in/email`,
        headers: jsonHeaders,
        body: JSON.stringify({ email: ADMIN.email, password: ADMIN.password }),
      }),
      // With the default membersLimit (100) an organization of 100 or more members answers 500 on
      // D1: the member ids plus the limit make 101 bound parameters, one over D1's limit of 100.
      org: (size) => ({
        label: "GET …/organization/get-full-organization?membersLimit=50",
        method: "GET",
        path: `${BASE_PATH}/organization/get-full-organization?organizationId=${orgs.get(size)}&membersLimit=${PAGE_SIZE}`,
        headers: auth,
      }),
      members: (size) => ({ label: "GET …/list-members?limit=50&offset=0", method: "GET", path: listMembers(size, 0), headers: auth }),
      // The same rows as the tenancy API's last page: the list of size + 1 (the admin) minus one page.
      "members-deep": (size) => ({
        label: "GET …/list-members?limit=50&offset=(last page)",
        method: "GET",
        path: listMembers(size, Math.max(0, size + 1 - PAGE_SIZE)),
        headers: auth,
      }),
      // list-members filters on the member table's own columns only: no name or email search.
      "members-search": () => null,
      // Better Auth's organization plugin has no projects.
      projects: () => null,
      "projects-member": () => null,
      invite: (size) => ({
        label: "POST …/organization/invite-member",
        method: "POST",
        path: `${BASE_PATH}/organization/invite-member`,
        headers: { ...auth, "Content-Type": "application/json" },
        body: () => JSON.stringify({ email: `theirs-${size}-${inviteCounter++}@invitee.test`, role: "member", organizationId: orgs.get(size) }),
      }),
    };
    return {
      key: "theirs",
      name: "Better Auth",
      url,
      requestFor: (route, size) => requests[route](size),
      notes: [
        "password hash: Better Auth's default, scrypt (N=16384, r=16, p=1) in JavaScript",
        "rate limiting off; invitationLimit raised (default 100 pending per organization); no invitation email sender",
        "session in a signed cookie, read from D1 on each request (cookieCache off, the default)",
        `built by wrangler like the tenancy API (minify ${opts.minify})`,
      ],
      // Better Auth checks its tables on an isolate's first request (and answers 500 without them).
      fresh: { spec, path: `${BASE_PATH}/ok`, prepare: createSchema },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The same population as the tenancy API's: users 0..max-1 and one organization per size. */
async function seed(db: D1, adminId: string, sizes: number[]): Promise<Map<number, string>> {
  const base = Date.now() - 30 * 86_400_000;
  // Better Auth stores dates as ISO 8601 text.
  const isoAt = (ms: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', (${ms}) / 1000.0, 'unixepoch')`;
  const userId = (i: number) => `bu${String(i).padStart(7, "0")}`;
  await db
    .prepare(
      `${SEQUENCE_CTE} insert into "user" (id, name, email, emailVerified, image, createdAt, updatedAt)
       select printf('bu%07d', i), ${memberNameSql("i")}, ${memberEmailSql("i")}, 0, null, ${isoAt("?2 + i")}, ${isoAt("?2 + i")} from seq`,
    )
    .bind(Math.max(...sizes), base)
    .run();
  const orgs = new Map<number, string>();
  for (const size of sizes) {
    const orgId = `borg${size}`;
    orgs.set(size, orgId);
    await db.batch([
      db
        .prepare(`insert into organization (id, name, slug, logo, createdAt, metadata) values (?1, ?2, ?3, null, ${isoAt("?4")}, null)`)
        .bind(orgId, `Bench ${formatCount(size)}`, `bench-${size}`, base - 1),
      db
        .prepare(`insert into member (id, organizationId, userId, role, createdAt) values (?1, ?2, ?3, 'owner', ${isoAt("?4")})`)
        .bind(`bm${size}_admin`, orgId, adminId, base - 1),
      db
        .prepare(
          `insert into member (id, organizationId, userId, role, createdAt)
           select 'bm' || ?1 || '_' || substr(id, 3), ?2, id, 'member', createdAt from "user" where id >= ?3 and id < ?4`,
        )
        .bind(String(size), orgId, userId(0), userId(size)),
    ]);
  }
  return orgs;
}
