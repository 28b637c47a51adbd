import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, get, patch } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser } from "../helpers/factories";
import { expectProblem, errorPaths } from "../helpers/problems";

const DEFAULTS = { support_team_access: false, sso_admin_bypass: true };

const url = (orgId: string) => `/v1/organizations/${orgId}/preferences`;

async function adminWithOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

describe("happy", () => {
  it("a new organization has the default preferences", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await get(url(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(DEFAULTS);
    expect(res.cost.kvReads).toBe(1);
    expect(res.cost.queries).toBeLessThanOrEqual(2);
  });

  it("an admin PATCHes one field at a time; the other is kept", async () => {
    const { admin, org } = await adminWithOrg();
    const one = await patch(url(org.id), { support_team_access: true }, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual({ support_team_access: true, sso_admin_bypass: true });
    const two = await patch(url(org.id), { sso_admin_bypass: false }, { token: admin.accessToken });
    expect(two.body).toEqual({ support_team_access: true, sso_admin_bypass: false });
    expect((await get(url(org.id), { token: admin.accessToken })).body).toEqual({ support_team_access: true, sso_admin_bypass: false });

    const both = await patch(url(org.id), { support_team_access: false, sso_admin_bypass: true }, { token: admin.accessToken });
    expect(both.body).toEqual(DEFAULTS);
    const none = await patch(url(org.id), {}, { token: admin.accessToken });
    expect(none.status, none.text).toBe(200);
    expect(none.body).toEqual(DEFAULTS);
  });

  it("preferences are per organization", async () => {
    const admin = await createUser();
    const a = await createOrg(admin);
    const b = await createOrg(admin);
    await patch(url(a.id), { support_team_access: true, sso_admin_bypass: false }, { token: admin.accessToken });
    expect((await get(url(b.id), { token: admin.accessToken })).body).toEqual(DEFAULTS);
  });

  it("any member may read them", async () => {
    const { admin, org } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    await patch(url(org.id), { support_team_access: true }, { token: admin.accessToken });
    const res = await get(url(org.id), { token: member.accessToken });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ support_team_access: true, sso_admin_bypass: true });
  });
});

describe("errors", () => {
  it.each([
    ["a string", { support_team_access: "yes" }, ["support_team_access"]],
    ["a number", { sso_admin_bypass: 1 }, ["sso_admin_bypass"]],
    ["null", { sso_admin_bypass: null }, ["sso_admin_bypass"]],
    ["both wrong", { support_team_access: "true", sso_admin_bypass: 0 }, ["support_team_access", "sso_admin_bypass"]],
  ])("wrong types (%s) → 400 naming every field", async (_label, body, paths) => {
    const { admin, org } = await adminWithOrg();
    const res = await patch(url(org.id), body, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(new Set(errorPaths(res))).toEqual(new Set(paths));
    expect((await get(url(org.id), { token: admin.accessToken })).body).toEqual(DEFAULTS);
  });

  it("a body that is not a JSON object → 400", async () => {
    const { admin, org } = await adminWithOrg();
    expectProblem(await patch(url(org.id), [true], { token: admin.accessToken }), 400, "validation_failed");
    expectProblem(
      await api("PATCH", url(org.id), { raw: "{", headers: { "Content-Type": "application/json" }, token: admin.accessToken }),
      400,
      "malformed_json",
    );
  });

  it("an inactive organization refuses PATCH with 409 but still answers GET", async () => {
    const { admin, org } = await adminWithOrg();
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token: admin.accessToken })).status).toBe(200);
    expectProblem(await patch(url(org.id), { support_team_access: true }, { token: admin.accessToken }), 409, "organization_inactive");
    expect((await get(url(org.id), { token: admin.accessToken })).body).toEqual(DEFAULTS);
  });

  it("unknown or malformed organization ids → 404", async () => {
    const user = await createUser();
    for (const id of ["org_nope", newId("organization")]) {
      expectProblem(await get(url(id), { token: user.accessToken }), 404, "not_found");
      expectProblem(await patch(url(id), { support_team_access: true }, { token: user.accessToken }), 404, "not_found");
    }
  });
});

describe("security", () => {
  it("a user-role member cannot PATCH: 403 forbidden", async () => {
    const { admin, org } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    expectProblem(await patch(url(org.id), { support_team_access: true }, { token: member.accessToken }), 403, "forbidden");
    expect((await get(url(org.id), { token: admin.accessToken })).body).toEqual(DEFAULTS);
  });

  it("a non-member gets 404 on GET and PATCH", async () => {
    const { admin, org } = await adminWithOrg();
    const stranger = await createUser();
    expectProblem(await get(url(org.id), { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await patch(url(org.id), { sso_admin_bypass: false }, { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await patch(url(org.id), { sso_admin_bypass: "x" }, { token: stranger.accessToken }), 404, "not_found");
    expect((await get(url(org.id), { token: admin.accessToken })).body).toEqual(DEFAULTS);
  });

  it("PAT scopes: organization:read may GET, PATCH needs organization:write", async () => {
    const { admin, org } = await adminWithOrg();
    const read = await createPat(admin, ["organization:read"]);
    const memberRead = await createPat(admin, ["organization_member:read"]);
    const write = await createPat(admin, ["organization:write"]);
    expect((await get(url(org.id), { token: read.token })).status).toBe(200);
    expectProblem(await get(url(org.id), { token: memberRead.token }), 403, "insufficient_scope");
    expectProblem(await patch(url(org.id), { support_team_access: true }, { token: read.token }), 403, "insufficient_scope");
    const ok = await patch(url(org.id), { support_team_access: true }, { token: write.token });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.support_team_access).toBe(true);
  });

  it("without a credential → 401", async () => {
    const { org } = await adminWithOrg();
    expectProblem(await get(url(org.id)), 401, "unauthenticated");
    expectProblem(await patch(url(org.id), { support_team_access: true }), 401, "unauthenticated");
  });
});
