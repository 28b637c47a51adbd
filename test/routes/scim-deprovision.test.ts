import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { get } from "../helpers/client";
import { addMemberDirect, createPat, createVerifiedUser, unique } from "../helpers/factories";
import { memberRow, orgCounters, scim, scimSetup, scimUserRow, type ScimSetup } from "../helpers/scim";
import { entraDisable, entraEnable } from "../fixtures/scim/entra";
import { oktaCreateUser, oktaDeactivate, oktaPutUser, oktaReactivate } from "../fixtures/scim/okta";

/** A person with a live session and a PAT, provisioned by the organization's directory. */
async function provisioned(s: ScimSetup) {
  const person = await createVerifiedUser({ email: `${unique("emp").toLowerCase()}@${s.domain}` });
  const pat = await createPat(person, ["organization:read"]);
  const res = await scim("POST", "/Users", s.token, oktaCreateUser(person.email));
  expect(res.status, res.text).toBe(201);
  return { person, pat, scimId: res.body.id as string };
}

const orgPath = (s: ScimSetup) => `/v1/organizations/${s.org.id}`;

async function seedProjectGrant(orgId: string, memberId: string) {
  const projectId = newId("project");
  const now = Date.now();
  await env.DB.batch([
    env.DB.prepare("insert into projects (id, organization_id, name, name_key, private, created_at, updated_at) values (?, ?, 'p', 'p', 1, ?, ?)").bind(
      projectId,
      orgId,
      now,
      now,
    ),
    env.DB.prepare("insert into project_members (project_id, member_id, organization_id, granted_at) values (?, ?, ?, ?)").bind(
      projectId,
      memberId,
      orgId,
      now,
    ),
  ]);
  return projectId;
}

const grants = async (orgId: string, memberId: string) =>
  (await env.DB.prepare("select count(*) as n from project_members where organization_id = ? and member_id = ?").bind(orgId, memberId).first<{ n: number }>())!
    .n;

describe("happy", () => {
  it('PATCH active "False" (Entra) ends the session\'s and the PAT\'s access on the very next request; "True" restores it', async () => {
    const s = await scimSetup();
    const { person, pat, scimId } = await provisioned(s);
    await seedProjectGrant(s.org.id, person.id);
    expect((await get(orgPath(s), { token: person.accessToken })).status).toBe(200);
    expect((await get(orgPath(s), { token: pat.token })).status).toBe(200);
    const before = await orgCounters(s.org.id);

    const off = await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable);
    expect(off.status, off.text).toBe(200);
    expect(off.body.active).toBe(false);
    expect((await get(orgPath(s), { token: person.accessToken })).status).toBe(404);
    expect((await get(orgPath(s), { token: pat.token })).status).toBe(404);
    expect(await memberRow(s.org.id, person.id)).toBeNull();
    expect(await grants(s.org.id, person.id)).toBe(0);
    expect((await orgCounters(s.org.id))!.user_member_count).toBe(before!.user_member_count - 1);
    // The account itself still works; only this organization is gone.
    expect((await get("/v1/me", { token: person.accessToken })).status).toBe(200);
    // Deactivating again changes nothing.
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable)).body.meta.version).toBe(off.body.meta.version);
    expect((await orgCounters(s.org.id))!.user_member_count).toBe(before!.user_member_count - 1);

    const on = await scim("PATCH", `/Users/${scimId}`, s.token, entraEnable);
    expect(on.status, on.text).toBe(200);
    expect(on.body.active).toBe(true);
    expect((await get(orgPath(s), { token: person.accessToken })).status).toBe(200);
    expect(await memberRow(s.org.id, person.id)).toMatchObject({ role: "user", scim_config_id: s.configId });
    expect(await grants(s.org.id, person.id)).toBe(0); // grants do not come back
    expect(await orgCounters(s.org.id)).toEqual(before);
  });

  it("Okta: PATCH {active:false} without a path, PUT active false, and DELETE each end access at once", async () => {
    const s = await scimSetup();
    const a = await provisioned(s);
    expect((await scim("PATCH", `/Users/${a.scimId}`, s.token, oktaDeactivate)).status).toBe(200);
    expect((await get(orgPath(s), { token: a.person.accessToken })).status).toBe(404);
    expect((await scim("PATCH", `/Users/${a.scimId}`, s.token, oktaReactivate)).status).toBe(200);
    expect((await get(orgPath(s), { token: a.person.accessToken })).status).toBe(200);

    const b = await provisioned(s);
    const put = await scim("PUT", `/Users/${b.scimId}`, s.token, oktaPutUser(b.scimId, b.person.email, { active: false }));
    expect(put.status, put.text).toBe(200);
    expect((await get(orgPath(s), { token: b.pat.token })).status).toBe(404);

    const c = await provisioned(s);
    await seedProjectGrant(s.org.id, c.person.id);
    expect((await scim("DELETE", `/Users/${c.scimId}`, s.token)).status).toBe(204);
    expect((await get(orgPath(s), { token: c.person.accessToken })).status).toBe(404);
    expect(await grants(s.org.id, c.person.id)).toBe(0);
    expect(await scimUserRow(c.scimId)).toBeNull();
  });

  it("re-activation takes the role of the earliest-created mapped group; groups' counts follow a DELETE", async () => {
    const s = await scimSetup();
    const { person, scimId } = await provisioned(s);
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable)).status).toBe(200);
    const now = Date.now();
    const unmapped = newId("scimGroup", now - 3);
    const admins = newId("scimGroup", now - 2);
    const later = newId("scimGroup", now - 1);
    const group = (id: string, name: string, role: string | null) =>
      env.DB.prepare(
        "insert into scim_groups (id, config_id, organization_id, display_name, display_name_key, role, member_count, version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, 1, 1, ?, ?)",
      ).bind(id, s.configId, s.org.id, name, name.toLowerCase(), role, now, now);
    const member = (g: string) => env.DB.prepare("insert into scim_group_members (group_id, scim_user_id, added_at) values (?, ?, ?)").bind(g, scimId, now);
    await env.DB.batch([
      group(unmapped, `All ${unique("")}`, null),
      group(admins, `Admins ${unique("")}`, "admin"),
      group(later, `Users ${unique("")}`, "user"),
      member(unmapped),
      member(admins),
      member(later),
    ]);
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraEnable)).status).toBe(200);
    expect((await memberRow(s.org.id, person.id))!.role).toBe("admin");

    expect((await scim("DELETE", `/Users/${scimId}`, s.token)).status).toBe(204);
    const counts = await env.DB.prepare("select id, member_count, version from scim_groups where config_id = ? order by id")
      .bind(s.configId)
      .all<Record<string, number>>();
    expect(counts.results.map((g) => [g.member_count, g.version])).toEqual([
      [0, 2],
      [0, 2],
      [0, 2],
    ]);
  });
});

describe("security", () => {
  it("a deactivation only removes the membership this config manages; another config's user of the same account keeps theirs", async () => {
    const s = await scimSetup();
    const { person, scimId } = await provisioned(s);
    // A second organization links the same person through its own directory.
    const s2 = await scimSetup({ verifiedDomain: false });
    const res = await scim("POST", "/Users", s2.token, oktaCreateUser(person.email));
    expect(res.status, res.text).toBe(201);
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable)).status).toBe(200);
    expect((await get(orgPath(s), { token: person.accessToken })).status).toBe(404);
    expect((await get(orgPath(s2), { token: person.accessToken })).status).toBe(200);
  });

  it("an inactive organization refuses provisioning but still deprovisions", async () => {
    const s = await scimSetup();
    const { person, scimId } = await provisioned(s);
    await env.DB.prepare("update organizations set active = 0 where id = ?").bind(s.org.id).run();
    const created = await scim("POST", "/Users", s.token, oktaCreateUser(`${unique("late").toLowerCase()}@${s.domain}`));
    expect(created.status).toBe(409);
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable)).status).toBe(200);
    expect(await memberRow(s.org.id, person.id)).toBeNull();
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraEnable)).status).toBe(409);
  });

  it("re-activation in a full organization → 409 and the user stays inactive", async () => {
    const s = await scimSetup();
    const { person, scimId } = await provisioned(s);
    expect((await scim("PATCH", `/Users/${scimId}`, s.token, entraDisable)).status).toBe(200);
    await env.DB.prepare("update organizations set pending_invitation_count = 1000 where id = ?").bind(s.org.id).run();
    const res = await scim("PATCH", `/Users/${scimId}`, s.token, entraEnable);
    expect(res.status).toBe(409);
    expect(res.body.detail).toMatch(/seats/);
    expect((await scimUserRow(scimId))!.active).toBe(0);
    expect(await memberRow(s.org.id, person.id)).toBeNull();
  });

  it("a member who joined by invitation and is linked stays a member with their role until the directory deactivates them", async () => {
    const s = await scimSetup();
    const person = await createVerifiedUser({ email: `${unique("inv").toLowerCase()}@${s.domain}` });
    await addMemberDirect(s.org.id, person, "admin");
    const res = await scim("POST", "/Users", s.token, oktaCreateUser(person.email));
    expect(res.status).toBe(201);
    expect((await memberRow(s.org.id, person.id))!.role).toBe("admin");
    expect((await scim("PATCH", `/Users/${res.body.id}`, s.token, oktaDeactivate)).status).toBe(200);
    expect((await get(orgPath(s), { token: person.accessToken })).status).toBe(404);
  });
});
