import { describe, expect, it } from "vitest";
import { api, get } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, createVerifiedUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { adminAndOrg, membersPath } from "./members-helpers";
import { auditLogsPath, collectPages, newestFirst, seedEntries, type EntrySpec } from "./audit-logs-helpers";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const T0 = Date.parse("2025-03-01T00:00:00Z");
const MINUTE = 60_000;

/**
 * Twelve entries a minute apart from T0, over three actors, three actions and two targets, so
 * every filter picks a different, non-trivial subset.
 */
async function seededOrg() {
  const { admin, org } = await adminAndOrg();
  const actions = ["member.added", "member.role_changed", "project.created"];
  const specs: EntrySpec[] = Array.from({ length: 12 }, (_, i) => ({
    action: actions[i % 3]!,
    actorId: `usr_actor${i % 4 === 0 ? "A" : i % 4 === 1 ? "B" : "C"}`,
    targetId: i % 2 === 0 ? "usr_even" : "usr_odd",
    createdAt: T0 + i * MINUTE,
  }));
  const seeded = await seedEntries(org.id, specs);
  return { admin, org, seeded };
}

const ids = (items: { id: string }[]) => items.map((i) => i.id);

describe("happy", () => {
  it("a real change appears with who, what, from where and when; newest first", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createVerifiedUser();
    const added = await api("POST", membersPath(org.id), {
      token: admin.accessToken,
      body: { email: user.email, role: "user" },
      headers: { "CF-Connecting-IP": "203.0.113.7", "User-Agent": "audit-test/1.0", "X-Request-Id": "req-audit-test-1" },
    });
    expect(added.status, added.text).toBe(201);

    const res = await get(auditLogsPath(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    expect(res.body.items.map((e: any) => e.action)).toEqual(["member.added", "organization.created"]);
    expect(res.body.items[0]).toEqual({
      id: expect.stringMatching(/^aud_/),
      action: "member.added",
      actor: { type: "user", id: admin.id },
      credential: "session",
      target: { type: "user", id: user.id },
      changes: expect.toSatisfy((c: unknown) => c === null || (Array.isArray(c) && c.every((f) => typeof f === "string"))),
      ip: "203.0.113.7",
      user_agent: "audit-test/1.0",
      request_id: "req-audit-test-1",
      created_at: expect.stringMatching(ISO),
    });
    // Reading the log is not a change: it records nothing.
    expect((await get(auditLogsPath(org.id), { token: admin.accessToken })).body.items).toHaveLength(2);
  });

  it("each filter: actor_id, action, target_id, and their AND", async () => {
    const { admin, org, seeded } = await seededOrg();
    const list = async (filter: string) => {
      const res = await get(auditLogsPath(org.id, { filter }), { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      return ids(res.body.items);
    };
    const expect_ = (pred: (e: (typeof seeded)[number]) => boolean) => ids(newestFirst(seeded.filter(pred)));

    expect(await list('actor_id = "usr_actorA"')).toEqual(expect_((e) => e.actorId === "usr_actorA"));
    expect(await list('action = "member.role_changed"')).toEqual(expect_((e) => e.action === "member.role_changed"));
    expect(await list('target_id = "usr_odd"')).toEqual(expect_((e) => e.targetId === "usr_odd"));
    const both = expect_((e) => e.action === "member.added" && e.targetId === "usr_even");
    expect(both.length).toBeGreaterThan(0);
    expect(await list('action = "member.added" AND target_id = "usr_even"')).toEqual(both);
    expect(await list('actor_id = "usr_actorB" AND action = "member.added" AND target_id = "usr_odd"')).toEqual(
      expect_((e) => e.actorId === "usr_actorB" && e.action === "member.added" && e.targetId === "usr_odd"),
    );
    // A filter that matches nothing is an empty page, not an error.
    expect(await list('actor_id = "usr_nobody"')).toEqual([]);
    expect(await list('action = "role.deleted"')).toEqual([]);
  });

  it("a time range: >= and <= include the bound, > and < exclude it; any offset", async () => {
    const { admin, org, seeded } = await seededOrg();
    const at = (i: number) => new Date(T0 + i * MINUTE).toISOString();
    const list = async (filter: string) => {
      const res = await get(auditLogsPath(org.id, { filter }), { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      return ids(res.body.items);
    };
    const within = (from: number, to: number) => ids(newestFirst(seeded.filter((e) => e.createdAt >= T0 + from * MINUTE && e.createdAt < T0 + to * MINUTE)));

    expect(await list(`created_at >= "${at(3)}" AND created_at < "${at(7)}"`)).toEqual(within(3, 7));
    expect(await list(`created_at > "${at(3)}" AND created_at <= "${at(7)}"`)).toEqual(within(4, 8));
    // Open-ended: the organization.created entry (written now, after T0) is in range too.
    expect((await list(`created_at >= "${at(10)}"`)).slice(1)).toEqual(within(10, 12));
    expect(await list(`created_at < "${at(2)}"`)).toEqual(within(0, 2));
    // 01:03 at +01:00 is 00:03 UTC; a lower-case t and z are RFC 3339 too.
    expect(await list(`created_at >= "2025-03-01T01:03:00+01:00" AND created_at < "2025-03-01t00:07:00z"`)).toEqual(within(3, 7));
    // Combined with an equality filter.
    expect(await list(`action = "member.added" AND created_at >= "${at(3)}"`)).toEqual(
      ids(newestFirst(seeded.filter((e) => e.action === "member.added" && e.createdAt >= T0 + 3 * MINUTE))),
    );
    expect(await list(`created_at >= "${at(7)}" AND created_at < "${at(3)}"`)).toEqual([]);
  });

  it("pages newest first across several pages to the end, filtered or not, with no entry twice", async () => {
    const { admin, org, seeded } = await seededOrg();
    const all = await collectPages(org.id, admin.accessToken, { page_size: "5" });
    // The seeded entries are older than the organization.created entry written at creation.
    expect(all.items[0].action).toBe("organization.created");
    expect(ids(all.items.slice(1))).toEqual(ids(newestFirst(seeded)));
    expect(all.pages.map((p) => p.body.items.length)).toEqual([5, 5, 3]);

    const filtered = await collectPages(org.id, admin.accessToken, { page_size: "2", filter: 'target_id = "usr_even"' });
    expect(ids(filtered.items)).toEqual(ids(newestFirst(seeded.filter((e) => e.targetId === "usr_even"))));
    expect(filtered.pages).toHaveLength(3);

    // Entries sharing a millisecond still page without loss: the id breaks the tie.
    const { admin: a2, org: o2 } = await adminAndOrg();
    const same = await seedEntries(
      o2.id,
      Array.from({ length: 7 }, () => ({ action: "member.added", createdAt: T0 })),
    );
    const tied = await collectPages(o2.id, a2.accessToken, { page_size: "3", filter: 'action = "member.added"' });
    expect(ids(tied.items)).toEqual(ids(newestFirst(same)));
  });

  it("a PAT with organization:read reads the log", async () => {
    const { admin, org } = await seededOrg();
    const pat = await createPat(admin, ["organization:read"]);
    const res = await get(auditLogsPath(org.id), { token: pat.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(13);
  });
});

describe("errors", () => {
  it("an invalid filter is 400 invalid_filter", async () => {
    const { admin, org } = await adminAndOrg();
    const cases = [
      'ip = "1.2.3.4"',
      'actor_id != "usr_x"',
      'target_id:"usr"',
      'action = "member.exploded"',
      'action = "member.added" OR action = "member.removed"',
      'created_at = "2025-01-01T00:00:00Z"',
      'created_at >= "2025-01-01"',
      'created_at >= "2025-01-01T00:00:00"',
      'created_at >= "2025-02-30T00:00:00Z"',
      'created_at >= "2025-01-01T24:00:00Z"',
      'created_at >= "yesterday"',
      'actor_id > "usr_x"',
      "actor_id = usr_x",
      "created_at >= ",
    ];
    for (const filter of cases) {
      expectProblem(await get(auditLogsPath(org.id, { filter }), { token: admin.accessToken }), 400, "invalid_filter");
    }
  });

  it("a page token from another filter, or forged, is 400 invalid_page_token", async () => {
    const { admin, org } = await seededOrg();
    const first = await get(auditLogsPath(org.id, { page_size: "2" }), { token: admin.accessToken });
    const token = first.body.next_page_token as string;
    expect(token).not.toBe("");
    expectProblem(
      await get(auditLogsPath(org.id, { page_size: "2", page_token: token, filter: 'action = "member.added"' }), { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
    expectProblem(await get(auditLogsPath(org.id, { page_token: `${token.split(".")[0]}.forged` }), { token: admin.accessToken }), 400, "invalid_page_token");
  });
});

describe("security", () => {
  it("no credential is 401", async () => {
    const { org } = await adminAndOrg();
    expectProblem(await get(auditLogsPath(org.id)), 401, "unauthenticated");
  });

  it("a member with the built-in user role is 403; so is a PAT without organization:read", async () => {
    const { admin, org } = await seededOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    expectProblem(await get(auditLogsPath(org.id), { token: member.accessToken }), 403, "forbidden");
    const pat = await createPat(admin, ["organization_member:write", "organization_integration:write"]);
    expectProblem(await get(auditLogsPath(org.id), { token: pat.token }), 403, "insufficient_scope");
  });

  it("another organization's log is 404, and reads none of its entries", async () => {
    const { org } = await seededOrg();
    const outsider = await createUser();
    await createOrg(outsider);
    const res = await get(auditLogsPath(org.id), { token: outsider.accessToken });
    expectProblem(res, 404, "not_found");
    // The refused request's figures do not depend on how many entries the organization has.
    expect(res.cost.rowsRead).toBeLessThan(5);
  });
});
