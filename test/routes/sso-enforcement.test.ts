import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { del, get, patch, post, type ApiResponse } from "../helpers/client";
import { addMemberDirect, createOrg, createUser, PASSWORD, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import { claimDomain, domainPath, seedIdpConfig, uniqueDomain, verifiedDomain } from "./domains-helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

const discoverPath = (email: string) => `/v1/sso/discover?email=${encodeURIComponent(email)}`;
const loginUrl = (configId: string) => `http://api.test/v1/sso/saml/${configId}/login`;
const login = (email: string, password = PASSWORD) => post("/v1/auth/login", { email, password });

/** What a refused caller can observe of a request, timing aside (as in attacks test 5). */
const observed = (res: ApiResponse) => ({
  status: res.status,
  code: res.body?.code,
  detail: res.body?.detail,
  queries: res.cost.queries,
  rowsRead: res.cost.rowsRead,
  kvReads: res.cost.kvReads,
  kvWrites: res.cost.kvWrites,
});

const sessionCount = async (userId: string) =>
  (await env.DB.prepare("select count(*) as n from sessions where user_id = ?").bind(userId).first<{ n: number }>())!.n;

/** An organization whose verified domain enforces SSO through an IdP config; its admin's address is outside the domain. */
async function enforcedOrg(opts: { config?: "domain" | "default" | "none" } = {}) {
  const admin = await createUser();
  const org = await createOrg(admin);
  const domain = uniqueDomain("corp");
  let configId: string | null = null;
  if (opts.config !== "none") configId = await seedIdpConfig(org.id, { isDefault: opts.config === "default" });
  const d = await verifiedDomain(admin.accessToken, org.id, domain, {
    sso_enforcement: "required",
    ...(opts.config === "domain" || opts.config === undefined ? { identity_provider_config_id: configId } : {}),
  });
  return { admin, org, domain, d, configId, token: admin.accessToken };
}

describe("happy", () => {
  it("discover: an address in no verified domain → no SSO, optional", async () => {
    const res = await get(discoverPath(`ada@${uniqueDomain()}`));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ sso: false, enforcement: "optional" });
    expect(res.cost.queries).toBe(1);
  });

  it("discover: a claimed but unverified domain says nothing", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const d = await claimDomain(admin.accessToken, org.id);
    await seedIdpConfig(org.id, { isDefault: true });
    expect((await get(discoverPath(`ada@${d.domain}`))).body).toEqual({ sso: false, enforcement: "optional" });
  });

  it("discover: the domain's own config, else the organization's default, else no login URL", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const d = await verifiedDomain(admin.accessToken, org.id);
    const email = `Ada@${d.domain.toUpperCase()}`;
    expect((await get(discoverPath(email))).body).toEqual({ sso: false, enforcement: "optional", organization_id: org.id });
    const fallback = await seedIdpConfig(org.id, { isDefault: true });
    expect((await get(discoverPath(email))).body).toEqual({ sso: true, enforcement: "optional", organization_id: org.id, login_url: loginUrl(fallback) });
    const own = await seedIdpConfig(org.id);
    await patch(domainPath(org.id, d.id), { identity_provider_config_id: own, sso_enforcement: "required" }, { token: admin.accessToken });
    const res = await get(discoverPath(email));
    expect(res.body).toEqual({ sso: true, enforcement: "required", organization_id: org.id, login_url: loginUrl(own) });
    expect(res.cost.queries).toBe(1);
  });

  it("enforcement optional: everyone signs in with a password", async () => {
    const { org, domain, token, d } = await enforcedOrg();
    await patch(domainPath(org.id, d.id), { sso_enforcement: "optional" }, { token });
    const member = await createUser({ email: `ada.${unique("")}@${domain}` });
    await addMemberDirect(org.id, member, "user");
    expect((await login(member.email)).status).toBe(200);
  });

  it("enforcement required: a member's correct password is refused with 403 sso_required and the login URL; no session opens", async () => {
    const { org, domain, configId } = await enforcedOrg();
    const member = await createUser({ email: `ada.${unique("")}@${domain}` });
    await addMemberDirect(org.id, member, "user");
    const sessions = await sessionCount(member.id);
    const res = await login(member.email);
    const body = expectProblem(res, 403, "sso_required");
    expect(body.login_url).toBe(loginUrl(configId!));
    expect(res.body.access_token).toBeUndefined();
    expect(await sessionCount(member.id)).toBe(sessions);
    // Any address at the domain, member or not: a signup that joined nothing is refused too.
    const stranger = await createUser({ email: `eve.${unique("")}@${domain.toUpperCase()}` });
    expectProblem(await login(stranger.email), 403, "sso_required");
  });

  it("the login URL comes from the organization's default config when the domain names none; null without any", async () => {
    const withDefault = await enforcedOrg({ config: "default" });
    const a = await createUser({ email: `ada.${unique("")}@${withDefault.domain}` });
    expect(expectProblem(await login(a.email), 403, "sso_required").login_url).toBe(loginUrl(withDefault.configId!));
    const bare = await enforcedOrg({ config: "none" });
    const b = await createUser({ email: `ada.${unique("")}@${bare.domain}` });
    expect(expectProblem(await login(b.email), 403, "sso_required").login_url).toBeNull();
  });

  it("the organization's admins bypass enforcement while sso_admin_bypass is on (the default), and not once it is off", async () => {
    const { org, domain, token } = await enforcedOrg();
    const admin = await createUser({ email: `it.${unique("")}@${domain}` });
    await addMemberDirect(org.id, admin, "admin");
    const ok = await login(admin.email);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.access_token).toEqual(expect.any(String));
    expect((await get(`/v1/organizations/${org.id}/preferences`, { token })).body.sso_admin_bypass).toBe(true);

    expect((await patch(`/v1/organizations/${org.id}/preferences`, { sso_admin_bypass: false }, { token })).status).toBe(200);
    const sessions = await sessionCount(admin.id);
    expectProblem(await login(admin.email), 403, "sso_required");
    expect(await sessionCount(admin.id)).toBe(sessions);

    expect((await patch(`/v1/organizations/${org.id}/preferences`, { sso_admin_bypass: true }, { token })).status).toBe(200);
    expect((await login(admin.email)).status).toBe(200);
  });

  it("the bypass follows the permission: a custom role holding sso:write bypasses, one without does not", async () => {
    const { org, domain, token } = await enforcedOrg();
    const mkRole = async (permissions: string[]) => {
      const res = await post(`/v1/organizations/${org.id}/roles`, { name: unique("r").toLowerCase().slice(0, 30), permissions }, { token });
      expect(res.status, res.text).toBe(201);
      return res.body.name as string;
    };
    const ssoAdmin = await createUser({ email: `sso.${unique("")}@${domain}` });
    await addMemberDirect(org.id, ssoAdmin, await mkRole(["sso:read", "sso:write"]));
    expect((await login(ssoAdmin.email)).status).toBe(200);
    const reader = await createUser({ email: `read.${unique("")}@${domain}` });
    await addMemberDirect(org.id, reader, await mkRole(["sso:read", "members:write"]));
    expectProblem(await login(reader.email), 403, "sso_required");
  });

  it("an admin of another organization gets no bypass for this domain", async () => {
    const { domain } = await enforcedOrg();
    const elsewhere = await createUser({ email: `boss.${unique("")}@${domain}` });
    await createOrg(elsewhere);
    expectProblem(await login(elsewhere.email), 403, "sso_required");
  });

  it("deleting the domain lifts enforcement at once", async () => {
    const { org, domain, d, token } = await enforcedOrg();
    const member = await createUser({ email: `ada.${unique("")}@${domain}` });
    expectProblem(await login(member.email), 403, "sso_required");
    expect((await del(domainPath(org.id, d.id), { token })).status).toBe(204);
    expect((await login(member.email)).status).toBe(200);
  });
});

describe("errors", () => {
  it.each([
    ["missing", "/v1/sso/discover"],
    ["empty", "/v1/sso/discover?email="],
    ["not an address", "/v1/sso/discover?email=not-an-email"],
    ["a domain only", "/v1/sso/discover?email=acme.test"],
  ])("discover with the email %s: 400", async (_, path) => {
    const res = await get(path);
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["email"]);
  });
});

describe("security", () => {
  it("in an enforced domain, a wrong password is the usual 401, identical for a known and an unknown address (Server-Timing included)", async () => {
    const { org, domain } = await enforcedOrg();
    const member = await createUser({ email: `ada.${unique("")}@${domain}` });
    await addMemberDirect(org.id, member, "user");
    const admin = await createUser({ email: `it.${unique("")}@${domain}` });
    await addMemberDirect(org.id, admin, "admin");
    const wrong = "wrong password entirely";
    const known = await login(member.email, wrong);
    expectProblem(known, 401, "invalid_credentials");
    const knownAdmin = await login(admin.email, wrong);
    const unknown = await login(`nobody.${unique("")}@${domain}`, wrong);
    // An address sorting after every account, in the same enforced domain.
    const last = await login(`zzzz${unique("z")}@${domain}`, wrong);
    expect(observed(knownAdmin)).toEqual(observed(known));
    expect(observed(unknown)).toEqual(observed(known));
    expect(observed(last)).toEqual(observed(known));
    expect(known.cost.queries).toBe(1);
  });

  it("the enforcement refusal is decided only after the password: no 403 leaks which addresses have accounts", async () => {
    const { domain } = await enforcedOrg();
    const res = await login(`nobody.${unique("")}@${domain}`, PASSWORD);
    expectProblem(res, 401, "invalid_credentials");
  });

  it("outside any verified domain, known and unknown addresses still look the same", async () => {
    const user = await createUser();
    const known = await login(user.email, "wrong password entirely");
    const unknown = await login(`nobody.${unique("")}@example.com`, "wrong password entirely");
    expect(observed(unknown)).toEqual(observed(known));
  });

  it("discover reveals nothing about accounts: a known and an unknown address of a domain read the same", async () => {
    const { domain } = await enforcedOrg();
    const member = await createUser({ email: `ada.${unique("")}@${domain}` });
    const a = await get(discoverPath(member.email));
    const b = await get(discoverPath(`nobody.${unique("")}@${domain}`));
    expect(a.body).toEqual(b.body);
    expect(a.cost).toEqual(b.cost);
  });
});
