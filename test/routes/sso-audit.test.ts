import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { auditEntries, outboxEvents, subscribe } from "../helpers/audit-trail";
import { addMemberDirect, createVerifiedUser } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { callbackOf, exchange, issue, postAcs, setupSp, startLogin, type Sp } from "../helpers/saml-idp";

/**
 * A SAML sign-in is recorded once, by the ACS, where the session opens (the code exchange only
 * hands over its tokens): `sso.login` by the user with credential `saml`, and for a JIT join a
 * `member.added` in the same batch.
 */

const userId = async (email: string) => (await env.DB.prepare("select id from users where email = ?").bind(email).first<{ id: string }>())?.id;

async function acs(sp: Sp, email: string, opts: Parameters<typeof postAcs>[2] = {}) {
  const { requestId } = await startLogin(sp);
  return postAcs(sp, issue(sp, requestId, { email }), opts);
}

const ofLogins = async (orgId: string) => (await auditEntries(orgId)).filter((e) => e.action === "sso.login" || e.action === "member.added");

describe("ACS", () => {
  it("a new user in a JIT domain: member.added then sso.login, both by the user through saml, with their events", async () => {
    const sp = await setupSp({ jit: true });
    await subscribe(sp.orgId, ["sso.login", "member.added"]);
    const email = `new.person@${sp.domain}`;
    const res = await acs(sp, email);
    expect(res.status, res.text).toBe(303);
    const id = (await userId(email))!;
    const entries = await ofLogins(sp.orgId);
    expect(entries.map((e) => [e.action, e.target_type, e.target_id, e.actor_type, e.actor_id, e.credential])).toEqual([
      ["member.added", "user", id, "user", id, "saml"],
      ["sso.login", "user", id, "user", id, "saml"],
    ]);
    expect(entries[0]!.changes).toEqual(["role"]);
    // Deliveries of one batch share a timestamp: looked up by type.
    const events = await outboxEvents(sp.orgId);
    expect(events.map((e) => e.type).sort()).toEqual(["member.added", "sso.login"]);
    const of = (type: string) => events.find((e) => e.type === type)!.data;
    expect(of("member.added")).toMatchObject({ user: { id, email }, role: "user", type: "user" });
    expect(of("sso.login")).toEqual({ user: { id, email, display_name: "new.person" }, identity_provider_config_id: sp.idpId, new_account: true });
    expect([res.cost.queries, res.cost.statements]).toEqual([3, 12]);

    // The exchange completes nothing new: no second entry.
    expect((await exchange(callbackOf(res).code)).status).toBe(200);
    expect((await ofLogins(sp.orgId)).length).toBe(2);
  });

  it("a member signing in: sso.login only, one per login", async () => {
    const sp = await setupSp({ jit: false });
    const member = await createVerifiedUser({ email: `member@${sp.domain}` });
    await addMemberDirect(sp.orgId, member, "admin");
    for (let i = 0; i < 2; i++) {
      const res = await acs(sp, member.email);
      expect(res.status).toBe(303);
      expect([res.cost.queries, res.cost.statements]).toEqual([3, 8]);
    }
    const entries = await ofLogins(sp.orgId);
    expect(entries.map((e) => [e.action, e.target_id, e.actor_id, e.credential])).toEqual([
      ["sso.login", member.id, member.id, "saml"],
      ["sso.login", member.id, member.id, "saml"],
    ]);
  });

  it("a refused sign-in (no JIT, or no free seat) records nothing", async () => {
    const sp = await setupSp({ jit: false });
    const outsider = await createVerifiedUser({ email: `outsider@${sp.domain}` });
    expectProblem(await acs(sp, outsider.email), 403, "forbidden");
    const full = await setupSp({ jit: true });
    expectProblem(await acs(full, `late@${full.domain}`, { env: { FREE_PLAN_SEATS: "1" } }), 403, "forbidden");
    expect(await ofLogins(sp.orgId)).toEqual([]);
    expect(await ofLogins(full.orgId)).toEqual([]);
  });
});
