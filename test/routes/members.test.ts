import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createVerifiedUser as createUser, uniqueEmail } from "../helpers/factories";
import { ISO, adminAndOrg, createRole, createServiceAccount, memberCount, memberPath, membersPath } from "./members-helpers";
import { errorPaths, expectProblem } from "../helpers/problems";

/** What the built-in `user` role holds (§5); a custom role needs all of it to hand `user` out. */
const USER_ROLE_PERMISSIONS = ["organization:read", "members:read", "roles:read", "projects:read", "projects:write"];

/** An admin, their organization and a member holding the built-in `user` role. */
async function orgWithMember() {
  const { admin, org } = await adminAndOrg();
  const member = await createUser();
  await addMemberDirect(org.id, member, "user");
  return { admin, member, org };
}

/** The admins of an organization, read through the list filter. */
async function adminIds(orgId: string, token: string) {
  const res = await get(`${membersPath(orgId)}?filter=${encodeURIComponent('role = "admin"')}&page_size=100`, { token });
  expect(res.status, res.text).toBe(200);
  return (res.body.items as { user: { id: string } }[]).map((m) => m.user.id);
}

describe("happy", () => {
  it("lists the creator as admin and a service account as type service_account with a null email", async () => {
    const { admin, org } = await adminAndOrg();
    const sa = await createServiceAccount(admin, org.id, { name: "Deploy Bot" });
    const res = await get(membersPath(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    expect(res.body.items).toEqual([
      {
        user: { id: sa.service_account.id, display_name: "Deploy Bot", email: null },
        role: "service_account",
        type: "service_account",
        joined_at: expect.stringMatching(ISO),
      },
      { user: { id: admin.id, display_name: admin.displayName, email: admin.email }, role: "admin", type: "user", joined_at: expect.stringMatching(ISO) },
    ]);
    for (const m of res.body.items) expect(Object.keys(m).sort()).toEqual(["joined_at", "role", "type", "user"]);

    const one = await get(memberPath(org.id, sa.service_account.id), { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(res.body.items[0]);
  });

  it("POST adds an existing user with the default role `user`; GET returns the same member", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const before = Date.now();
    const res = await post(membersPath(org.id), { email: user.email }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      user: { id: user.id, display_name: user.displayName, email: user.email },
      role: "user",
      type: "user",
      joined_at: expect.stringMatching(ISO),
    });
    expect(Date.parse(res.body.joined_at)).toBeGreaterThanOrEqual(before - 1000);

    const got = await get(memberPath(org.id, user.id), { token: admin.accessToken });
    expect(got.status, got.text).toBe(200);
    expect(got.body).toEqual(res.body);
    // The new member is in at once.
    expect((await get(`/v1/organizations/${org.id}`, { token: user.accessToken })).status).toBe(200);
  });

  it("POST matches the email case-insensitively", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    const res = await post(membersPath(org.id), { email: `  ${user.email.toUpperCase()} ` }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(res.body.user).toEqual({ id: user.id, display_name: user.displayName, email: user.email });
  });

  it("POST with role admin or a custom role gives that role", async () => {
    const { admin, org } = await adminAndOrg();
    const role = await createRole(admin, org.id, ["organization:read", "members:read"]);
    const a = await createUser();
    const b = await createUser();
    const asAdmin = await post(membersPath(org.id), { email: a.email, role: "admin" }, { token: admin.accessToken });
    expect(asAdmin.status, asAdmin.text).toBe(201);
    expect(asAdmin.body.role).toBe("admin");
    const asCustom = await post(membersPath(org.id), { email: b.email, role: role.name }, { token: admin.accessToken });
    expect(asCustom.status, asCustom.text).toBe(201);
    expect(asCustom.body.role).toBe(role.name);
    expect((await get(memberPath(org.id, b.id), { token: a.accessToken })).body.role).toBe(role.name);
  });

  it("member_count on the organization follows adds and removals", async () => {
    const { admin, org } = await adminAndOrg();
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
    const u1 = await createUser();
    const u2 = await createUser();
    expect((await post(membersPath(org.id), { email: u1.email }, { token: admin.accessToken })).status).toBe(201);
    expect((await post(membersPath(org.id), { email: u2.email }, { token: admin.accessToken })).status).toBe(201);
    expect(await memberCount(org.id, admin.accessToken)).toBe(3);
    const sa = await createServiceAccount(admin, org.id);
    expect(await memberCount(org.id, admin.accessToken)).toBe(4);
    expect((await del(memberPath(org.id, u1.id), { token: admin.accessToken })).status).toBe(204);
    expect(await memberCount(org.id, admin.accessToken)).toBe(3);
    expect((await del(memberPath(org.id, u2.id), { token: u2.accessToken })).status).toBe(204);
    expect(await memberCount(org.id, admin.accessToken)).toBe(2);
    expect((await del(memberPath(org.id, sa.service_account.id), { token: admin.accessToken })).status).toBe(204);
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
    // A refused change leaves the count alone.
    expectProblem(await post(membersPath(org.id), { email: admin.email }, { token: admin.accessToken }), 409, "already_member");
    expectProblem(await del(memberPath(org.id, admin.id), { token: admin.accessToken }), 409, "last_admin");
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
  });

  it("PATCH promotes a member to admin and demotes them again", async () => {
    const { admin, member, org } = await orgWithMember();
    const up = await patch(memberPath(org.id, member.id), { role: "admin" }, { token: admin.accessToken });
    expect(up.status, up.text).toBe(200);
    expect(up.body).toMatchObject({ user: { id: member.id, display_name: member.displayName, email: member.email }, role: "admin", type: "user" });
    expect((await adminIds(org.id, admin.accessToken)).sort()).toEqual([admin.id, member.id].sort());
    // The promoted member can now manage members.
    expect((await patch(memberPath(org.id, admin.id), { role: "user" }, { token: member.accessToken })).status).toBe(200);
    const down = await patch(memberPath(org.id, admin.id), { role: "admin" }, { token: member.accessToken });
    expect(down.status).toBe(200);
    const demoted = await patch(memberPath(org.id, member.id), { role: "user" }, { token: admin.accessToken });
    expect(demoted.status, demoted.text).toBe(200);
    expect(demoted.body.role).toBe("user");
    expect(await adminIds(org.id, admin.accessToken)).toEqual([admin.id]);
    // Setting the role a member already has is a no-op 200.
    const same = await patch(memberPath(org.id, member.id), { role: "user" }, { token: admin.accessToken });
    expect(same.status, same.text).toBe(200);
    expect(same.body.role).toBe("user");
  });

  it("PATCH assigns a custom role, and the member gets its permissions", async () => {
    const { admin, member, org } = await orgWithMember();
    const role = await createRole(admin, org.id, [...USER_ROLE_PERMISSIONS, "members:write"]);
    const before = await post(membersPath(org.id), { email: (await createUser()).email }, { token: member.accessToken });
    expectProblem(before, 403, "forbidden");
    const res = await patch(memberPath(org.id, member.id), { role: role.name }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.role).toBe(role.name);
    expect((await get(memberPath(org.id, member.id), { token: admin.accessToken })).body.role).toBe(role.name);
    const after = await post(membersPath(org.id), { email: (await createUser()).email }, { token: member.accessToken });
    expect(after.status, after.text).toBe(201);
  });

  it("DELETE removes a member: 204, then 404 and gone from the list", async () => {
    const { admin, member, org } = await orgWithMember();
    const res = await del(memberPath(org.id, member.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await get(memberPath(org.id, member.id), { token: admin.accessToken }), 404, "not_found");
    const list = await get(membersPath(org.id), { token: admin.accessToken });
    expect(list.body.items.map((m: any) => m.user.id)).toEqual([admin.id]);
    // Removing them again is a 404, not a second decrement.
    expectProblem(await del(memberPath(org.id, member.id), { token: admin.accessToken }), 404, "not_found");
    expect(await memberCount(org.id, admin.accessToken)).toBe(1);
  });

  it("a member with only the `user` role may leave (no members:write needed)", async () => {
    const { admin, member, org } = await orgWithMember();
    const res = await del(memberPath(org.id, member.id), { token: member.accessToken });
    expect(res.status, res.text).toBe(204);
    expect(await adminIds(org.id, admin.accessToken)).toEqual([admin.id]);
    expectProblem(await get(memberPath(org.id, member.id), { token: admin.accessToken }), 404, "not_found");
  });

  it("an admin may leave while another admin remains", async () => {
    const { admin, member, org } = await orgWithMember();
    expect((await patch(memberPath(org.id, member.id), { role: "admin" }, { token: admin.accessToken })).status).toBe(200);
    expect((await del(memberPath(org.id, admin.id), { token: admin.accessToken })).status).toBe(204);
    expect(await adminIds(org.id, member.accessToken)).toEqual([member.id]);
  });

  it("removing a service-account member deletes the service account; its key gets 401 at once", async () => {
    const { admin, org } = await adminAndOrg();
    const sa = await createServiceAccount(admin, org.id);
    expect((await get(`/v1/organizations/${org.id}`, { token: sa.key })).status).toBe(200);
    const res = await del(memberPath(org.id, sa.service_account.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(204);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: sa.key }), 401, "unauthenticated");
    expectProblem(await get(`/v1/organizations/${org.id}/service-accounts/${sa.service_account.id}`, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await get(memberPath(org.id, sa.service_account.id), { token: admin.accessToken }), 404, "not_found");
  });
});

describe("seats", () => {
  const seats2 = { env: { FREE_PLAN_SEATS: "2" } };

  it("with 2 seats, the admin plus one added member fill the plan: the next add → 409 seat_limit_reached", async () => {
    const { admin, org } = await adminAndOrg();
    const [u1, u2] = [await createUser(), await createUser()];
    const first = await post(membersPath(org.id), { email: u1.email }, { token: admin.accessToken, ...seats2 });
    expect(first.status, first.text).toBe(201);
    const full = await post(membersPath(org.id), { email: u2.email }, { token: admin.accessToken, ...seats2 });
    expectProblem(full, 409, "seat_limit_reached");
    expectProblem(await get(memberPath(org.id, u2.id), { token: admin.accessToken }), 404, "not_found");
    expect(await memberCount(org.id, admin.accessToken)).toBe(2);
    // A removal frees the seat.
    expect((await del(memberPath(org.id, u1.id), { token: admin.accessToken })).status).toBe(204);
    const again = await post(membersPath(org.id), { email: u2.email }, { token: admin.accessToken, ...seats2 });
    expect(again.status, again.text).toBe(201);
  });

  it("service accounts take no seat: with 2 seats and a service account, one human still fits", async () => {
    const { admin, org } = await adminAndOrg();
    await createServiceAccount(admin, org.id);
    await createServiceAccount(admin, org.id);
    const [u1, u2] = [await createUser(), await createUser()];
    const res = await post(membersPath(org.id), { email: u1.email }, { token: admin.accessToken, ...seats2 });
    expect(res.status, res.text).toBe(201);
    expectProblem(await post(membersPath(org.id), { email: u2.email }, { token: admin.accessToken, ...seats2 }), 409, "seat_limit_reached");
    expect(await memberCount(org.id, admin.accessToken)).toBe(4);
  });

  it("adding someone who is already a member of a full organization → 409 already_member", async () => {
    const { admin, member, org } = await orgWithMember();
    expectProblem(await post(membersPath(org.id), { email: member.email }, { token: admin.accessToken, ...seats2 }), 409, "already_member");
  });
});

describe("errors", () => {
  it("POST an email no account has → 404 user_not_found", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(membersPath(org.id), { email: uniqueEmail("nobody") }, { token: admin.accessToken });
    expectProblem(res, 404, "user_not_found");
    expect(res.body.detail).toMatch(/invit/i);
  });

  it("POST someone already a member → 409 already_member", async () => {
    const { admin, member, org } = await orgWithMember();
    expectProblem(await post(membersPath(org.id), { email: member.email }, { token: admin.accessToken }), 409, "already_member");
    expectProblem(await post(membersPath(org.id), { email: admin.email.toUpperCase(), role: "admin" }, { token: admin.accessToken }), 409, "already_member");
    expect((await get(memberPath(org.id, member.id), { token: admin.accessToken })).body.role).toBe("user");
  });

  it("POST an unknown role → 400 with path role", async () => {
    const { admin, org } = await adminAndOrg();
    const user = await createUser();
    for (const role of ["superuser", "Admin", "rol_x"]) {
      const res = await post(membersPath(org.id), { email: user.email, role }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["role"]);
    }
    expectProblem(await get(memberPath(org.id, user.id), { token: admin.accessToken }), 404, "not_found");
  });

  it("POST a role of another organization → 400 with path role", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    const foreign = await createRole(admin, other.id, ["organization:read"]);
    const res = await post(membersPath(org.id), { email: (await createUser()).email, role: foreign.name }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["role"]);
  });

  it.each([
    ["missing email", {}, ["email"]],
    ["bad email", { email: "not-an-email" }, ["email"]],
    ["email of the wrong type", { email: 42 }, ["email"]],
    ["empty role", { email: "a@example.com", role: "" }, ["role"]],
    ["bad email and role", { email: "x@", role: 7 }, ["email", "role"]],
  ])("POST with %s → 400 validation_failed listing every bad field", async (_name, body, paths) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(membersPath(org.id), body, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual([...paths].sort());
  });

  it("POST with malformed JSON → 400", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await api("POST", membersPath(org.id), { token: admin.accessToken, raw: "{email:", headers: { "Content-Type": "application/json" } });
    expect(res.status, res.text).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("GET/PATCH/DELETE an unknown or malformed member id → 404", async () => {
    const { admin, org } = await adminAndOrg();
    for (const id of [newId("user"), newId("serviceAccount"), "usr_nope", "not-an-id", org.id, "%27%20or%201%3D1--"]) {
      expectProblem(await get(memberPath(org.id, id), { token: admin.accessToken }), 404, "not_found");
      expectProblem(await patch(memberPath(org.id, id), { role: "user" }, { token: admin.accessToken }), 404, "not_found");
      expectProblem(await del(memberPath(org.id, id), { token: admin.accessToken }), 404, "not_found");
    }
  });

  it("GET a member of another organization through this one → 404", async () => {
    const { admin, org } = await adminAndOrg();
    const { member: outsider, org: other } = await orgWithMember();
    expectProblem(await get(memberPath(org.id, outsider.id), { token: admin.accessToken }), 404, "not_found");
    expectProblem(await patch(memberPath(org.id, outsider.id), { role: "admin" }, { token: admin.accessToken }), 404, "not_found");
    expectProblem(await del(memberPath(org.id, outsider.id), { token: admin.accessToken }), 404, "not_found");
    expect((await get(memberPath(other.id, outsider.id), { token: outsider.accessToken })).status).toBe(200);
  });

  it("PATCH demoting the last admin → 409 last_admin, and they stay admin", async () => {
    const { admin, member, org } = await orgWithMember();
    for (const role of ["user", "service_account"]) {
      expectProblem(await patch(memberPath(org.id, admin.id), { role }, { token: admin.accessToken }), 409, "last_admin");
    }
    const custom = await createRole(admin, org.id, ["organization:read"]);
    expectProblem(await patch(memberPath(org.id, admin.id), { role: custom.name }, { token: admin.accessToken }), 409, "last_admin");
    expect(await adminIds(org.id, member.accessToken)).toEqual([admin.id]);
  });

  it("PATCH with an unknown role or a bad body → 400", async () => {
    const { admin, member, org } = await orgWithMember();
    const unknown = await patch(memberPath(org.id, member.id), { role: "overlord" }, { token: admin.accessToken });
    expectProblem(unknown, 400, "validation_failed");
    expect(errorPaths(unknown)).toEqual(["role"]);
    for (const body of [{}, { role: "" }, { role: 1 }, { role: null }]) {
      const res = await patch(memberPath(org.id, member.id), body, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["role"]);
    }
    expect((await get(memberPath(org.id, member.id), { token: admin.accessToken })).body.role).toBe("user");
  });

  it("DELETE: the last admin cannot leave → 409 last_admin, alone or with other members", async () => {
    const lonely = await adminAndOrg();
    expectProblem(await del(memberPath(lonely.org.id, lonely.admin.id), { token: lonely.admin.accessToken }), 409, "last_admin");
    const { admin, member, org } = await orgWithMember();
    expectProblem(await del(memberPath(org.id, admin.id), { token: admin.accessToken }), 409, "last_admin");
    expect(await adminIds(org.id, member.accessToken)).toEqual([admin.id]);
    expect(await memberCount(org.id, admin.accessToken)).toBe(2);
  });
});

describe("security", () => {
  it("anonymous → 401 on every member route", async () => {
    const { admin, org } = await adminAndOrg();
    for (const res of [
      await get(membersPath(org.id)),
      await post(membersPath(org.id), { email: "a@example.com" }),
      await get(memberPath(org.id, admin.id)),
      await patch(memberPath(org.id, admin.id), { role: "user" }),
      await del(memberPath(org.id, admin.id)),
    ]) {
      expectProblem(res, 401, "unauthenticated");
    }
  });

  it("an admin of another organization → 404 on every member route", async () => {
    const { admin, org } = await adminAndOrg();
    const { admin: stranger } = await adminAndOrg();
    const t = { token: stranger.accessToken };
    expectProblem(await get(membersPath(org.id), t), 404, "not_found");
    expectProblem(await post(membersPath(org.id), { email: stranger.email }, t), 404, "not_found");
    expectProblem(await get(memberPath(org.id, admin.id), t), 404, "not_found");
    expectProblem(await patch(memberPath(org.id, admin.id), { role: "user" }, t), 404, "not_found");
    expectProblem(await del(memberPath(org.id, admin.id), t), 404, "not_found");
    expectProblem(await del(memberPath(org.id, stranger.id), t), 404, "not_found");
  });

  it("the `user` role reads members but gets 403 forbidden on add, change and removal of others", async () => {
    const { admin, member, org } = await orgWithMember();
    const t = { token: member.accessToken };
    expect((await get(membersPath(org.id), t)).status).toBe(200);
    expect((await get(memberPath(org.id, admin.id), t)).status).toBe(200);
    expectProblem(await post(membersPath(org.id), { email: (await createUser()).email }, t), 403, "forbidden");
    expectProblem(await patch(memberPath(org.id, admin.id), { role: "user" }, t), 403, "forbidden");
    expectProblem(await patch(memberPath(org.id, member.id), { role: "admin" }, t), 403, "forbidden");
    expectProblem(await del(memberPath(org.id, admin.id), t), 403, "forbidden");
    expect(await adminIds(org.id, admin.accessToken)).toEqual([admin.id]);
  });

  it("a custom role with members:write but not everything cannot grant admin or touch an admin, but can set a member to `user`", async () => {
    const { admin, org } = await adminAndOrg();
    const manager = await createUser();
    const managerRole = await createRole(admin, org.id, [...USER_ROLE_PERMISSIONS, "members:write"]);
    await addMemberDirect(org.id, manager, managerRole.name);
    const viewerRole = await createRole(admin, org.id, ["organization:read", "members:read"]);
    const target = await createUser();
    await addMemberDirect(org.id, target, viewerRole.name);
    const t = { token: manager.accessToken };

    expectProblem(await patch(memberPath(org.id, target.id), { role: "admin" }, t), 403, "forbidden");
    expectProblem(await patch(memberPath(org.id, manager.id), { role: "admin" }, t), 403, "forbidden");
    expectProblem(await patch(memberPath(org.id, admin.id), { role: "user" }, t), 403, "forbidden");
    expectProblem(await patch(memberPath(org.id, admin.id), { role: viewerRole.name }, t), 403, "forbidden");
    expectProblem(await del(memberPath(org.id, admin.id), t), 403, "forbidden");
    expectProblem(await post(membersPath(org.id), { email: (await createUser()).email, role: "admin" }, t), 403, "forbidden");
    expect(await adminIds(org.id, admin.accessToken)).toEqual([admin.id]);
    expect((await get(memberPath(org.id, target.id), t)).body.role).toBe(viewerRole.name);

    const ok = await patch(memberPath(org.id, target.id), { role: "user" }, t);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.role).toBe("user");
    const added = await post(membersPath(org.id), { email: (await createUser()).email }, t);
    expect(added.status, added.text).toBe(201);
    expect(added.body.role).toBe("user");
  });

  it("a PAT narrows member access by scope: organization_member:read lists but cannot change", async () => {
    const { admin, member, org } = await orgWithMember();
    const pat = await createPat(admin, ["organization_member:read"]);
    expect((await get(membersPath(org.id), { token: pat.token })).status).toBe(200);
    expectProblem(await patch(memberPath(org.id, member.id), { role: "admin" }, { token: pat.token }), 403, "insufficient_scope");
    expectProblem(await del(memberPath(org.id, member.id), { token: pat.token }), 403, "insufficient_scope");
    const other = await createPat(admin, ["organization:read"]);
    expectProblem(await get(membersPath(org.id), { token: other.token }), 403, "insufficient_scope");
  });

  it("a removed member's access token gets 404 on the organization on the very next request", async () => {
    const { admin, member, org } = await orgWithMember();
    expect((await get(`/v1/organizations/${org.id}`, { token: member.accessToken })).status).toBe(200);
    expect((await del(memberPath(org.id, member.id), { token: admin.accessToken })).status).toBe(204);
    expectProblem(await get(`/v1/organizations/${org.id}`, { token: member.accessToken }), 404, "not_found");
    expectProblem(await get(membersPath(org.id), { token: member.accessToken }), 404, "not_found");
  });

  it("a service account key reads its own organization's members only", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    const sa = await createServiceAccount(admin, org.id);
    expect((await get(membersPath(org.id), { token: sa.key })).status).toBe(200);
    expectProblem(await get(membersPath(other.id), { token: sa.key }), 404, "not_found");
    expectProblem(await post(membersPath(org.id), { email: (await createUser()).email }, { token: sa.key }), 403, "forbidden");
  });
});

describe("concurrency", () => {
  const ROUNDS = 6;

  async function twoAdmins() {
    const { admin: a, org } = await adminAndOrg();
    const b = await createUser();
    await addMemberDirect(org.id, b, "admin");
    return { a, b, org };
  }

  it(`two admins demoting each other at once leave exactly one admin (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { a, b, org } = await twoAdmins();
      const results = await Promise.all([
        patch(memberPath(org.id, b.id), { role: "user" }, { token: a.accessToken }),
        patch(memberPath(org.id, a.id), { role: "user" }, { token: b.accessToken }),
      ]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses, results.map((r) => r.text).join("\n")).toEqual([200, 409]);
      expectProblem(results.find((r) => r.status === 409)!, 409, "last_admin");
      const winner = results[0]!.status === 200 ? a : b;
      const admins = await adminIds(org.id, winner.accessToken);
      expect(admins).toEqual([winner.id]);
    }
  });

  it(`two admins removing each other at once leave exactly one admin (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { a, b, org } = await twoAdmins();
      const results = await Promise.all([del(memberPath(org.id, b.id), { token: a.accessToken }), del(memberPath(org.id, a.id), { token: b.accessToken })]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses, results.map((r) => r.text).join("\n")).toEqual([204, 409]);
      expectProblem(results.find((r) => r.status === 409)!, 409, "last_admin");
      const winner = results[0]!.status === 204 ? a : b;
      expect(await adminIds(org.id, winner.accessToken)).toEqual([winner.id]);
      expect(await memberCount(org.id, winner.accessToken)).toBe(1);
    }
  });

  it(`one admin demoting while the other leaves still leaves one admin (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { a, b, org } = await twoAdmins();
      const results = await Promise.all([
        patch(memberPath(org.id, b.id), { role: "user" }, { token: a.accessToken }),
        del(memberPath(org.id, a.id), { token: a.accessToken }),
      ]);
      expect(results.filter((r) => r.status === 409).length, results.map((r) => r.text).join("\n")).toBe(1);
      expectProblem(results.find((r) => r.status === 409)!, 409, "last_admin");
      const survivor = results[0]!.status === 200 ? a : b;
      expect(await adminIds(org.id, survivor.accessToken)).toEqual([survivor.id]);
    }
  });
});
