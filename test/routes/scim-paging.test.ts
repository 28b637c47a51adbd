import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { del } from "../helpers/client";
import { createVerifiedUser, unique } from "../helpers/factories";
import { mintScimToken, scim, scimSetup, seedScimConfig, seedScimUsers, type ScimSetup } from "../helpers/scim";
import { oktaCreateUser } from "../fixtures/scim/okta";

const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";

const counters = (configId: string) =>
  env.DB.prepare(
    "select scim_user_count as users, scim_group_count as groups, (select count(*) from scim_users where config_id = c.id) as real_users, (select count(*) from scim_groups where config_id = c.id) as real_groups from identity_provider_configs c where c.id = ?",
  )
    .bind(configId)
    .first<{ users: number; groups: number; real_users: number; real_groups: number }>();

/** Pages `path` sequentially with `count` to the end, as Okta and Entra ID do; returns ids and per-page costs. */
async function walk(s: ScimSetup, path: string, count: number, total: number, exact = true) {
  const seen: string[] = [];
  const costs: { start: number; rows: number; kvReads: number }[] = [];
  const sep = path.includes("?") ? "&" : "?";
  for (let start = 1; start <= total; start += count) {
    const res = await scim("GET", `${path}${sep}startIndex=${start}&count=${count}`, s.token);
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(1);
    expect(res.body.startIndex).toBe(start);
    // Filtered totals count one page ahead: a lower bound past the page, exact near the end.
    if (exact || start + 2 * count > total) expect(res.body.totalResults).toBe(total);
    else expect(res.body.totalResults).toBeGreaterThan(start - 1 + count);
    costs.push({ start, rows: res.cost.rowsRead, kvReads: res.cost.kvReads });
    seen.push(...res.body.Resources.map((r: any) => r.id));
  }
  return { seen, costs };
}

describe("happy", () => {
  it("Users: sequential pages of 1,000 read O(count) rows each with an exact totalResults; a cold deep page falls back to OFFSET", async () => {
    const s = await scimSetup();
    const ids = await seedScimUsers(s, 1000);

    // Cold: no page before it was served to this token, so the page is the OFFSET query, O(startIndex).
    const cold = await scim("GET", "/Users?startIndex=951&count=50", s.token);
    expect(cold.status, cold.text).toBe(200);
    expect(cold.body.totalResults).toBe(1000);
    expect(cold.body.Resources.map((r: any) => r.id)).toEqual(ids.slice(950));
    expect(cold.cost.rowsRead).toBeGreaterThan(950);
    expect(cold.cost.rowsRead).toBeLessThanOrEqual(950 + 50 + 20);
    console.log(`scim users cold page startIndex=951 count=50 at 1000 users: rows_read=${cold.cost.rowsRead}`);

    const { seen, costs } = await walk(s, "/Users", 50, 1000);
    expect(seen).toEqual(ids);
    expect(new Set(seen).size).toBe(1000);
    for (const c of costs) {
      expect(c.rows, `startIndex ${c.start}`).toBeLessThanOrEqual(50 + 20);
      // The rate limit's read, and the cursor's after the first page.
      expect(c.kvReads).toBeLessThanOrEqual(2);
    }
    console.log(`scim users sequential paging (count=50, 1000 users): rows_read by startIndex ${costs.map((c) => `${c.start}:${c.rows}`).join(" ")}`);

    // A page past the end: empty, total still exact.
    const past = await scim("GET", "/Users?startIndex=1001&count=50", s.token);
    expect(past.body).toMatchObject({ totalResults: 1000, Resources: [] });
  });

  it("Users: a filtered sequential walk also reads O(count) per page, its total a lower bound past the page until the end", async () => {
    const s = await scimSetup();
    const ids = await seedScimUsers(s, 300);
    const { seen, costs } = await walk(s, `/Users?filter=${encodeURIComponent("active eq true")}`, 50, 300, false);
    expect(seen).toEqual(ids);
    // The page and its count (which stops one page past it) both start after the cursor.
    for (const c of costs.slice(1)) expect(c.rows, `startIndex ${c.start}`).toBeLessThanOrEqual(3 * 50 + 20);
    console.log(
      `scim users filtered paging (active eq true, count=50, 300 users): rows_read by startIndex ${costs.map((c) => `${c.start}:${c.rows}`).join(" ")}`,
    );
  });

  it("Users: the cursor belongs to the token, the list and the position (a replaced token, another filter or startIndex start cold)", async () => {
    const s = await scimSetup();
    const ids = await seedScimUsers(s, 200);
    await scim("GET", "/Users?startIndex=1&count=50", s.token);
    const warm = await scim("GET", "/Users?startIndex=51&count=50", s.token);
    expect(warm.cost.rowsRead).toBeLessThanOrEqual(70);
    // Another position: OFFSET.
    const jumped = await scim("GET", "/Users?startIndex=52&count=50", s.token);
    expect(jumped.body.Resources.map((r: any) => r.id)).toEqual(ids.slice(51, 101));
    expect(jumped.cost.rowsRead).toBeGreaterThan(100);
    // Another list (a filter) at the same position: OFFSET, and its own results.
    const filtered = await scim("GET", `/Users?filter=${encodeURIComponent("active eq true")}&startIndex=51&count=50`, s.token);
    expect(filtered.body.Resources.map((r: any) => r.id)).toEqual(ids.slice(50, 100));
    // A replaced token does not inherit its predecessor's cursors.
    const token = await mintScimToken(s.configId);
    const fresh = await scim("GET", "/Users?startIndex=101&count=50", token);
    expect(fresh.body.Resources.map((r: any) => r.id)).toEqual(ids.slice(100, 150));
    expect(fresh.cost.rowsRead).toBeGreaterThan(100);
  });

  it("Users: between pages, a deleted user of an earlier page does not make the keyset skip anyone", async () => {
    const s = await scimSetup();
    const ids = await seedScimUsers(s, 120);
    const first = await scim("GET", "/Users?startIndex=1&count=50", s.token);
    expect(first.body.Resources).toHaveLength(50);
    expect((await scim("DELETE", `/Users/${ids[0]}`, s.token)).status).toBe(204);
    const second = await scim("GET", "/Users?startIndex=51&count=50", s.token);
    // Exactly the users after the last one seen, though an OFFSET would now start one later.
    expect(second.body.Resources.map((r: any) => r.id)).toEqual(ids.slice(50, 100));
    expect(second.body.totalResults).toBe(119);
  });

  it("the directory counters stay exact through SCIM creates and deletes of users and groups", async () => {
    const s = await scimSetup();
    const created: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await scim("POST", "/Users", s.token, oktaCreateUser(`${unique("c").toLowerCase()}@${s.domain}`, { externalId: unique("ext") }));
      expect(res.status, res.text).toBe(201);
      created.push(res.body.id);
    }
    // A refused create (taken userName) counts nothing.
    const dup = await scim("GET", `/Users/${created[0]}`, s.token);
    expect((await scim("POST", "/Users", s.token, oktaCreateUser(dup.body.userName, { externalId: unique("ext") }))).status).toBe(409);
    expect((await scim("DELETE", `/Users/${created[1]}`, s.token)).status).toBe(204);
    // A repeated delete (404) counts nothing.
    expect((await scim("DELETE", `/Users/${created[1]}`, s.token)).status).toBe(404);

    const groups: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await scim("POST", "/Groups", s.token, { schemas: [GROUP], displayName: unique("g"), members: [{ value: created[0] }] });
      expect(res.status, res.text).toBe(201);
      groups.push(res.body.id);
    }
    expect(
      (await scim("POST", "/Groups", s.token, { schemas: [GROUP], displayName: (await scim("GET", `/Groups/${groups[0]}`, s.token)).body.displayName })).status,
    ).toBe(409);
    expect((await scim("DELETE", `/Groups/${groups[2]}`, s.token)).status).toBe(204);
    // A user in groups deleted: the group counter is untouched, the user counter follows.
    expect((await scim("DELETE", `/Users/${created[0]}`, s.token)).status).toBe(204);

    const c = (await counters(s.configId))!;
    expect(c).toEqual({ users: 2, groups: 2, real_users: 2, real_groups: 2 });
    const users = await scim("GET", "/Users", s.token);
    expect(users.body.totalResults).toBe(2);
    const list = await scim("GET", "/Groups", s.token);
    expect(list.body.totalResults).toBe(2);
  });

  it("an account deleting itself takes its SCIM users with it, and their directories' counters follow", async () => {
    const s = await scimSetup();
    // A second directory of the same organization.
    const a = { ...s, ...(await seedScimConfig(s.org.id)) };
    const person = await createVerifiedUser({ email: `${unique("gone").toLowerCase()}@${s.domain}` });
    // Linked in two directories, inactive (no membership: nothing keeps the account).
    for (const dir of [s, a]) {
      const res = await scim("POST", "/Users", dir.token, { ...oktaCreateUser(person.email), active: false });
      expect(res.status, res.text).toBe(201);
    }
    expect((await scim("POST", "/Users", s.token, oktaCreateUser(`${unique("stay").toLowerCase()}@${s.domain}`))).status).toBe(201);
    expect((await counters(s.configId))!.users).toBe(2);
    expect((await del("/v1/me", { token: person.accessToken })).status).toBe(204);
    expect(await counters(s.configId)).toMatchObject({ users: 1, real_users: 1 });
    expect(await counters(a.configId)).toMatchObject({ users: 0, real_users: 0 });
  });

  it("Groups: sequential pages with exact totals, each group once, keyset after the first page", async () => {
    const s = await scimSetup();
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await scim("POST", "/Groups", s.token, { schemas: [GROUP], displayName: `${unique("grp")}-${i}` });
      expect(res.status, res.text).toBe(201);
      ids.push(res.body.id);
    }
    const { seen, costs } = await walk(s, "/Groups", 2, 9);
    expect(seen).toEqual([...ids].sort());
    for (const c of costs) expect(c.rows, `startIndex ${c.start}`).toBeLessThanOrEqual(2 + 20);
    // With members asked for, the member read follows the same keyset.
    const withMembers = await walk({ ...s }, "/Groups?attributes=members,displayName", 3, 9);
    expect(withMembers.seen).toEqual([...ids].sort());
    const filtered = await walk(s, `/Groups?filter=${encodeURIComponent('displayName sw "grp"')}`, 4, 9, false);
    expect(filtered.seen).toEqual([...ids].sort());
    console.log(`scim groups sequential paging (count=2, 9 groups): rows_read ${costs.map((c) => `${c.start}:${c.rows}`).join(" ")}`);
  });
});
