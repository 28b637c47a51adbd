import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { get, type Cost } from "../helpers/client";
import { adminAndOrg } from "./members-helpers";
import { auditLogsPath } from "./audit-logs-helpers";

/**
 * The bar: one D1 round trip per page at a million entries. One organization holds
 * ENTRIES entries (a second organization holds more, so the guard and the index ranges must keep
 * them apart); every page, ten pages deep, filtered or not, must be one query reading O(page)
 * rows. The timing of the seed is the test's cost, not what it measures.
 */
const ENTRIES = 1_000_000;
const PAGE = 50;
const DEPTH = 10;
const ROW_BOUND = 2 * PAGE + 10;

const ACTORS = 100;
const TARGETS = 1000;
const ACTIONS = ["member.added", "member.removed", "member.role_changed", "project.created", "project.updated"];
// Three entries per millisecond, so ties on created_at are everywhere and the id must break them.
const BASE = Date.now() - 2 * 86_400_000;
const at = (i: number) => BASE + Math.floor(i / 3);

let orgId = "";
let token = "";
const measured: Record<string, Cost[]> = {};

/** One statement: a recursive CTE numbers the rows, so seeding costs no round trip per entry. */
async function seed(org: string, count: number, idPrefix: string) {
  const actions = ACTIONS.map((a) => `'${a}'`).join(", ");
  await env.DB.prepare(
    `with recursive n(i) as (select 0 union all select i + 1 from n where i + 1 < ?)
     insert into audit_logs (id, organization_id, action, actor_type, actor_id, credential, target_type, target_id, changes, ip, user_agent, request_id, created_at)
     select ? || printf('%08d', i), ?, json_extract(json_array(${actions}), '$[' || (i % ${ACTIONS.length}) || ']'), 'user',
            'usr_a' || printf('%03d', i % ${ACTORS}), 'session', 'member', 'usr_t' || printf('%04d', i % ${TARGETS}),
            '["role"]', '198.51.100.1', 'scale', 'req_scale', ? + i / 3
     from n`,
  )
    .bind(count, idPrefix, org, BASE)
    .run();
}

beforeAll(async () => {
  const { admin, org } = await adminAndOrg();
  orgId = org.id;
  token = admin.accessToken;
  const other = await adminAndOrg();
  // Building the indexes once after the load is several times faster than updating five of them
  // per row; they are rebuilt from their own stored definitions, so the plans under test are the real ones.
  const indexes = (
    await env.DB.prepare("select name, sql from sqlite_master where type = 'index' and tbl_name = 'audit_logs' and sql is not null").all<{
      name: string;
      sql: string;
    }>()
  ).results;
  expect(indexes.map((i) => i.name).sort()).toEqual([
    "audit_logs_action_idx",
    "audit_logs_actor_idx",
    "audit_logs_created_idx",
    "audit_logs_org_idx",
    "audit_logs_target_idx",
  ]);
  await env.DB.batch(indexes.map((i) => env.DB.prepare(`drop index ${i.name}`)));
  await seed(orgId, ENTRIES, "aud_scale_");
  await seed(other.org.id, 50_000, "aud_other_");
  await env.DB.batch(indexes.map((i) => env.DB.prepare(i.sql)));
}, 600_000);

async function walk(label: string, filter?: string) {
  let pageToken = "";
  const seen: any[] = [];
  for (let p = 0; p < DEPTH; p++) {
    const query: Record<string, string> = { page_size: String(PAGE) };
    if (filter) query.filter = filter;
    if (pageToken) query.page_token = pageToken;
    const res = await get(auditLogsPath(orgId, query), { token });
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    (measured[label] ??= []).push(res.cost);
    expect(res.body.items, `${label} page ${p + 1}`).toHaveLength(PAGE);
    expect(res.cost.queries, `${label} page ${p + 1}: D1 round trips`).toBe(1);
    expect(res.cost.rowsRead, `${label} page ${p + 1}: rows read`).toBeLessThanOrEqual(ROW_BOUND);
    seen.push(...res.body.items);
    pageToken = res.body.next_page_token;
    expect(pageToken).not.toBe("");
  }
  // Newest first throughout, no entry twice.
  expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
  for (let i = 1; i < seen.length; i++) {
    const [a, b] = [seen[i - 1], seen[i]];
    expect(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), `${label}: order at ${i}`).toBe(true);
  }
  return seen;
}

describe(`audit log at ${ENTRIES.toLocaleString("en")} entries`, () => {
  it("unfiltered, ten pages deep", async () => {
    const seen = await walk("unfiltered");
    // The organization.created entry is the newest; then the seed from its last row down.
    expect(seen[0].action).toBe("organization.created");
    expect(seen[1].id).toBe(`aud_scale_${String(ENTRIES - 1).padStart(8, "0")}`);
  });

  it("by actor, by action, by target", async () => {
    for (const e of await walk("actor_id", 'actor_id = "usr_a007"')) expect(e.actor.id).toBe("usr_a007");
    for (const e of await walk("action", 'action = "member.role_changed"')) expect(e.action).toBe("member.role_changed");
    for (const e of await walk("target_id", 'target_id = "usr_t0042"')) expect(e.target.id).toBe("usr_t0042");
  });

  it("by time range, alone and with an equality", async () => {
    const from = new Date(at(100_000)).toISOString();
    const to = new Date(at(600_000)).toISOString();
    for (const e of await walk("time range", `created_at >= "${from}" AND created_at < "${to}"`)) {
      expect(e.created_at >= from && e.created_at < to).toBe(true);
    }
    for (const e of await walk("action + time range", `action = "member.added" AND created_at < "${to}"`)) {
      expect(e.action === "member.added" && e.created_at < to).toBe(true);
    }
  });

  it("reports what it measured", () => {
    const summary = Object.fromEntries(
      Object.entries(measured).map(([label, costs]) => [
        label,
        {
          pages: costs.length,
          queries: Math.max(...costs.map((c) => c.queries)),
          maxRowsRead: Math.max(...costs.map((c) => c.rowsRead)),
          statements: Math.max(...costs.map((c) => c.statements)),
        },
      ]),
    );
    console.log(JSON.stringify({ entries: ENTRIES, page: PAGE, summary }, null, 1));
    expect(Object.keys(summary).length).toBeGreaterThan(0);
  });
});
