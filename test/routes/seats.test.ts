import { describe, expect, it } from "vitest";
import { del, get, post, put } from "../helpers/client";
import { addMemberDirect, createOrg, createUser, createVerifiedUser, uniqueEmail, type TestUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { createLicense, expireDirect, platformAdmin, seatsUsedDirect, type PlatformAdmin } from "./licenses-helpers";

/**
 * The seat limit (human members plus pending invitations) under a license, and the free plan's
 * FREE_PLAN_SEATS without one. Every request that takes a seat carries FREE = 2, so a limit of 2
 * says "free plan" and any other number "the license".
 */
const cfg = { FREE_PLAN_SEATS: "2" };

interface Org {
  admin: PlatformAdmin;
  owner: TestUser;
  orgId: string;
  as: { token: string; env: typeof cfg };
}

/** An organization (its owner takes the first seat) holding a license of `seats` seats, or none. */
async function organization(seats: number | null): Promise<Org & { licenseId: string | null }> {
  const admin = await platformAdmin();
  const owner = await createUser();
  const org = await createOrg(owner);
  const licenseId = seats === null ? null : (await createLicense(admin, { seats, organization_id: org.id })).id;
  return { admin, owner, orgId: org.id, as: { token: owner.accessToken, env: cfg }, licenseId };
}

const addMember = async (o: Org, user?: TestUser) =>
  post(`/v1/organizations/${o.orgId}/members`, { email: (user ?? (await createVerifiedUser())).email, role: "user" }, o.as);
const invite = (o: Org, email = uniqueEmail("invitee")) => post(`/v1/organizations/${o.orgId}/invitations`, { email, send_email: false }, o.as);
const inviteBatch = (o: Org, n: number) =>
  post(
    `/v1/organizations/${o.orgId}/invitations/batch`,
    { invitations: Array.from({ length: n }, () => ({ email: uniqueEmail("batch"), send_email: false })) },
    o.as,
  );
const outcomes = (res: { body: { results: { status: string; error?: { code: string } }[] } }) =>
  res.body.results.map((r) => (r.status === "error" ? r.error!.code : r.status));

/** A signed-in user holding a pending invitation to the organization, with its accept token. */
async function invited(o: Org) {
  const user = await createUser();
  const res = await invite(o, user.email);
  expect(res.status, res.text).toBe(201);
  return { user, token: new URL(res.body.accept_url).searchParams.get("token")! };
}
const accept = (inv: { user: TestUser; token: string }) =>
  post(`/v1/invitations/${encodeURIComponent(inv.token)}/accept`, undefined, { token: inv.user.accessToken, env: cfg });

function expectSeatLimit(res: Awaited<ReturnType<typeof post>>, seats: number) {
  expect(expectProblem(res, 409, "seat_limit_reached").seats).toBe(seats);
}

describe("happy", () => {
  it("POST members: the license's seats are the limit", async () => {
    const o = await organization(4);
    for (let i = 0; i < 3; i++) expect((await addMember(o)).status).toBe(201);
    expectSeatLimit(await addMember(o), 4);
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
  });

  it("POST invitations: the license's seats are the limit", async () => {
    const o = await organization(4);
    for (let i = 0; i < 3; i++) expect((await invite(o)).status).toBe(201);
    expectSeatLimit(await invite(o), 4);
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
  });

  it("invitations/batch counts the whole batch against the license's seats", async () => {
    const o = await organization(4);
    const res = await inviteBatch(o, 5);
    expect(res.status, res.text).toBe(200);
    expect(outcomes(res)).toEqual(["created", "created", "created", "seat_limit_reached", "seat_limit_reached"]);
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
  });

  it("accept: an invitation already holds its seat, so a full organization still lets it in", async () => {
    const o = await organization(3);
    const a = await invited(o);
    const b = await invited(o);
    expect(await seatsUsedDirect(o.orgId)).toBe(3);
    expect((await accept(a)).status).toBe(200);
    expect((await accept(b)).status).toBe(200);
    expect(await seatsUsedDirect(o.orgId)).toBe(3);
  });

  it("without a license the limit is FREE_PLAN_SEATS", async () => {
    const o = await organization(null);
    expect((await addMember(o)).status).toBe(201);
    expectSeatLimit(await addMember(o), 2);
    expectSeatLimit(await invite(o), 2);
    expect(outcomes(await inviteBatch(o, 2))).toEqual(["seat_limit_reached", "seat_limit_reached"]);
    const view = await get(`/v1/organizations/${o.orgId}/license`, o.as);
    expect(view.body).toMatchObject({ license_id: null, seats: 2, seats_used: 2 });
  });

  it("an expired license falls back to the free plan's seats", async () => {
    const o = await organization(10);
    expect((await addMember(o)).status).toBe(201);
    await expireDirect(o.licenseId!);
    expectSeatLimit(await addMember(o), 2);
    expectSeatLimit(await invite(o), 2);
  });

  it("a revoked license falls back to the free plan's seats", async () => {
    const o = await organization(10);
    expect((await invite(o)).status).toBe(201);
    expect((await post(`/v1/licenses/${o.licenseId}/revoke`, undefined, o.admin.as)).status).toBe(200);
    expectSeatLimit(await invite(o), 2);
    expectSeatLimit(await addMember(o), 2);
  });

  it("assigning a license raises the limit at once; removing it lowers it", async () => {
    const o = await organization(null);
    expect((await addMember(o)).status).toBe(201);
    expectSeatLimit(await addMember(o), 2);
    const lic = await createLicense(o.admin, { seats: 3 });
    expect((await put(`/v1/organizations/${o.orgId}/license`, { license_id: lic.id }, o.as)).status).toBe(200);
    expect((await addMember(o)).status).toBe(201);
    expectSeatLimit(await addMember(o), 3);
    expect((await del(`/v1/organizations/${o.orgId}/license`, o.as)).status).toBe(204);
    expectSeatLimit(await invite(o), 2);
  });

  it("service accounts take no seat under a license either", async () => {
    const o = await organization(2);
    for (let i = 0; i < 3; i++) expect((await post(`/v1/organizations/${o.orgId}/service-accounts`, { name: `bot ${i}` }, o.as)).status).toBe(201);
    expect((await invite(o)).status).toBe(201);
    expectSeatLimit(await invite(o), 2);
  });
});

describe("downgrade", () => {
  it("a license below current usage is accepted, removes nobody, and blocks every new seat until usage fits", async () => {
    const o = await organization(6);
    const members: TestUser[] = [];
    for (let i = 0; i < 3; i++) {
      const u = await createVerifiedUser();
      members.push(u);
      expect((await addMember(o, u)).status).toBe(201);
    }
    const pending = await invited(o);
    const other = await invited(o);
    expect(await seatsUsedDirect(o.orgId)).toBe(6);

    const small = await createLicense(o.admin, { seats: 3 });
    const res = await put(`/v1/organizations/${o.orgId}/license`, { license_id: small.id }, o.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ license_id: small.id, seats: 3, seats_used: 6, status: "active" });

    // Nobody was removed.
    const list = await get(`/v1/organizations/${o.orgId}/members?page_size=100`, o.as);
    expect(list.body.items).toHaveLength(4);
    expect(await seatsUsedDirect(o.orgId)).toBe(6);

    // No new seat: add, invite, batch, and accept (the organization is over its limit).
    expectSeatLimit(await addMember(o), 3);
    expectSeatLimit(await invite(o), 3);
    expect(outcomes(await inviteBatch(o, 1))).toEqual(["seat_limit_reached"]);
    expectSeatLimit(await accept(pending), 3);

    // Freeing seats until usage is within the limit lets people in again.
    for (const u of members.slice(0, 2)) expect((await del(`/v1/organizations/${o.orgId}/members/${u.id}`, o.as)).status).toBe(204);
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
    expectSeatLimit(await invite(o), 3);
    expectSeatLimit(await accept(pending), 3);
    expect((await del(`/v1/organizations/${o.orgId}/members/${members[2]!.id}`, o.as)).status).toBe(204);
    expect(await seatsUsedDirect(o.orgId)).toBe(3);
    // At the limit: an accept moves a seat it already holds; a new one does not fit.
    expect((await accept(pending)).status).toBe(200);
    expectSeatLimit(await invite(o), 3);
    expect((await accept(other)).status).toBe(200);
  });

  it("removing the license of an organization above FREE_PLAN_SEATS keeps everyone and blocks new seats", async () => {
    const o = await organization(5);
    for (let i = 0; i < 3; i++) expect((await addMember(o)).status).toBe(201);
    expect((await del(`/v1/organizations/${o.orgId}/license`, o.as)).status).toBe(204);
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
    expectSeatLimit(await addMember(o), 2);
    expectSeatLimit(await invite(o), 2);
  });
});

describe("races", () => {
  it("concurrent adds and invites into the last seat leave the organization exactly at its limit", async () => {
    const o = await organization(5);
    for (let i = 0; i < 3; i++) await addMemberDirect(o.orgId, await createVerifiedUser());
    expect(await seatsUsedDirect(o.orgId)).toBe(4);
    const users = await Promise.all(Array.from({ length: 4 }, () => createVerifiedUser()));
    const results = await Promise.all([...users.map((u) => addMember(o, u)), ...Array.from({ length: 4 }, () => invite(o))]);
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    for (const r of results.filter((r) => r.status !== 201)) expectSeatLimit(r, 5);
    expect(await seatsUsedDirect(o.orgId)).toBe(5);
  });

  it("concurrent batches share the remaining seats without going over", async () => {
    const o = await organization(6);
    const results = await Promise.all([inviteBatch(o, 4), inviteBatch(o, 4), inviteBatch(o, 4)]);
    const created = results.flatMap(outcomes).filter((s) => s === "created");
    expect(created).toHaveLength(5);
    expect(await seatsUsedDirect(o.orgId)).toBe(6);
  });

  it("on the free plan too", async () => {
    const o = await organization(null);
    const users = await Promise.all(Array.from({ length: 5 }, () => createVerifiedUser()));
    const results = await Promise.all(users.map((u) => addMember(o, u)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(await seatsUsedDirect(o.orgId)).toBe(2);
  });

  it("a downgrade racing with adds: each add is judged against one license, and afterwards no seat is free", async () => {
    const o = await organization(10);
    const small = await createLicense(o.admin, { seats: 3 });
    const users = await Promise.all(Array.from({ length: 6 }, () => createVerifiedUser()));
    const [assign, ...adds] = await Promise.all([
      put(`/v1/organizations/${o.orgId}/license`, { license_id: small.id }, o.as),
      ...users.map((u) => addMember(o, u)),
    ]);
    expect(assign!.status, assign!.text).toBe(200);
    const added = adds.filter((r) => r.status === 201).length;
    // Each add was checked against the license in force when its statement ran: the counters
    // agree with the answers, and the small license now refuses every new seat.
    expect(await seatsUsedDirect(o.orgId)).toBe(1 + added);
    expectSeatLimit(await addMember(o), 3);
  });
});
