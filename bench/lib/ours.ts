/**
 * The tenancy API under test: bundled from src/, configured from wrangler.toml plus bench settings,
 * migrated from migrations/*.sql into a fresh local D1, and seeded straight through the D1 binding.
 */
import { webcrypto } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { unstable_readConfig, unstable_splitSqlQuery } from "wrangler";
import { newId } from "../../src/lib/ids";
import { buildWorker, freePort, startWorker, type D1, type WorkerSpec } from "./runtime";
import {
  ADMIN,
  GRANTED,
  MEMBER,
  PAGE_SIZE,
  PRIVATE_EVERY,
  SEARCH_PREFIX,
  SEQUENCE_CTE,
  formatCount,
  memberEmailSql,
  memberNameSql,
  type RequestSpec,
  type RouteKey,
  type System,
} from "./systems";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** wrangler.toml's [[queues.*]] tables, as wrangler's config reader returns them. */
interface WranglerQueues {
  producers?: { binding: string; queue: string }[];
  consumers?: { queue: string; max_batch_size?: number; max_batch_timeout?: number; max_retries?: number; dead_letter_queue?: string }[];
}

/** Fresh development secrets, generated as scripts/dev.mjs generates them for `npm run dev`. */
async function devSecrets() {
  const { privateKey } = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const jwk = await webcrypto.subtle.exportKey("jwk", privateKey);
  const random = (n: number) => Buffer.from(webcrypto.getRandomValues(new Uint8Array(n))).toString("base64");
  return {
    JWT_SIGNING_KEYS: JSON.stringify([{ ...jwk, kid: `bench-${Date.now().toString(36)}` }]),
    ENCRYPTION_KEY: random(32),
    HMAC_SECRET: random(32),
  };
}

/**
 * wrangler.toml's vars, with what the bench must change so it measures work rather than limits.
 * PASSWORD_HASH_ITERATIONS is deliberately left to the production default.
 */
function benchVars(url: string): Record<string, string> {
  return {
    APP_BASE_URL: url,
    API_BASE_URL: url,
    BUILD_VERSION: "bench",
    // Seats: members + pending invitations; the bench adds thousands of invitations to 100k members.
    FREE_PLAN_SEATS: "1000000",
    // Not production: the bench keeps email in D1 (outbox), which production refuses.
    ENVIRONMENT: "test",
    EMAIL_PROVIDER: "outbox",
    // One client and one credential drive all the load: their limits must not be what is measured.
    AUTH_RATE_LIMIT_PER_MINUTE: "100000",
    CREDENTIAL_RATE_LIMIT_PER_MINUTE: "100000",
    LOGIN_RATE_LIMIT_PER_EMAIL: "100000",
    LOGIN_FAILURES_PER_CLIENT: "100000",
    // One token for the whole run.
    ACCESS_TOKEN_TTL_SECONDS: "3600",
  };
}

async function applyMigrations(db: D1, dir: string) {
  await db
    .prepare(
      "create table if not exists d1_migrations (id integer primary key autoincrement, name text unique, applied_at timestamp default current_timestamp not null)",
    )
    .run();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    const statements = unstable_splitSqlQuery(readFileSync(path.join(dir, file), "utf8")).map((s) => db.prepare(s));
    await db.batch([...statements, db.prepare("insert into d1_migrations (name) values (?)").bind(file)]);
  }
}

async function json(res: Response) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${res.status} ${res.url}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function startOurs(opts: { tmp: string; sizes: number[]; log: (msg: string) => void }): Promise<System> {
  const wrangler = unstable_readConfig({ config: path.join(ROOT, "wrangler.toml") });
  const dir = path.join(opts.tmp, "ours");
  mkdirSync(dir, { recursive: true });
  // The bundle `wrangler deploy` would upload, minified or not as wrangler.toml says.
  const bundle = await buildWorker({ config: path.join(ROOT, "wrangler.toml"), main: wrangler.main ?? "src/index.ts", outDir: path.join(dir, "dist") });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const vars = Object.fromEntries(Object.entries(wrangler.vars ?? {}).map(([k, v]) => [k, String(v)]));
  const raised = benchVars(url);
  const bindings = { ...vars, ...raised, ...(await devSecrets()) };

  const queues = wrangler.queues as WranglerQueues;
  const d1 = wrangler.d1_databases[0]!;
  const kv = wrangler.kv_namespaces[0]!;
  const spec: Omit<WorkerSpec, "port" | "persistDir"> = {
    name: wrangler.name ?? "tenancy-api",
    bundle,
    compatibilityDate: wrangler.compatibility_date!,
    compatibilityFlags: wrangler.compatibility_flags,
    bindings,
    d1Databases: { [d1.binding]: "tenancy-bench" },
    kvNamespaces: { [kv.binding]: "tenancy-bench-kv" },
    queueProducers: Object.fromEntries((queues.producers ?? []).map((p) => [p.binding, { queueName: p.queue }])),
    queueConsumers: Object.fromEntries(
      (queues.consumers ?? []).map((c) => [
        c.queue,
        { maxBatchSize: c.max_batch_size, maxBatchTimeout: c.max_batch_timeout, maxRetries: c.max_retries, deadLetterQueue: c.dead_letter_queue },
      ]),
    ),
  };
  const { mf } = await startWorker({ ...spec, port, persistDir: dir });
  const stop = () => mf.dispose();
  try {
    const db = await mf.getD1Database(d1.binding);
    await applyMigrations(db, path.join(ROOT, d1.migrations_dir ?? "migrations"));

    // The admin signs up through the API, so its password hash is the real, production-cost one.
    const signup = await json(
      await fetch(`${url}/v1/auth/signup`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: ADMIN.email, password: ADMIN.password, display_name: ADMIN.name }),
      }),
    );
    const admin = { id: signup.user.id as string, token: signup.access_token as string };
    const memberSignup = await json(
      await fetch(`${url}/v1/auth/signup`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: MEMBER.email, password: MEMBER.password, display_name: MEMBER.name }),
      }),
    );
    const member = { id: memberSignup.user.id as string, token: memberSignup.access_token as string };
    // The hash records its own parameters: what login will verify against, from the source.
    const stored = await db.prepare("select password_hash from users where id = ?").bind(admin.id).first<{ password_hash: string }>();
    const [scheme, iterations] = (stored?.password_hash ?? "").split("$");

    const started = Date.now();
    const orgs = await seed(db, admin.id, opts.sizes);
    for (const size of opts.sizes) await seedProjects(db, orgs.get(size)!, member.id, size);
    opts.log(
      `ours: seeded ${formatCount(Math.max(...opts.sizes))} users, ${opts.sizes.length} organizations and their projects in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );

    const auth = { Authorization: `Bearer ${admin.token}` };
    const memberAuth = { Authorization: `Bearer ${member.token}` };
    const projectsPath = (size: number) => `/v1/organizations/${orgs.get(size)}/projects?page_size=${PAGE_SIZE}`;
    const deepTokens = new Map<number, string>();
    for (const size of opts.sizes) {
      const t = Date.now();
      deepTokens.set(size, await lastPageToken(url, auth, orgs.get(size)!, size + 1));
      opts.log(`ours: page token for the last page of ${formatCount(size)} members, by paging, in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }

    // The bookmark a client carries: the X-D1-Bookmark of its previous response for this organization.
    const bookmarkSize = Math.min(...opts.sizes);
    const previous = await fetch(`${url}/v1/organizations/${orgs.get(bookmarkSize)}`, { headers: auth });
    await previous.arrayBuffer();
    const bookmark = previous.headers.get("x-d1-bookmark");

    let inviteCounter = 0;
    const membersPath = (size: number, query: Record<string, string>) =>
      `/v1/organizations/${orgs.get(size)}/members?${new URLSearchParams({ page_size: String(PAGE_SIZE), ...query })}`;
    const jsonHeaders = { "Content-Type": "application/json" };
    const requests: Record<RouteKey, (size: number) => RequestSpec | null> = {
      floor: () => null,
      limit: () => null,
      healthz: () => ({ label: "GET /healthz", method: "GET", path: "/healthz", headers: {} }),
      me: () => ({ label: "GET /v1/me", method: "GET", path: "/v1/me", headers: auth }),
      "my-orgs": () => ({ label: "GET /v1/me/organizations", method: "GET", path: "/v1/me/organizations", headers: auth }),
      login: () => ({
        label: "POST /v1/auth/login",
        method: "POST",
        path: "/v1/auth/login",
        headers: jsonHeaders,
        body: JSON.stringify({ email: ADMIN.email, password: ADMIN.password }),
      }),
      "org-bookmark": (size) => ({
        label: bookmark
          ? "GET /v1/organizations/{id} with X-D1-Bookmark (from the previous response)"
          : "GET /v1/organizations/{id} (no X-D1-Bookmark returned: sent without)",
        method: "GET",
        path: `/v1/organizations/${orgs.get(size)}`,
        headers: bookmark ? { ...auth, "X-D1-Bookmark": bookmark } : auth,
      }),
      org: (size) => ({ label: "GET /v1/organizations/{id}", method: "GET", path: `/v1/organizations/${orgs.get(size)}`, headers: auth }),
      members: (size) => ({ label: "GET …/members?page_size=50", method: "GET", path: membersPath(size, {}), headers: auth }),
      "members-deep": (size) => ({
        label: "GET …/members?page_token=(last page)",
        method: "GET",
        path: membersPath(size, { page_token: deepTokens.get(size)! }),
        headers: auth,
      }),
      "members-search": (size) => ({
        label: `GET …/members?filter=search:"${SEARCH_PREFIX}"`,
        method: "GET",
        path: membersPath(size, { filter: `search:"${SEARCH_PREFIX}"` }),
        headers: auth,
      }),
      projects: (size) => ({ label: "GET …/projects?page_size=50 (admin)", method: "GET", path: projectsPath(size), headers: auth }),
      "projects-member": (size) => ({ label: "GET …/projects?page_size=50 (member)", method: "GET", path: projectsPath(size), headers: memberAuth }),
      invite: (size) => ({
        label: "POST …/invitations (send_email: false)",
        method: "POST",
        path: `/v1/organizations/${orgs.get(size)}/invitations`,
        headers: { ...auth, ...jsonHeaders },
        body: () => JSON.stringify({ email: `ours-${size}-${inviteCounter++}@invitee.test`, role: "user", send_email: false }),
      }),
    };
    return {
      key: "ours",
      name: "tenancy API",
      url,
      requestFor: (route, size) => requests[route](size),
      notes: [
        `password hash: ${scheme}, ${formatCount(Number(iterations))} iterations (PASSWORD_HASH_ITERATIONS unset: the production default)`,
        `set for the bench: ${Object.entries(raised)
          .filter(([k]) => !["APP_BASE_URL", "API_BASE_URL", "BUILD_VERSION"].includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(", ")}`,
        "invitations with send_email: false (no outbox row, no queue message)",
        `projects: N per organization of size N, 1 in ${PRIVATE_EVERY} public; the member (role user) is granted ${GRANTED} private ones`,
        bookmark
          ? `X-D1-Bookmark sent: ${bookmark} (returned by a GET of the organization of ${formatCount(bookmarkSize)} members)`
          : "the API returned no X-D1-Bookmark: the bookmark row measured the read without one",
      ],
      fresh: { spec, path: "/healthz" },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * One statement generates all users inside SQLite; each organization is one batch: the row with
 * its counters, the admin's membership and the members copied from the users. Member i joined
 * at base + i, so the default order (joined_at desc) starts with the highest numbers.
 */
async function seed(db: D1, adminId: string, sizes: number[]): Promise<Map<number, string>> {
  const base = Date.now() - 30 * 86_400_000;
  // usr_ + 10 time characters + 16 digits: a well-formed, ordered id (digits are Crockford base32).
  const userPrefix = newId("user", base).slice(0, 14);
  const userId = (i: number) => `${userPrefix}${String(i).padStart(16, "0")}`;
  const users = Math.max(...sizes);
  await db
    .prepare(
      `${SEQUENCE_CTE} insert into users (id, email, display_name, password_hash, email_verified_at, created_at, updated_at)
       select ?2 || printf('%016d', i), ${memberEmailSql("i")}, ${memberNameSql("i")}, null, ?3 + i, ?3 + i, ?3 + i from seq`,
    )
    .bind(users, userPrefix, base)
    .run();
  const adminRow = await db.prepare("select display_name, email from users where id = ?").bind(adminId).first<{ display_name: string; email: string }>();
  const orgs = new Map<number, string>();
  for (const size of sizes) {
    const orgId = newId("organization", base - 1);
    orgs.set(size, orgId);
    await db.batch([
      db
        .prepare(
          `insert into organizations (id, name, slug, owner_id, member_count, user_member_count, pending_invitation_count, created_at, updated_at)
           values (?1, ?2, ?3, ?4, ?5, ?5, 0, ?6, ?6)`,
        )
        .bind(orgId, `Bench ${formatCount(size)}`, `bench-${size}`, adminId, size + 1, base - 1),
      db
        .prepare(
          "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', 'admin', ?, ?, ?, ?)",
        )
        .bind(orgId, adminId, adminRow!.display_name, adminRow!.display_name.toLowerCase(), adminRow!.email, base - 1),
      db
        .prepare(
          `insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at)
           select ?1, id, 'user', 'user', display_name, lower(display_name), email, created_at from users where id >= ?2 and id < ?3`,
        )
        .bind(orgId, userId(0), userId(size)),
    ]);
  }
  // The counters the API maintains must agree with the rows the bench wrote.
  const check = await db
    .prepare(
      `select o.id, o.member_count, o.user_member_count, o.pending_invitation_count,
              (select count(*) from members m where m.organization_id = o.id) as rows_counted
       from organizations o`,
    )
    .all<{ id: string; member_count: number; user_member_count: number; pending_invitation_count: number; rows_counted: number }>();
  for (const r of check.results) {
    if (r.member_count !== r.rows_counted || r.user_member_count !== r.rows_counted || r.pending_invitation_count !== 0) {
      throw new Error(`seeded counters disagree for ${r.id}: ${JSON.stringify(r)}`);
    }
  }
  return orgs;
}

/**
 * `count` projects in one organization, generated inside SQLite: project i is public when
 * i % PRIVATE_EVERY = 0, and the member (added with the built-in `user` role) is granted the
 * first GRANTED private ones. Ids are well-formed and ordered like the API's own.
 */
async function seedProjects(db: D1, orgId: string, memberId: string, count: number) {
  const base = Date.now() - 20 * 86_400_000;
  const prefix = newId("project", base).slice(0, 14);
  const member = await db.prepare("select display_name, email from users where id = ?").bind(memberId).first<{ display_name: string; email: string }>();
  await db.batch([
    db
      .prepare(
        `${SEQUENCE_CTE} insert into projects (id, organization_id, name, name_key, description, private, created_by, created_at, updated_at)
         select ?2 || printf('%016d', i), ?3, printf('Project %06d', i), printf('project %06d', i), null, (i % ${PRIVATE_EVERY}) != 0, null, ?4 + i, ?4 + i from seq`,
      )
      .bind(count, prefix, orgId, base),
    db
      .prepare(
        "insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at) values (?, ?, 'user', 'user', ?, ?, ?, ?)",
      )
      .bind(orgId, memberId, member!.display_name, member!.display_name.toLowerCase(), member!.email, base),
    db.prepare("update organizations set member_count = member_count + 1, user_member_count = user_member_count + 1 where id = ?").bind(orgId),
    db
      .prepare(
        `insert into project_members (project_id, member_id, organization_id, granted_by, granted_at)
         select id, ?2, ?1, null, ?3 from projects where organization_id = ?1 and private = 1 order by id limit ${GRANTED}`,
      )
      .bind(orgId, memberId, base),
  ]);
}

/**
 * A real next_page_token pointing just before the last page: obtained by paging through the list
 * in the default order with pages of up to 1000 (page tokens do not depend on page_size).
 */
async function lastPageToken(url: string, auth: Record<string, string>, orgId: string, total: number): Promise<string> {
  const target = Math.max(0, total - PAGE_SIZE);
  let consumed = 0;
  let token = "";
  while (consumed < target) {
    const size = Math.min(1000, target - consumed);
    const query = new URLSearchParams({ page_size: String(size), ...(token ? { page_token: token } : {}) });
    const page = await json(await fetch(`${url}/v1/organizations/${orgId}/members?${query}`, { headers: auth }));
    consumed += page.items.length;
    token = page.next_page_token;
    if (!token) throw new Error(`the member list ended after ${consumed} of ${total}`);
  }
  return token;
}
