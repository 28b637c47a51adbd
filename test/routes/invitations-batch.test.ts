import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { get, post } from "../helpers/client";
import { addMemberDirect, createUser, uniqueEmail } from "../helpers/factories";
import { eventually, invitationPath, invitationsPath, invite, mailboxFor, orgCounters, type Invitation } from "./invitations-helpers";
import { adminAndOrg, createRole } from "./members-helpers";
import { errorPaths, expectProblem } from "../helpers/problems";

describe("happy", () => {
  it("batch: one result per row in order, each row on its own", async () => {
    const { admin, org } = await adminAndOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const pending = await invite(admin.accessToken, org.id, { send_email: false });
    const toCombine = await invite(admin.accessToken, org.id, { send_email: false });
    const fresh = uniqueEmail("fresh");
    const quiet = uniqueEmail("quiet");
    const res = await post(
      `${invitationsPath(org.id)}/batch`,
      {
        invitations: [
          { email: fresh, role: "admin", message: "hi" },
          { email: "not-an-email", expires_in_days: 99 },
          { email: member.email },
          { email: pending.email },
          { email: toCombine.email, combine_pending: true, role: "admin", send_email: false },
          { email: uniqueEmail(), role: "no-such-role" },
          { email: quiet, send_email: false },
          { email: fresh.toUpperCase(), combine_pending: true },
        ],
      },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(200);
    const r = res.body.results;
    expect(r).toHaveLength(8);
    expect(r[0]).toMatchObject({ email: fresh, status: "created", invitation: { email: fresh, role: "admin", message: "hi", email_status: "queued" } });
    expect(r[0].invitation).not.toHaveProperty("accept_url");
    expect(r[1]).toMatchObject({ email: "not-an-email", status: "error", error: { code: "validation_failed" } });
    expect(r[1].error.errors.map((e: any) => e.path).sort()).toEqual(["email", "expires_in_days"]);
    expect(r[2]).toMatchObject({ email: member.email, status: "error", error: { code: "already_member" } });
    expect(r[3]).toMatchObject({ email: pending.email, status: "error", error: { code: "invitation_pending" } });
    expect(r[4]).toMatchObject({ email: toCombine.email, status: "combined", invitation: { id: toCombine.id, role: "admin" } });
    expect(r[4].invitation.accept_url).toMatch(/token=ivt_/);
    expect(r[5]).toMatchObject({ status: "error", error: { code: "validation_failed", errors: [{ path: "role" }] } });
    expect(r[6]).toMatchObject({ email: quiet, status: "created", invitation: { email_status: null } });
    expect(r[6].invitation.accept_url).toMatch(/token=ivt_/);
    // One email once per batch: a second row would silently rework the first row's invitation.
    expect(r[7]).toMatchObject({ email: fresh, status: "error", error: { code: "validation_failed", errors: [{ path: "email" }] } });
    for (const row of r) if (row.status === "error") expect(row).not.toHaveProperty("invitation");
    // Created rows really are there; refused ones are not.
    const list = await get(`${invitationsPath(org.id)}?status=pending`, { token: admin.accessToken });
    expect(list.body.items.map((i: Invitation) => i.email).sort()).toEqual([fresh, pending.email, toCombine.email, quiet].sort());
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(4);
    const [mail] = await eventually(
      () => mailboxFor(fresh),
      (m) => m.length === 1,
      "the batch row's email",
    );
    expect(mail!.text).toContain("hi");
  });

  it("batch of 100 goes through in a fixed number of round trips", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = Array.from({ length: 100 }, () => ({ email: uniqueEmail("bulk"), send_email: false }));
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: { FREE_PLAN_SEATS: "1000" } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.results.every((r: any) => r.status === "created")).toBe(true);
    expect(res.body.results.map((r: any) => r.email)).toEqual(rows.map((r) => r.email));
    expect(res.cost.queries).toBe(2);
    // Set-based: one statement per step for all rows, not a few per row (D1 counts each against its limit).
    expect(res.cost.statements).toBe(10);
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(100);
  });

  it("batch of 100 with emails: every outbox row is marked queued (one bound parameter for all ids)", async () => {
    const { admin, org } = await adminAndOrg();
    // A queue that accepts and holds the messages, as the real one does until its consumer runs:
    // the local queue delivers too fast to see the `queued` state in between.
    const held: unknown[] = [];
    const holdingQueue = {
      holding: true,
      send: async (m: unknown) => void held.push(m),
      sendBatch: async (ms: unknown[]) => void held.push(...ms),
    } as unknown as Queue;
    const rows = Array.from({ length: 100 }, () => ({ email: uniqueEmail("mail") }));
    const res = await post(
      `${invitationsPath(org.id)}/batch`,
      { invitations: rows },
      { token: admin.accessToken, env: { FREE_PLAN_SEATS: "1000", EMAIL_QUEUE: holdingQueue } },
    );
    expect(res.status, res.text).toBe(200);
    expect(held).toHaveLength(100);
    const ids = JSON.stringify(res.body.results.map((r: any) => r.invitation.id));
    // Left `pending`, every row would be sent to the queue again by the cron a minute later.
    const statuses = () =>
      env.DB.prepare(
        "select outbox.status as status, count(*) as n from outbox join invitations on invitations.outbox_id = outbox.id where invitations.id in (select value from json_each(?)) group by 1",
      )
        .bind(ids)
        .all<{ status: string; n: number }>()
        .then((r) => r.results);
    expect(await eventually(statuses, (r) => r.length === 1 && r[0]!.status === "queued", "every outbox row to be marked queued")).toEqual([
      { status: "queued", n: 100 },
    ]);
  });
});

describe("seat limit", () => {
  const seats = { FREE_PLAN_SEATS: "3" };

  it("members plus pending invitations may not exceed the seats: 409 seat_limit_reached", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    const full = await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: admin.accessToken, env: seats });
    expectProblem(full, 409, "seat_limit_reached");
    expect(full.body.seats).toBe(3);
    // Canceling frees the seat.
    expect((await post(`${invitationPath(org.id, a.id)}/cancel`, undefined, { token: admin.accessToken, env: seats })).status).toBe(200);
    await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    expectProblem(await post(invitationsPath(org.id), { email: uniqueEmail() }, { token: admin.accessToken, env: seats }), 409, "seat_limit_reached");
  });

  it("combine_pending does not take another seat in a full organization", async () => {
    const { admin, org } = await adminAndOrg();
    await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    const b = await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    const res = await post(invitationsPath(org.id), { email: b.email, combine_pending: true, send_email: false }, { token: admin.accessToken, env: seats });
    expect(res.status, res.text).toBe(200);
  });

  it("service accounts take no seat", async () => {
    const { admin, org } = await adminAndOrg();
    for (let i = 0; i < 3; i++) {
      const sa = await post(`/v1/organizations/${org.id}/service-accounts`, { name: `bot ${i}` }, { token: admin.accessToken });
      expect(sa.status, sa.text).toBe(201);
    }
    await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
    await invite(admin.accessToken, org.id, { send_email: false }, { env: seats });
  });

  it("the batch counts as a whole, in row order", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = [uniqueEmail(), uniqueEmail(), uniqueEmail(), uniqueEmail()].map((email) => ({ email, send_email: false }));
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: seats });
    expect(res.status, res.text).toBe(200);
    expect(res.body.results.map((r: any) => (r.status === "error" ? r.error.code : r.status))).toEqual([
      "created",
      "created",
      "seat_limit_reached",
      "seat_limit_reached",
    ]);
    expect((await orgCounters(org.id)).pending_invitation_count).toBe(2);
  });

  it("defaults to 10 seats", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = Array.from({ length: 10 }, () => ({ email: uniqueEmail(), send_email: false }));
    const res = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken });
    expect(res.body.results.filter((r: any) => r.status === "created")).toHaveLength(9);
    expect(res.body.results[9].error.code).toBe("seat_limit_reached");
    expect(res.body.results[9].error.seats).toBeGreaterThan(0);
  });
});

describe("errors", () => {
  it("batch: an empty or over-long list, or a non-list → 400 naming invitations", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = Array.from({ length: 101 }, () => ({ email: uniqueEmail() }));
    for (const body of [{ invitations: [] }, { invitations: rows }, { invitations: "x" }, {}, { invitations: [1] }]) {
      const res = await post(`${invitationsPath(org.id)}/batch`, body, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)[0]).toMatch(/^invitations/);
    }
  });
});

describe("cost", () => {
  // One round trip authorizes (membership and credential in one batch), one writes everything and
  // reads back what landed in one batch; the queue send is not D1.
  it("create, batch, get, list, cancel and resend take a small fixed number of round trips", async () => {
    const { admin, org } = await adminAndOrg();
    const token = admin.accessToken;
    const created = await post(invitationsPath(org.id), { email: uniqueEmail() }, { token });
    expect(created.status).toBe(201);
    expect(created.cost.queries).toBe(2);
    // The audit entry and its event go in the same write batch: no extra round trip.
    expect(created.cost.rowsRead).toBe(25);
    expect(created.cost.statements).toBe(11);
    const quiet = await post(invitationsPath(org.id), { email: uniqueEmail(), send_email: false }, { token });
    expect(quiet.cost.queries).toBe(2);
    expect(quiet.cost.rowsRead).toBe(23);

    const batch = await post(`${invitationsPath(org.id)}/batch`, { invitations: Array.from({ length: 5 }, () => ({ email: uniqueEmail() })) }, { token });
    expect(batch.body.results.every((r: any) => r.status === "created")).toBe(true);
    expect(batch.cost.queries).toBe(2);
    // A custom role is read in the authorization batch: no extra round trip.
    const role = await createRole(admin, org.id, ["organization:read"]);
    const custom = await post(
      `${invitationsPath(org.id)}/batch`,
      {
        invitations: [
          { email: uniqueEmail(), role: role.name },
          { email: uniqueEmail(), role: role.name },
        ],
      },
      { token },
    );
    expect(custom.cost.queries).toBe(2);

    const got = await get(invitationPath(org.id, created.body.id), { token });
    // Reads share the authorization batch: one round trip.
    expect(got.cost.queries).toBe(1);
    expect(got.cost.rowsRead).toBeLessThanOrEqual(10);
    const list = await get(`${invitationsPath(org.id)}?page_size=3`, { token });
    expect(list.body.items).toHaveLength(3);
    expect(list.cost.queries).toBe(1);
    expect(list.cost.rowsRead).toBeLessThanOrEqual(3 + 10);
    for (const status of ["pending", "expired", "canceled"]) {
      const filtered = await get(`${invitationsPath(org.id)}?page_size=3&status=${status}`, { token });
      // `expired` merges two index walks (each up to a page), both read in the authorization batch.
      expect(filtered.cost.queries, status).toBe(1);
      expect(filtered.cost.rowsRead, status).toBeLessThanOrEqual((status === "expired" ? 2 * 3 : 3) + 10);
    }
    const canceled = await post(`${invitationPath(org.id, created.body.id)}/cancel`, undefined, { token });
    // Finding the invitation shares the authorization batch; the change is the second round trip.
    expect(canceled.cost.queries).toBe(2);
    const resent = await post(`${invitationPath(org.id, quiet.body.id)}/resend`, undefined, { token });
    expect(resent.cost.queries).toBe(2);
  });

  it("a list page reads O(page_size) rows, however many invitations other organizations hold", async () => {
    const { admin, org } = await adminAndOrg();
    const rows = Array.from({ length: 60 }, () => ({ email: uniqueEmail("cost"), send_email: false }));
    const seeded = await post(`${invitationsPath(org.id)}/batch`, { invitations: rows }, { token: admin.accessToken, env: { FREE_PLAN_SEATS: "1000" } });
    expect(seeded.cost.queries).toBe(2);
    // Inviting (and combining) reads what the new rows need, not the organization's 60 pending invitations.
    for (const body of [
      { email: uniqueEmail("cost"), send_email: false },
      { email: rows[0]!.email, combine_pending: true, send_email: false },
    ]) {
      const one = await post(invitationsPath(org.id), body, { token: admin.accessToken, env: { FREE_PLAN_SEATS: "1000" } });
      expect(one.status, one.text).toBeLessThan(300);
      expect(one.cost.rowsRead, JSON.stringify(body)).toBe(body.combine_pending ? 31 : 23);
    }
    const other = await adminAndOrg();
    for (const status of ["", "pending", "expired", "canceled"]) {
      const res = await get(`${invitationsPath(other.org.id)}?page_size=5${status ? `&status=${status}` : ""}`, { token: other.admin.accessToken });
      expect(res.cost.rowsRead, status || "all").toBeLessThanOrEqual(5 + 10);
      const mine = await get(`${invitationsPath(org.id)}?page_size=5${status ? `&status=${status}` : ""}`, { token: admin.accessToken });
      // `expired` also looks among the organization's pending invitations for ones the cron has not
      // swept yet: bounded by the seats (pending ones hold seats), not by page_size.
      expect(mine.cost.rowsRead, status || "all").toBeLessThanOrEqual(5 + 10 + (status === "expired" ? rows.length : 0));
    }
  });
});
