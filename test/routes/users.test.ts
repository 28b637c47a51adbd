import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, uniqueEmail, verifyUserDirect, type TestUser } from "../helpers/factories";
import { expectProblem, sortedErrorPaths as errorPaths } from "../helpers/problems";

// ---------------------------------------------------------------------------------------------
// Local helpers

const login = (email: string, password: string) => post("/v1/auth/login", { email, password });

const UNKNOWN_USER = "usr_01JD6Q5W8ZK3H0V8N6C2Y4T1RB";
const NEW_PASSWORD = "reset by the platform 99";

interface Admin extends TestUser {
  /** Request options that make this user a platform administrator. */
  as: { token: string; env: { PLATFORM_ADMIN_EMAILS: string } };
}

/** A platform administrator: a verified user whose email is listed in PLATFORM_ADMIN_EMAILS. */
async function createAdmin(opts: { verified?: boolean; listed?: string } = {}): Promise<Admin> {
  const user = await createUser({ email: uniqueEmail("admin") });
  if (opts.verified !== false) await verifyUserDirect(user.id);
  return { ...user, as: { token: user.accessToken, env: { PLATFORM_ADMIN_EMAILS: opts.listed ?? user.email } } };
}

async function countRows(sql: string, ...binds: unknown[]): Promise<number> {
  return (await env.DB.prepare(sql)
    .bind(...binds)
    .first<{ n: number }>())!.n;
}

// ---------------------------------------------------------------------------------------------

describe("happy", () => {
  it("an admin reads another user", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const res = await get(`/v1/users/${target.id}`, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      id: target.id,
      email: target.email,
      display_name: target.displayName,
      email_verified: false,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
  });

  it("PLATFORM_ADMIN_EMAILS is a case-insensitive, comma-separated list", async () => {
    const admin = await createUser({ email: uniqueEmail("admin") });
    await verifyUserDirect(admin.id);
    const target = await createUser();
    const listed = ` someone@else.test , ${admin.email.toUpperCase()} `;
    const res = await get(`/v1/users/${target.id}`, { token: admin.accessToken, env: { PLATFORM_ADMIN_EMAILS: listed } });
    expect(res.status, res.text).toBe(200);
  });

  it("an admin renames another user", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const res = await patch(`/v1/users/${target.id}`, { display_name: "Renamed By Admin" }, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: target.id, display_name: "Renamed By Admin", email: target.email });
    expect((await get("/v1/me", { token: target.accessToken })).body.display_name).toBe("Renamed By Admin");
    // A rename ends no session.
    expect((await get("/v1/me", { token: target.accessToken })).status).toBe(200);
  });

  it("an admin sets new_password without old_password: every session of the target ends", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const second = await login(target.email, target.password);
    expect(second.status).toBe(200);

    const res = await patch(`/v1/users/${target.id}`, { new_password: NEW_PASSWORD }, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body.id).toBe(target.id);

    for (const token of [target.accessToken, second.body.access_token]) {
      expectProblem(await get("/v1/me", { token }), 401, "unauthenticated");
    }
    for (const refresh_token of [target.refreshToken, second.body.refresh_token]) {
      expect((await post("/v1/auth/refresh", { refresh_token })).status).toBe(401);
    }
    expect((await login(target.email, NEW_PASSWORD)).status).toBe(200);
    expectProblem(await login(target.email, target.password), 401, "invalid_credentials");

    // The admin's own session is untouched.
    expect((await get("/v1/me", { token: admin.accessToken })).status).toBe(200);
  });

  it("an admin changes another user's email without old_password; it starts unverified", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    await verifyUserDirect(target.id);
    const newEmail = uniqueEmail("moved");
    const res = await patch(`/v1/users/${target.id}`, { email: newEmail }, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ email: newEmail, email_verified: false });
    expect((await login(newEmail, target.password)).status).toBe(200);
  });

  it("an admin deletes another user", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const org = await createOrg(target);
    const res = await del(`/v1/users/${target.id}`, admin.as);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");

    expectProblem(await get(`/v1/users/${target.id}`, admin.as), 404, "not_found");
    expectProblem(await get("/v1/me", { token: target.accessToken }), 401, "unauthenticated");
    expectProblem(await login(target.email, target.password), 401, "invalid_credentials");
    expect(await countRows("select count(*) as n from organizations where id = ?", org.id)).toBe(0);
    expect((await get("/v1/me", { token: admin.accessToken })).status).toBe(200);
  });

  it("an admin lists another user's organizations", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const owner = await createUser();
    const own = await createOrg(target);
    const joined = await createOrg(owner);
    await addMemberDirect(joined.id, target, "user");
    await createOrg(owner); // not the target's

    const res = await get(`/v1/users/${target.id}/organizations`, admin.as);
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_page_token).toBe("");
    const byId = new Map(res.body.items.map((i: { organization: { id: string }; role: string }) => [i.organization.id, i.role]));
    expect(byId).toEqual(
      new Map([
        [own.id, "admin"],
        [joined.id, "user"],
      ]),
    );
  });

  it("a user reads, renames and lists themself through /v1/users/{own id}", async () => {
    const user = await createUser();
    const org = await createOrg(user);
    const got = await get(`/v1/users/${user.id}`, { token: user.accessToken });
    expect(got.status, got.text).toBe(200);
    expect(got.body).toEqual((await get("/v1/me", { token: user.accessToken })).body);

    const renamed = await patch(`/v1/users/${user.id}`, { display_name: "Self Service" }, { token: user.accessToken });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.display_name).toBe("Self Service");

    const orgs = await get(`/v1/users/${user.id}/organizations`, { token: user.accessToken });
    expect(orgs.status, orgs.text).toBe(200);
    expect(orgs.body.items.map((i: { organization: { id: string } }) => i.organization.id)).toEqual([org.id]);
  });

  it("a user deletes themself through /v1/users/{own id}", async () => {
    const user = await createUser();
    expect((await del(`/v1/users/${user.id}`, { token: user.accessToken })).status).toBe(204);
    expectProblem(await get("/v1/me", { token: user.accessToken }), 401, "unauthenticated");
  });

  it("a PAT with organization:read reads its own user and organizations", async () => {
    const user = await createUser();
    const pat = await createPat(user, ["organization:read"]);
    expect((await get(`/v1/users/${user.id}`, { token: pat.token })).status).toBe(200);
    expect((await get(`/v1/users/${user.id}/organizations`, { token: pat.token })).status).toBe(200);
  });
});

describe("errors", () => {
  it("an admin on an unknown, well-formed id → 404", async () => {
    const admin = await createAdmin();
    expectProblem(await get(`/v1/users/${UNKNOWN_USER}`, admin.as), 404, "not_found");
    expectProblem(await patch(`/v1/users/${UNKNOWN_USER}`, { display_name: "x" }, admin.as), 404, "not_found");
    expectProblem(await del(`/v1/users/${UNKNOWN_USER}`, admin.as), 404, "not_found");
    expectProblem(await get(`/v1/users/${UNKNOWN_USER}/organizations`, admin.as), 404, "not_found");
  });

  it.each([
    ["a malformed id", "not-a-user"],
    ["another kind of id", "org_01JD6Q5W8ZK3H0V8N6C2Y4T1RB"],
    ["a lower-cased id", UNKNOWN_USER.toLowerCase()],
    ["an injection string", encodeURIComponent("usr_' OR '1'='1")],
  ])("an admin on %s → 404", async (_label, id) => {
    const admin = await createAdmin();
    expectProblem(await get(`/v1/users/${id}`, admin.as), 404, "not_found");
    expectProblem(await patch(`/v1/users/${id}`, { display_name: "x" }, admin.as), 404, "not_found");
    expectProblem(await del(`/v1/users/${id}`, admin.as), 404, "not_found");
    expectProblem(await get(`/v1/users/${id}/organizations`, admin.as), 404, "not_found");
  });

  it("an admin deleting the last admin of a shared organization → 409 last_admin", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const member = await createUser();
    const org = await createOrg(target);
    await addMemberDirect(org.id, member);
    const body = expectProblem(await del(`/v1/users/${target.id}`, admin.as), 409, "last_admin");
    expect(body.organization_ids).toEqual([org.id]);
    expect((await get(`/v1/users/${target.id}`, admin.as)).status).toBe(200);
  });

  it("an admin moving a user to a taken email → 409 email_taken", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const other = await createUser();
    expectProblem(await patch(`/v1/users/${target.id}`, { email: other.email }, admin.as), 409, "email_taken");
  });

  it("an admin setting a weak password → 400 naming new_password", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    const res = await patch(`/v1/users/${target.id}`, { new_password: "password123" }, admin.as);
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["new_password"]);
    expect((await get("/v1/me", { token: target.accessToken })).status).toBe(200);
  });

  it("on themself a user still needs old_password to change the password", async () => {
    const user = await createUser();
    const res = await patch(`/v1/users/${user.id}`, { new_password: NEW_PASSWORD }, { token: user.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["old_password"]);
  });

  it("anonymous → 401", async () => {
    const user = await createUser();
    expectProblem(await get(`/v1/users/${user.id}`), 401, "unauthenticated");
    expectProblem(await patch(`/v1/users/${user.id}`, { display_name: "x" }), 401, "unauthenticated");
    expectProblem(await del(`/v1/users/${user.id}`), 401, "unauthenticated");
    expectProblem(await get(`/v1/users/${user.id}/organizations`), 401, "unauthenticated");
  });
});

describe("security", () => {
  it("a non-admin on another user → 403 on every route, and nothing changes", async () => {
    const user = await createUser();
    const target = await createUser();
    expectProblem(await get(`/v1/users/${target.id}`, { token: user.accessToken }), 403, "forbidden");
    expectProblem(await patch(`/v1/users/${target.id}`, { display_name: "Pwned" }, { token: user.accessToken }), 403, "forbidden");
    expectProblem(await patch(`/v1/users/${target.id}`, { new_password: NEW_PASSWORD }, { token: user.accessToken }), 403, "forbidden");
    expectProblem(await del(`/v1/users/${target.id}`, { token: user.accessToken }), 403, "forbidden");
    expectProblem(await get(`/v1/users/${target.id}/organizations`, { token: user.accessToken }), 403, "forbidden");
    const me = await get("/v1/me", { token: target.accessToken });
    expect(me.status).toBe(200);
    expect(me.body.display_name).toBe(target.displayName);
  });

  it("a non-admin cannot tell unknown users from existing ones (403 either way)", async () => {
    const user = await createUser();
    const target = await createUser();
    const known = await get(`/v1/users/${target.id}`, { token: user.accessToken });
    const unknown = await get(`/v1/users/${UNKNOWN_USER}`, { token: user.accessToken });
    expectProblem(known, 403, "forbidden");
    expectProblem(unknown, 403, "forbidden");
    expect(known.body.detail).toBe(unknown.body.detail);
  });

  it("the admin email, unverified → 403", async () => {
    const admin = await createAdmin({ verified: false });
    const target = await createUser();
    expectProblem(await get(`/v1/users/${target.id}`, admin.as), 403, "forbidden");
    expectProblem(await patch(`/v1/users/${target.id}`, { new_password: NEW_PASSWORD }, admin.as), 403, "forbidden");
    expectProblem(await del(`/v1/users/${target.id}`, admin.as), 403, "forbidden");
    expect((await login(target.email, target.password)).status).toBe(200);
  });

  it("a verified user whose email is not listed → 403", async () => {
    const admin = await createAdmin({ listed: uniqueEmail("someone-else") });
    const target = await createUser();
    expectProblem(await get(`/v1/users/${target.id}`, admin.as), 403, "forbidden");
  });

  it("an admin's PAT cannot PATCH or DELETE users (session only)", async () => {
    const admin = await createAdmin();
    const pat = await createPat(admin, ["organization:write", "organization_member:write"]);
    const target = await createUser();
    const asPat = { token: pat.token, env: admin.as.env };
    expectProblem(await patch(`/v1/users/${target.id}`, { new_password: NEW_PASSWORD }, asPat), 403, "forbidden");
    expectProblem(await del(`/v1/users/${target.id}`, asPat), 403, "forbidden");
    expect((await get("/v1/me", { token: target.accessToken })).status).toBe(200);
  });

  it("an admin's PAT without organization:read → 403 insufficient_scope on a user's organizations", async () => {
    const admin = await createAdmin();
    const pat = await createPat(admin, ["organization_member:read"]);
    const target = await createUser();
    expectProblem(await get(`/v1/users/${target.id}/organizations`, { token: pat.token, env: admin.as.env }), 403, "insufficient_scope");
  });

  it("an admin who is logged out is not an admin any more", async () => {
    const admin = await createAdmin();
    const target = await createUser();
    expect((await post("/v1/auth/logout", undefined, admin.as)).status).toBe(204);
    expectProblem(await get(`/v1/users/${target.id}`, admin.as), 401, "unauthenticated");
  });
});
