import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { get } from "../helpers/client";
import { addMemberDirect, createPat, createUser, createVerifiedUser, unique } from "../helpers/factories";
import {
  accountByEmail,
  memberRow,
  mintScimToken,
  orgCounters,
  scim,
  scimDomain,
  scimSetup,
  scimUserRow,
  seedScimConfig,
  seedScimUsers,
  type ScimSetup,
} from "../helpers/scim";
import {
  ENTERPRISE,
  entraAddManagerAndDepartment,
  entraAddWorkEmail,
  entraCreateUser,
  entraPatchEmailAndName,
  entraPathless,
  entraUserNameFilter,
  PATCH_OP,
} from "../fixtures/scim/entra";
import { oktaCreateUser, oktaPasswordChange, oktaPutUser } from "../fixtures/scim/okta";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const patchOp = (...Operations: unknown[]) => ({ schemas: [PATCH_OP], Operations });
const filterPath = (f: string, extra = "") => `/Users?filter=${encodeURIComponent(f)}${extra}`;

function expectScimError(res: { status: number; body: any; headers: Headers }, status: number, scimType?: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/scim+json");
  expect(res.body.schemas).toEqual([ERROR]);
  expect(res.body.status).toBe(String(status));
  if (scimType) expect(res.body.scimType).toBe(scimType);
  else expect(res.body.scimType).toBeUndefined();
}

async function createScimUser(s: ScimSetup, email = `${unique("p").toLowerCase()}@${s.domain}`, body: Record<string, unknown> = {}) {
  const res = await scim("POST", "/Users", s.token, { ...oktaCreateUser(email, { externalId: unique("ext") }), ...body });
  expect(res.status, res.text).toBe(201);
  return { email, user: res.body, res };
}

describe("happy", () => {
  it("POST (Okta) creates the account, the membership and the SCIM user; password and groups ignored", async () => {
    const s = await scimSetup();
    const before = await orgCounters(s.org.id);
    const email = `Barbara.${unique("j")}@${s.domain}`;
    const res = await scim("POST", "/Users", s.token, oktaCreateUser(email, { givenName: "Barbara", familyName: "Jensen" }));
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get("content-type")).toContain("application/scim+json");
    expect(res.headers.get("etag")).toBe('W/"1"');
    expect(res.headers.get("location")).toBe(
      `http://127.0.0.1:8787/scim/v2/Users/${res.body.id}`.replace("http://127.0.0.1:8787", new URL(res.body.meta.location).origin),
    );
    const u = res.body;
    expect(u.id).toMatch(/^scu_/);
    expect(u.schemas).toEqual([USER]);
    expect(u.userName).toBe(email);
    expect(u.name).toEqual({ givenName: "Barbara", familyName: "Jensen" });
    expect(u.emails).toEqual([{ primary: true, value: email, type: "work" }]);
    expect(u.active).toBe(true);
    expect(u.locale).toBe("en-US");
    expect(u.password).toBeUndefined();
    expect(u.groups).toBeUndefined();
    expect(u.meta).toMatchObject({ resourceType: "User", version: 'W/"1"' });
    expect(u.meta.created).toMatch(ISO);
    expect(u.meta.location).toMatch(new RegExp(`/scim/v2/Users/${u.id}$`));

    const account = await accountByEmail(email);
    expect(account).toMatchObject({ email: email.toLowerCase(), display_name: "Barbara Jensen", password_hash: null });
    expect(account!.email_verified_at).not.toBeNull(); // a verified domain of the organization
    expect(await memberRow(s.org.id, account!.id)).toMatchObject({ role: "user", type: "user", scim_config_id: s.configId, display_name: "Barbara Jensen" });
    const after = await orgCounters(s.org.id);
    expect(after!.member_count).toBe(before!.member_count + 1);
    expect(after!.user_member_count).toBe(before!.user_member_count + 1);
    expect(JSON.stringify(await scimUserRow(u.id))).not.toContain("1mz050nq");
  });

  it("POST outside a verified domain creates an unverified account", async () => {
    const s = await scimSetup({ verifiedDomain: false });
    const email = `${unique("o").toLowerCase()}@${scimDomain("elsewhere")}`;
    await createScimUser(s, email);
    expect((await accountByEmail(email))!.email_verified_at).toBeNull();
  });

  it("POST links an existing verified account instead of duplicating it; a member by invitation becomes SCIM-managed with its role", async () => {
    const s = await scimSetup();
    const person = await createVerifiedUser({ email: `${unique("ex").toLowerCase()}@${s.domain}` });
    await addMemberDirect(s.org.id, person, "admin");
    const before = await orgCounters(s.org.id);
    const { user } = await createScimUser(s, person.email.toUpperCase());
    const row = await scimUserRow(user.id);
    expect(row!.user_id).toBe(person.id);
    expect(await memberRow(s.org.id, person.id)).toMatchObject({ role: "admin", scim_config_id: s.configId });
    expect(await orgCounters(s.org.id)).toEqual(before);
    const n = await env.DB.prepare("select count(*) as n from users where email = ?").bind(person.email).first<{ n: number }>();
    expect(n!.n).toBe(1);
  });

  it("POST (Entra) links by the primary email when userName is not an email, and keeps the enterprise extension", async () => {
    const s = await scimSetup();
    const email = `${unique("en").toLowerCase()}@${s.domain}`;
    const userName = `Test_User_${unique("")}`;
    const res = await scim("POST", "/Users", s.token, entraCreateUser(userName, email));
    expect(res.status, res.text).toBe(201);
    expect(res.body.schemas).toEqual([USER, ENTERPRISE]);
    expect(res.body.userName).toBe(userName);
    expect(res.body[ENTERPRISE]).toEqual({ department: "Engineering", employeeNumber: "100009" });
    expect(res.body.roles).toBeUndefined(); // an empty list is no value
    expect((await scimUserRow(res.body.id))!.user_id).toBe((await accountByEmail(email))!.id);
    // Entra looks users up by userName before creating them.
    const found = await scim("GET", entraUserNameFilter(userName.toUpperCase()), s.token);
    expect(found.status).toBe(200);
    expect(found.body).toMatchObject({ schemas: [LIST], totalResults: 1, startIndex: 1, itemsPerPage: 1 });
    expect(found.body.Resources[0].id).toBe(res.body.id);
  });

  it("GET one: ETag, If-None-Match 304, attributes and excludedAttributes", async () => {
    const s = await scimSetup();
    const { user } = await createScimUser(s);
    const res = await scim("GET", `/Users/${user.id}`, s.token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(user);
    expect(res.headers.get("etag")).toBe('W/"1"');
    expect(res.cost.queries).toBe(1);
    expect((await scim("GET", `/Users/${user.id}`, s.token, undefined, { "If-None-Match": 'W/"1"' })).status).toBe(304);
    const only = await scim("GET", `/Users/${user.id}?attributes=userName,name.familyName`, s.token);
    expect(only.body).toEqual({ schemas: [USER], id: user.id, userName: user.userName, name: { familyName: "User" } });
    const without = await scim("GET", `/Users/${user.id}?excludedAttributes=emails,meta,name.givenName`, s.token);
    expect(without.body.emails).toBeUndefined();
    expect(without.body.meta).toBeUndefined();
    expect(without.body.name).toEqual({ familyName: "User" });
    expect(without.body.userName).toBe(user.userName);
  });

  it("GET list: filters on userName (any case), externalId, emails, name, active, displayName, meta dates", async () => {
    const s = await scimSetup();
    const a = await createScimUser(s, undefined, { name: { givenName: "Ann", familyName: "Zeta" }, displayName: "Ann Zeta" });
    const b = await createScimUser(s, undefined, { name: { givenName: "Bob", familyName: "Young" }, displayName: "Bob Young" });
    await scim("PATCH", `/Users/${b.user.id}`, s.token, patchOp({ op: "replace", path: "active", value: false }));
    const ids = async (f: string) => {
      const res = await scim("GET", filterPath(f), s.token);
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      return res.body.Resources.map((r: any) => r.id).sort();
    };
    expect(await ids(`userName eq "${a.email.toUpperCase()}"`)).toEqual([a.user.id]);
    expect(await ids(`externalId eq "${b.user.externalId}"`)).toEqual([b.user.id]);
    expect(await ids(`emails.value eq "${a.email}"`)).toEqual([a.user.id]);
    expect(await ids(`emails[type eq "work" and value eq "${b.email}"]`)).toEqual([b.user.id]);
    expect(await ids(`emails[type eq "work"].value eq "${b.email}"`)).toEqual([b.user.id]);
    expect(await ids(`name.familyName eq "zeta"`)).toEqual([a.user.id]);
    expect(await ids(`name.givenName sw "bo"`)).toEqual([b.user.id]);
    expect(await ids(`active eq false`)).toEqual([b.user.id]);
    expect(await ids(`displayName co "ann"`)).toEqual([a.user.id]);
    expect(await ids(`id eq "${a.user.id}" or id eq "${b.user.id}"`)).toEqual([a.user.id, b.user.id].sort());
    expect(await ids(`meta.created ge "2000-01-01T00:00:00Z" and not (active eq false)`)).toEqual([a.user.id]);
    expect(await ids(`meta.lastModified gt "2999-01-01T00:00:00Z"`)).toEqual([]);
    expectScimError(await scim("GET", filterPath(`userName eq`), s.token), 400, "invalidFilter");
    expectScimError(await scim("GET", filterPath(`nickname eq "x"`), s.token), 400, "invalidFilter");
    expectScimError(await scim("GET", filterPath(`password eq "x"`), s.token), 400, "invalidFilter");
  });

  it("PUT (Okta) replaces the user: version 2, absent attributes cleared, If-Match honoured", async () => {
    const s = await scimSetup();
    const { user, email } = await createScimUser(s, undefined, { title: "Engineer" });
    const res = await scim("PUT", `/Users/${user.id}`, s.token, oktaPutUser(user.id, email, { givenName: "Another" }), { "If-Match": 'W/"1"' });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("etag")).toBe('W/"2"');
    expect(res.body.meta.version).toBe('W/"2"');
    expect(res.body.name).toEqual({ givenName: "Another", familyName: "User" });
    expect(res.body.title).toBeUndefined();
    expect(res.body.id).toBe(user.id);
    expect((await scim("GET", `/Users/${user.id}`, s.token)).body).toEqual(res.body);
    // The same body again changes nothing and keeps the version.
    const again = await scim("PUT", `/Users/${user.id}`, s.token, oktaPutUser(user.id, email, { givenName: "Another" }));
    expect(again.body.meta.version).toBe('W/"2"');
    expectScimError(await scim("PUT", `/Users/${user.id}`, s.token, oktaPutUser(user.id, email, { givenName: "Late" }), { "If-Match": 'W/"1"' }), 412);
  });

  it("PATCH as Entra ID sends it: filtered email path, name, manager and department, path-less values, string booleans", async () => {
    const s = await scimSetup();
    const email = `${unique("pe").toLowerCase()}@${s.domain}`;
    const created = await scim("POST", "/Users", s.token, entraCreateUser(`u_${unique("")}`, email));
    const id = created.body.id;
    const newEmail = `${unique("new").toLowerCase()}@${s.domain}`;
    let res = await scim("PATCH", `/Users/${id}`, s.token, entraPatchEmailAndName(newEmail, "Updated"));
    expect(res.status, res.text).toBe(200);
    expect(res.body.emails).toEqual([{ primary: true, type: "work", value: newEmail }]);
    expect(res.body.name.familyName).toBe("Updated");
    expect(res.body.meta.version).toBe('W/"2"');
    res = await scim("PATCH", `/Users/${id}`, s.token, entraAddManagerAndDepartment("2819c223-7f76-453a-919d-413861904646", "Sales"));
    expect(res.status, res.text).toBe(200);
    expect(res.body[ENTERPRISE]).toEqual({ department: "Sales", employeeNumber: "100009", manager: { value: "2819c223-7f76-453a-919d-413861904646" } });
    res = await scim("PATCH", `/Users/${id}`, s.token, entraPathless("Path Less", "Boss"));
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ displayName: "Path Less", title: "Boss", active: true, name: { givenName: "Pathless" } });
    res = await scim(
      "PATCH",
      `/Users/${id}`,
      s.token,
      patchOp({ op: "Remove", path: `${ENTERPRISE}:manager` }, { op: "remove", path: 'emails[type eq "work"]' }),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body[ENTERPRISE].manager).toBeUndefined();
    expect(res.body.emails).toBeUndefined();
    res = await scim("PATCH", `/Users/${id}`, s.token, entraAddWorkEmail(newEmail));
    expect(res.body.emails).toEqual([{ type: "work", value: newEmail }]);
    res = await scim(
      "PATCH",
      `/Users/${id}`,
      s.token,
      patchOp({ op: "add", path: "emails", value: [{ value: `home-${newEmail}`, type: "home", primary: "True" }] }),
    );
    expect(res.body.emails).toEqual([
      { type: "work", value: newEmail },
      { value: `home-${newEmail}`, type: "home", primary: true },
    ]);
    res = await scim(
      "PATCH",
      `/Users/${id}`,
      s.token,
      patchOp({ op: "replace", path: "urn:ietf:params:scim:schemas:core:2.0:User:userName", value: `Renamed_${unique("")}` }),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body.userName).toMatch(/^Renamed_/);
    // Okta's password push is accepted and ignored.
    const pw = await scim("PATCH", `/Users/${id}`, s.token, oktaPasswordChange);
    expect(pw.status).toBe(200);
    expect(pw.body.meta.version).toBe(res.body.meta.version);
  });

  it("DELETE removes the SCIM user and the membership; the account stays", async () => {
    const s = await scimSetup();
    const { user, email } = await createScimUser(s);
    const account = await accountByEmail(email);
    const before = await orgCounters(s.org.id);
    const res = await scim("DELETE", `/Users/${user.id}`, s.token);
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expect(await scimUserRow(user.id)).toBeNull();
    expect(await memberRow(s.org.id, account!.id)).toBeNull();
    expect((await orgCounters(s.org.id))!.user_member_count).toBe(before!.user_member_count - 1);
    expect(await accountByEmail(email)).not.toBeNull();
    expectScimError(await scim("GET", `/Users/${user.id}`, s.token), 404);
    expectScimError(await scim("DELETE", `/Users/${user.id}`, s.token), 404);
  });

  it("pages through 1,000 users with startIndex/count to the end, each page one round trip", async () => {
    const s = await scimSetup();
    const ids = await seedScimUsers(s, 1000);
    const seen: string[] = [];
    const costs: { start: number; rows: number }[] = [];
    for (let start = 1; ; start += 50) {
      const res = await scim("GET", `/Users?startIndex=${start}&count=50`, s.token);
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      costs.push({ start, rows: res.cost.rowsRead });
      expect(res.body.startIndex).toBe(start);
      expect(res.body.totalResults).toBeGreaterThanOrEqual(Math.min(1000, start - 1 + res.body.Resources.length + (start + 50 <= 1000 ? 1 : 0)));
      if (res.body.Resources.length === 0) {
        expect(res.body.totalResults).toBe(1000);
        break;
      }
      seen.push(...res.body.Resources.map((r: any) => r.id));
      if (start + 50 > 1000) expect(res.body.totalResults).toBe(1000);
    }
    expect(seen).toEqual(ids);
    // The first page reads O(count) rows although the directory holds 1,000 users.
    expect(costs[0]!.rows).toBeLessThanOrEqual(200);
    // A deep page pays for its offset (positional paging): about 2·(startIndex + count) rows, the
    // page's walk and the capped count's, never more.
    for (const c of costs) expect(c.rows).toBeLessThanOrEqual(2 * (c.start - 1 + 50) + 60);
    console.log(`scim users paging (count=50, 1000 users): rows_read by startIndex ${costs.map((c) => `${c.start}:${c.rows}`).join(" ")}`);
    const one = await scim("GET", `/Users?filter=${encodeURIComponent(`userName eq "${(await scimUserRow(ids[500]!))!.user_name}"`)}`, s.token);
    expect(one.body.totalResults).toBe(1);
    expect(one.cost.queries).toBe(1);
    expect(one.cost.rowsRead).toBeLessThanOrEqual(5);
    console.log(`scim users userName eq at 1000 users: rows_read=${one.cost.rowsRead}`);
  });
});

describe("errors", () => {
  it("POST: 409 uniqueness for a taken userName (any case) and for an account already linked", async () => {
    const s = await scimSetup();
    const { email } = await createScimUser(s);
    expectScimError(await scim("POST", "/Users", s.token, oktaCreateUser(email.toUpperCase())), 409, "uniqueness");
    // Another userName whose primary email is the same account.
    expectScimError(await scim("POST", "/Users", s.token, entraCreateUser(`other_${unique("")}`, email)), 409, "uniqueness");
  });

  it("POST: 409 for an existing account with a password whose address was never verified", async () => {
    const s = await scimSetup();
    const squatter = await createUser({ email: `${unique("sq").toLowerCase()}@${s.domain}` });
    const res = await scim("POST", "/Users", s.token, oktaCreateUser(squatter.email));
    expectScimError(res, 409);
    expect(await memberRow(s.org.id, squatter.id)).toBeNull();
  });

  it("POST: a full organization → 409 without scimType, and nothing is created", async () => {
    const s = await scimSetup();
    await env.DB.prepare("update organizations set pending_invitation_count = 1000 where id = ?").bind(s.org.id).run();
    const email = `${unique("full").toLowerCase()}@${s.domain}`;
    const res = await scim("POST", "/Users", s.token, oktaCreateUser(email));
    expectScimError(res, 409);
    expect(res.body.detail).toMatch(/seats/);
    expect(await accountByEmail(email)).toBeNull();
    const n = await env.DB.prepare("select count(*) as n from scim_users where config_id = ?").bind(s.configId).first<{ n: number }>();
    expect(n!.n).toBe(0);
    // Inactive users take no seat.
    expect((await scim("POST", "/Users", s.token, { ...oktaCreateUser(email), active: false })).status).toBe(201);
  });

  it("POST: invalid bodies are 400 invalidValue, never 500", async () => {
    const s = await scimSetup();
    expectScimError(await scim("POST", "/Users", s.token, { schemas: [USER] }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: "not-an-email" }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: 42 }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: `${unique("a")}@${s.domain}`, active: "maybe" }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: `${unique("a")}@${s.domain}`, emails: 5 }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: `${unique("a")}@${s.domain}`, name: [1] }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, { userName: `${unique("a")}@${s.domain}`, title: "x".repeat(2000) }), 400, "invalidValue");
    expectScimError(await scim("POST", "/Users", s.token, [1, 2]), 400, "invalidValue");
    const raw = await get("/scim/v2/Users", { token: s.token });
    expect(raw.status).toBe(200);
  });

  it("PATCH: invalidPath, noTarget, mutability, invalidSyntax, invalidValue", async () => {
    const s = await scimSetup();
    const { user } = await createScimUser(s);
    const p = (...ops: unknown[]) => scim("PATCH", `/Users/${user.id}`, s.token, patchOp(...ops));
    expectScimError(await p({ op: "replace", path: "nickname.first", value: "x" }), 400, "invalidPath");
    expectScimError(await p({ op: "replace", path: "favouriteColour", value: "x" }), 400, "invalidPath");
    expectScimError(await p({ op: "replace", path: "urn:example:params:scim:Custom:x", value: "x" }), 400, "invalidPath");
    expectScimError(await p({ op: "replace", path: 'emails[type eq "work"', value: "x" }), 400, "invalidPath");
    expectScimError(await p({ op: "replace", path: 'title[value eq "x"]', value: "x" }), 400, "invalidPath");
    expectScimError(await p({ op: "remove" }), 400, "noTarget");
    expectScimError(await p({ op: "remove", path: 'emails[type eq "home"]' }), 400, "noTarget");
    expectScimError(await p({ op: "replace", path: 'emails[type eq "home"].value', value: "a@b.test" }), 400, "noTarget");
    expectScimError(await p({ op: "replace", path: "id", value: "scu_other" }), 400, "mutability");
    expectScimError(await p({ op: "replace", value: { id: "scu_other" } }), 400, "mutability");
    expectScimError(await p({ op: "replace", path: "meta.created", value: "2020-01-01T00:00:00Z" }), 400, "mutability");
    expectScimError(await p({ op: "remove", path: "userName" }), 400, "mutability");
    expectScimError(await p({ op: "move", path: "title", value: "x" }), 400, "invalidSyntax");
    expectScimError(await p({ op: "replace", path: "active", value: "perhaps" }), 400, "invalidValue");
    expectScimError(await p({ op: "replace", value: "not an object" }), 400, "invalidValue");
    expectScimError(await scim("PATCH", `/Users/${user.id}`, s.token, { schemas: [PATCH_OP] }), 400, "invalidSyntax");
    expectScimError(await scim("PATCH", `/Users/${user.id}`, s.token, { Operations: "x" }), 400, "invalidSyntax");
    expectScimError(
      await scim("PATCH", `/Users/${user.id}`, s.token, patchOp(...Array.from({ length: 101 }, () => ({ op: "add", path: "title", value: "x" })))),
      400,
      "tooMany",
    );
    // Nothing of the above changed the user.
    expect((await scim("GET", `/Users/${user.id}`, s.token)).body.meta.version).toBe('W/"1"');
  });

  it("PATCH and PUT: renaming onto a taken userName → 409 uniqueness", async () => {
    const s = await scimSetup();
    const a = await createScimUser(s);
    const b = await createScimUser(s);
    expectScimError(
      await scim("PATCH", `/Users/${b.user.id}`, s.token, patchOp({ op: "replace", path: "userName", value: a.email.toUpperCase() })),
      409,
      "uniqueness",
    );
  });

  it("If-Match mismatch → 412 on PUT, PATCH and DELETE; '*' and the current version pass", async () => {
    const s = await scimSetup();
    const { user, email } = await createScimUser(s);
    const stale = { "If-Match": 'W/"7"' };
    expectScimError(await scim("PATCH", `/Users/${user.id}`, s.token, patchOp({ op: "replace", path: "title", value: "x" }), stale), 412);
    expectScimError(await scim("PUT", `/Users/${user.id}`, s.token, oktaPutUser(user.id, email), stale), 412);
    expectScimError(await scim("DELETE", `/Users/${user.id}`, s.token, undefined, stale), 412);
    const ok = await scim("PATCH", `/Users/${user.id}`, s.token, patchOp({ op: "replace", path: "title", value: "x" }), { "If-Match": "*" });
    expect(ok.status).toBe(200);
    expect((await scim("DELETE", `/Users/${user.id}`, s.token, undefined, { "If-Match": ok.headers.get("etag")! })).status).toBe(204);
  });

  it("concurrent PATCHes on one user: each lands once, versions strictly increase", async () => {
    const s = await scimSetup();
    const { user } = await createScimUser(s);
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        scim("PATCH", `/Users/${user.id}`, s.token, patchOp({ op: "add", path: "phoneNumbers", value: [{ value: `+1-555-000${i}`, type: "work" }] })),
      ),
    );
    for (const r of results) expect([200, 409]).toContain(r.status);
    const final = await scim("GET", `/Users/${user.id}`, s.token);
    const ok = results.filter((r) => r.status === 200).length;
    expect(final.body.phoneNumbers).toHaveLength(ok);
    expect(final.body.meta.version).toBe(`W/"${1 + ok}"`);
  });

  it("unknown ids are 404 in the SCIM error schema", async () => {
    const s = await scimSetup();
    expectScimError(await scim("GET", "/Users/scu_nope", s.token), 404);
    expectScimError(await scim("PATCH", "/Users/'; drop table users; --", s.token, patchOp({ op: "replace", path: "title", value: "x" })), 404);
    expectScimError(await scim("PUT", "/Users/scu_nope", s.token, oktaCreateUser(`${unique("x")}@${s.domain}`)), 404);
  });
});

describe("security", () => {
  it("no token, /v1 credentials, a disabled config's token and a replaced token are refused", async () => {
    const s = await scimSetup();
    const { user } = await createScimUser(s);
    expectScimError(await scim("GET", "/Users", undefined), 401);
    expectScimError(await scim("GET", `/Users/${user.id}`, s.admin.accessToken), 401);
    const pat = await createPat(s.admin, ["organization:write"]);
    expectScimError(await scim("POST", "/Users", pat.token, oktaCreateUser(`${unique("x")}@${s.domain}`)), 401);
    // The SCIM token on /v1.
    expect((await get(`/v1/organizations/${s.org.id}`, { token: s.token })).status).toBe(401);
    const disabled = await seedScimConfig(s.org.id, { scimEnabled: false });
    expectScimError(await scim("GET", "/Users", disabled.token), 403);
    const fresh = await mintScimToken(s.configId);
    expectScimError(await scim("GET", `/Users/${user.id}`, s.token), 401);
    expect((await scim("GET", `/Users/${user.id}`, fresh)).status).toBe(200);
  });

  it("another config's token, even of the same organization, sees none of this config's users", async () => {
    const s = await scimSetup();
    const { user, email } = await createScimUser(s);
    const other = await seedScimConfig(s.org.id);
    expectScimError(await scim("GET", `/Users/${user.id}`, other.token), 404);
    const list = await scim("GET", "/Users", other.token);
    expect(list.body.totalResults).toBe(0);
    expect(list.body.Resources).toEqual([]);
    expect((await scim("GET", filterPath(`userName eq "${email}"`), other.token)).body.totalResults).toBe(0);
    expectScimError(await scim("PATCH", `/Users/${user.id}`, other.token, patchOp({ op: "replace", path: "active", value: false })), 404);
    expectScimError(await scim("PUT", `/Users/${user.id}`, other.token, oktaPutUser(user.id, email, { active: false })), 404);
    expectScimError(await scim("DELETE", `/Users/${user.id}`, other.token), 404);
    expect((await scimUserRow(user.id))!.active).toBe(1);
    // A refused read costs the same whatever the other directory holds.
    const a = await scim("GET", `/Users/${user.id}`, other.token);
    const b = await scim("GET", `/Users/scu_01J00000000000000000000000`, other.token);
    expect(a.cost.rowsRead).toBe(b.cost.rowsRead);
  });

  it("takeover guard: SCIM writes the account's own name and email only within a verified domain of its organization", async () => {
    // Organization 1 verified the domain: its directory is the source of truth for these accounts.
    const s1 = await scimSetup();
    const person = await createVerifiedUser({ email: `${unique("alice").toLowerCase()}@${s1.domain}`, displayName: "Alice Original" });
    const own = await createScimUser(s1, person.email, { displayName: "Alice Directory" });
    expect((await accountByEmail(person.email))!.display_name).toBe("Alice Directory");
    const renamed = `${unique("alice2").toLowerCase()}@${s1.domain}`;
    const put1 = await scim("PUT", `/Users/${own.user.id}`, s1.token, { ...oktaPutUser(own.user.id, renamed), displayName: "Alice Renamed" });
    expect(put1.status, put1.text).toBe(200);
    const account = (await env.DB.prepare("select * from users where id = ?").bind(person.id).first<Record<string, any>>())!;
    expect(account).toMatchObject({ email: renamed, display_name: "Alice Renamed" });

    // Organization 2 did not verify that domain: it links the same account but cannot change it.
    const s2 = await scimSetup({ verifiedDomain: false });
    const linked = await createScimUser(s2, renamed, { displayName: "Mallory's Alice" });
    expect((await scimUserRow(linked.user.id))!.user_id).toBe(person.id);
    const put2 = await scim("PUT", `/Users/${linked.user.id}`, s2.token, {
      ...oktaPutUser(linked.user.id, `attacker-${unique("")}@evil.test`, { givenName: "Mallory" }),
      displayName: "Mallory",
      password: "hunter2hunter2",
    });
    expect(put2.status, put2.text).toBe(200);
    expect(put2.body.displayName).toBe("Mallory");
    const after = (await env.DB.prepare("select * from users where id = ?").bind(person.id).first<Record<string, any>>())!;
    expect(after.email).toBe(renamed);
    expect(after.display_name).toBe("Alice Renamed");
    expect(after.password_hash).toBe(account.password_hash);
    // Organization 2's own copy shows what its directory says; organization 1's shows the account.
    expect((await memberRow(s2.org.id, person.id))!.display_name).toBe("Mallory");
    expect((await memberRow(s1.org.id, person.id))!.display_name).toBe("Alice Renamed");
    // A PATCH is held to the same rule.
    await scim("PATCH", `/Users/${linked.user.id}`, s2.token, patchOp({ op: "replace", path: "displayName", value: "Mallory 2" }));
    expect((await accountByEmail(renamed))!.display_name).toBe("Alice Renamed");
  });

  it("an email change onto an address another account uses, or outside the verified domains, stays on the SCIM record", async () => {
    const s = await scimSetup();
    const { user, email } = await createScimUser(s);
    const other = await createVerifiedUser({ email: `${unique("taken").toLowerCase()}@${s.domain}` });
    let res = await scim("PATCH", `/Users/${user.id}`, s.token, patchOp({ op: "replace", path: "userName", value: other.email }));
    expect(res.status, res.text).toBe(200);
    expect(await accountByEmail(email)).not.toBeNull();
    res = await scim("PATCH", `/Users/${user.id}`, s.token, patchOp({ op: "replace", path: "userName", value: `x-${unique("")}@gmail.com` }));
    expect(res.status).toBe(200);
    expect(await accountByEmail(email)).not.toBeNull();
  });

  it("every SCIM request is logged without its query string", async () => {
    const s = await scimSetup();
    const { email } = await createScimUser(s);
    await scim("GET", filterPath(`userName eq "${email}"`), s.token);
    const rows = await env.DB.prepare("select method, path, status, summary from scim_logs where config_id = ? order by id")
      .bind(s.configId)
      .all<Record<string, any>>();
    expect(rows.results.map((r) => [r.method, r.path, r.status])).toEqual([
      ["POST", "/scim/v2/Users", 201],
      ["GET", "/scim/v2/Users", 200],
    ]);
    expect(rows.results[0]!.summary).toContain("created user");
    expect(JSON.stringify(rows.results)).not.toContain("1mz050nq");
  });
});
