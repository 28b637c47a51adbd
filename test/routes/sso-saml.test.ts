import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, get, post } from "../helpers/client";
import { addMemberDirect, createUser, createVerifiedUser, PASSWORD } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";
import { IDP2_CERT, IDP_CERT, IDP_KEY } from "../fixtures/saml";
import { sha256Hex } from "../../src/lib/crypto";
import {
  ALGS,
  assertionXml,
  callbackOf,
  EC_IDP_CERT,
  EC_IDP_KEY,
  exchange,
  IDP2,
  issue,
  postAcs,
  randomId,
  responseXml,
  setupSp,
  signAssertion,
  signCanonical,
  signIn,
  startLogin,
  type Sp,
} from "../helpers/saml-idp";

async function membership(orgId: string, userId: string) {
  return env.DB.prepare("select role from members where organization_id = ? and member_id = ?").bind(orgId, userId).first<{ role: string }>();
}
const userByEmail = (email: string) => env.DB.prepare("select * from users where email = ?").bind(email).first<Record<string, any>>();

/** A 401 sso_failed whose detail names the check. */
function refused(res: Awaited<ReturnType<typeof postAcs>>, reason: RegExp) {
  expect(res.status, res.text).toBe(401);
  expect(res.body.code).toBe("sso_failed");
  expect(res.body.detail).toMatch(reason);
}

/** A fresh SP-initiated request and a Response to it, built by `build`. */
async function attempt(sp: Sp, build: (requestId: string) => string | Promise<string>) {
  const { requestId } = await startLogin(sp);
  return postAcs(sp, await build(requestId));
}

describe("happy", () => {
  it("login redirects to the IdP with a deflated AuthnRequest and keeps its ID for InResponseTo", async () => {
    const sp = await setupSp();
    const { res, location, request, requestId, relayState } = await startLogin(sp, "/projects?tab=1");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(`${location.origin}${location.pathname}`).toBe("https://idp.example/sso/saml");
    expect(location.searchParams.get("tenant")).toBe("t1"); // the IdP's own query is kept
    expect(relayState).toBe("/projects?tab=1");
    expect(requestId).toMatch(/^_[0-9a-f]{40}$/);
    expect(request).toContain(`Destination="${sp.ssoUrl.replace(/&/g, "&amp;")}"`);
    expect(request).toContain(`AssertionConsumerServiceURL="${sp.acsUrl}"`);
    expect(request).toContain(`ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"`);
    expect(request).toContain(`<saml:Issuer>${sp.spEntityId}</saml:Issuer>`);
    expect(request).toContain(`Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"`);
    expect(request).toMatch(/IssueInstant="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"/);
    expect(await env.KV.get(`saml:req:${sp.idpId}:${requestId}`)).not.toBeNull();
    // A URL on the app's origin is accepted too.
    await startLogin(sp, "http://app.test/settings");
  });

  it("a new user in a JIT domain: account (verified, no password), membership, session; assertion signed", async () => {
    const sp = await setupSp({ jit: true });
    const email = `New.Person@${sp.domain}`;
    const { requestId } = await startLogin(sp, "/welcome");
    const acs = await postAcs(sp, issue(sp, requestId, { email, attributes: { displayName: ["New Person"] } }));
    const { url, code, state } = callbackOf(acs);
    expect(`${url.origin}${url.pathname}`).toBe("http://app.test/sso/callback");
    expect(state).toBe("/welcome");
    expect(code).toMatch(/^ssoc_/);
    expect(acs.text).not.toContain("eyJ"); // no token anywhere in the redirect
    expect(acs.headers.get("location")).not.toMatch(/access_token|refresh_token/);

    const tokens = await exchange(code);
    expect(tokens.status, tokens.text).toBe(200);
    expect(tokens.body.user).toMatchObject({ email: email.toLowerCase(), display_name: "New Person", email_verified: true });
    expect(tokens.body.token_type).toBe("Bearer");
    const row = await userByEmail(email.toLowerCase());
    expect(row!.password_hash).toBeNull();
    expect(await membership(sp.orgId, row!.id)).toMatchObject({ role: "user" });
    const org = await get(`/v1/organizations/${sp.orgId}`, { token: tokens.body.access_token });
    expect(org.status, org.text).toBe(200);
    expect(org.body.member_count).toBe(2);
    // The refresh token is a normal one.
    const refreshed = await post("/v1/auth/refresh", { refresh_token: tokens.body.refresh_token });
    expect(refreshed.status, refreshed.text).toBe(200);
  });

  it("an existing member signs in (JIT off); Response-signed variant", async () => {
    const sp = await setupSp({ jit: false });
    const user = await createVerifiedUser({ email: `member@${sp.domain}` });
    await addMemberDirect(sp.orgId, user, "user");
    const { tokens } = await signIn(sp, user.email, { sign: "response" });
    expect(tokens.user.id).toBe(user.id);
    // The password still works: a verified account keeps it.
    expect((await post("/v1/auth/login", { email: user.email, password: PASSWORD })).status).toBe(200);
  });

  it("Response and Assertion both signed", async () => {
    const sp = await setupSp();
    const { tokens } = await signIn(sp, `both@${sp.domain}`, { sign: "both" });
    expect(tokens.user.email).toBe(`both@${sp.domain}`);
  });

  it("an existing verified non-member joins by JIT", async () => {
    const sp = await setupSp({ jit: true });
    const user = await createVerifiedUser({ email: `joiner@${sp.domain}` });
    expect(await membership(sp.orgId, user.id)).toBeNull();
    const { tokens } = await signIn(sp, user.email);
    expect(tokens.user.id).toBe(user.id);
    expect(await membership(sp.orgId, user.id)).toMatchObject({ role: "user" });
  });

  it("an unverified account with the address loses its password and sessions when its owner signs in by SSO", async () => {
    const sp = await setupSp({ jit: true });
    const squatter = await createUser({ email: `ceo@${sp.domain}` });
    expect((await get("/v1/me", { token: squatter.accessToken })).status).toBe(200);
    const { tokens } = await signIn(sp, squatter.email);
    expect(tokens.user).toMatchObject({ id: squatter.id, email_verified: true });
    expect((await userByEmail(squatter.email))!.password_hash).toBeNull();
    expect((await post("/v1/auth/login", { email: squatter.email, password: PASSWORD })).status).toBe(401);
    expect((await get("/v1/me", { token: squatter.accessToken })).status).toBe(401);
    expect((await post("/v1/auth/refresh", { refresh_token: squatter.refreshToken })).status).toBe(401);
    expect((await get("/v1/me", { token: tokens.access_token })).status).toBe(200);
  });

  it("certificate rollover: the primary and the secondary certificate both verify", async () => {
    const rolled = await setupSp({ cert: IDP2_CERT, secondary: IDP_CERT });
    await signIn(rolled, `old-key@${rolled.domain}`); // signed with the IdP's old key (IDP): the secondary
    await signIn(rolled, `new-key@${rolled.domain}`, { signing: { keys: IDP2 } }); // and with the new one: the primary
  });

  it("an Okta-shaped response: XML declaration, line breaks, xsi:type values and an InclusiveNamespaces prefix list", async () => {
    const sp = await setupSp();
    const { requestId } = await startLogin(sp);
    const XS = `xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`;
    const assertion = assertionXml({
      issuer: sp.idpEntityId,
      audience: sp.spEntityId,
      recipient: sp.acsUrl,
      inResponseTo: requestId,
      nameId: `okta@${sp.domain}`,
    })
      .replace(
        "</saml:Assertion>",
        `<saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue xsi:type="xs:string">Everyone</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>`,
      )
      .replace(/></g, ">\n  <");
    const xml =
      `<?xml version="1.0" encoding="UTF-8"?>\n` +
      responseXml({ issuer: sp.idpEntityId, destination: sp.acsUrl, inResponseTo: requestId }, assertion).replace(`<samlp:Response `, `<samlp:Response ${XS} `);
    const signed = signAssertion(xml, { inclusivePrefixes: ["xs"] });
    expect(signed).toContain("InclusiveNamespaces");
    const acs = await postAcs(sp, signed);
    expect((await exchange(callbackOf(acs).code)).status).toBe(200);
  });

  it("rsa-sha512 with a sha512 digest", async () => {
    const sp = await setupSp();
    await signIn(sp, `strong@${sp.domain}`, { signing: { signatureAlgorithm: ALGS.rsaSha512, digestAlgorithm: ALGS.sha512 } });
  });

  it("the exc-c14n#WithComments transform and canonicalization are accepted", async () => {
    const sp = await setupSp();
    await signIn(sp, `comments@${sp.domain}`, { signing: { transform: ALGS.excC14nWithComments, canonicalization: ALGS.excC14nWithComments } });
  });

  it("ECDSA P-256, signed by an independent signer (WebCrypto over hand-written canonical XML)", async () => {
    const sp = await setupSp({ cert: EC_IDP_CERT });
    const { requestId } = await startLogin(sp);
    const id = randomId();
    const assertion = assertionXml({
      id,
      issuer: sp.idpEntityId,
      audience: sp.spEntityId,
      recipient: sp.acsUrl,
      inResponseTo: requestId,
      nameId: `ec@${sp.domain}`,
    });
    const signed = await signCanonical(assertion, id, { pkcs8: EC_IDP_KEY, kind: "EC" });
    const acs = await postAcs(sp, responseXml({ issuer: sp.idpEntityId, destination: sp.acsUrl, inResponseTo: requestId }, signed));
    expect((await exchange(callbackOf(acs).code)).status).toBe(200);
  });

  it("RSA signed by the independent signer as well", async () => {
    const sp = await setupSp();
    const { requestId } = await startLogin(sp);
    const id = randomId();
    const assertion = assertionXml({
      id,
      issuer: sp.idpEntityId,
      audience: sp.spEntityId,
      recipient: sp.acsUrl,
      inResponseTo: requestId,
      nameId: `rsa@${sp.domain}`,
    });
    const signed = await signCanonical(assertion, id, { pkcs8: IDP_KEY, kind: "RSA" });
    const acs = await postAcs(sp, responseXml({ issuer: sp.idpEntityId, destination: sp.acsUrl, inResponseTo: requestId }, signed));
    expect((await exchange(callbackOf(acs).code)).status).toBe(200);
  });

  it("the email may come from an attribute when the NameID is not an address", async () => {
    const sp = await setupSp();
    const { tokens } = await signIn(sp, undefined as never, {
      nameId: "00u1abcd",
      nameIdFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
      attributes: { "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [`Claims@${sp.domain}`], firstName: ["Ada"], lastName: ["Lovelace"] },
    });
    expect(tokens.user).toMatchObject({ email: `claims@${sp.domain}`, display_name: "Ada Lovelace" });
  });

  it("IdP-initiated when the config allows it; its RelayState is used only when it is ours", async () => {
    const sp = await setupSp({ allowIdpInitiated: true });
    const ok = await postAcs(sp, issue(sp, null, { email: `idp@${sp.domain}` }), { relayState: "/from-idp" });
    expect(callbackOf(ok).state).toBe("/from-idp");
    const foreign = await postAcs(sp, issue(sp, null, { email: `idp@${sp.domain}` }), { relayState: "https://evil.example/" });
    expect(callbackOf(foreign).state).toBeNull();
  });

  it("SP-initiated: the RelayState stored with the request wins over the one posted back", async () => {
    const sp = await setupSp();
    const { requestId } = await startLogin(sp, "/mine");
    const acs = await postAcs(sp, issue(sp, requestId, { email: `rs@${sp.domain}` }), { relayState: "/tampered" });
    expect(callbackOf(acs).state).toBe("/mine");
  });

  it("within the clock skew: an assertion that expired a minute ago is accepted", async () => {
    const sp = await setupSp();
    const now = Date.now();
    await signIn(sp, `skew@${sp.domain}`, { notOnOrAfter: now - 60_000, scNotOnOrAfter: now - 60_000 });
  });
});

describe("cost", () => {
  it("the ACS is three D1 round trips for a new JIT user and for a member; the exchange one", async () => {
    const sp = await setupSp({ jit: true });
    const { requestId } = await startLogin(sp);
    const fresh = await postAcs(sp, issue(sp, requestId, { email: `cost@${sp.domain}` }));
    expect(fresh.status, fresh.text).toBe(303);
    expect(fresh.cost.queries).toBe(3);
    expect(fresh.cost.rowsRead).toBeLessThan(40);
    const ex = await exchange(callbackOf(fresh).code);
    expect(ex.status).toBe(200);
    expect(ex.cost.queries).toBe(1);

    const again = await startLogin(sp);
    const member = await postAcs(sp, issue(sp, again.requestId, { email: `cost@${sp.domain}` }));
    expect(member.status, member.text).toBe(303);
    expect(member.cost.queries).toBe(3);
    expect(member.cost.rowsRead).toBeLessThan(40);
  });
});

describe("exchange", () => {
  it("a code is single use, sequentially and concurrently", async () => {
    const sp = await setupSp();
    const { requestId } = await startLogin(sp);
    const { code } = callbackOf(await postAcs(sp, issue(sp, requestId, { email: `once@${sp.domain}` })));
    expect((await exchange(code)).status).toBe(200);
    expectProblem(await exchange(code), 400, "invalid_token");

    const second = await startLogin(sp);
    const c2 = callbackOf(await postAcs(sp, issue(sp, second.requestId, { email: `once@${sp.domain}` }))).code;
    // Both may read the KV entry before either deletes it; D1 still lets only one through.
    const [a, b] = await Promise.all([exchange(c2), exchange(c2)]);
    expect([a.status, b.status].sort()).toEqual([200, 400]);
  });

  it("even if the KV entry outlived its use (eventual consistency), the seed refresh token is spent", async () => {
    const sp = await setupSp();
    const { requestId } = await startLogin(sp);
    const { code } = callbackOf(await postAcs(sp, issue(sp, requestId, { email: `stale@${sp.domain}` })));
    const key = `sso:code:${await sha256Hex(code)}`;
    const stored = await env.KV.get(key);
    expect((await exchange(code)).status).toBe(200);
    await env.KV.put(key, stored!, { expirationTtl: 60 }); // a replica that has not seen the delete
    expectProblem(await exchange(code), 400, "invalid_token");
  });

  it("unknown, malformed and missing codes", async () => {
    expectProblem(await exchange(`ssoc_${"A".repeat(43)}`), 400, "invalid_token");
    expectProblem(await exchange("nope"), 400, "invalid_token");
    expectProblem(await post("/v1/auth/sso/exchange", {}), 400, "validation_failed");
  });
});

describe("errors", () => {
  it("login: unknown or malformed id 404; incomplete config 409; unsafe relay_state 400", async () => {
    expectProblem(await get("/v1/sso/saml/idp_01ARZ3NDEKTSV4RRFFQ69G5FAV/login"), 404, "not_found");
    expectProblem(await get("/v1/sso/saml/nope/login"), 404, "not_found");
    const noUrl = await setupSp({ ssoUrl: null });
    const r1 = await get(noUrl.loginPath);
    expectProblem(r1, 409, "conflict");
    expect(r1.body.detail).toMatch(/saml_sso_url/);
    const noCert = await setupSp({ cert: null });
    const r2 = await get(noCert.loginPath);
    expectProblem(r2, 409, "conflict");
    expect(r2.body.detail).toMatch(/certificate/);
    const sp = await setupSp();
    for (const bad of [
      "https://evil.example/",
      "//evil.example/x",
      "/\\evil.example",
      "http://app.test.evil.example/",
      "javascript:alert(1)",
      "http://user@app.test/",
      "relative/path",
    ]) {
      const res = await get(`${sp.loginPath}?relay_state=${encodeURIComponent(bad)}`);
      expectProblem(res, 400, "validation_failed");
    }
  });

  it("ACS: form body only, SAMLResponse required, unknown config 404, junk refused", async () => {
    const sp = await setupSp();
    const json = await api("POST", sp.acsPath, { body: { SAMLResponse: "x" } });
    expectProblem(json, 415, "unsupported_media_type");
    const empty = await api("POST", sp.acsPath, { raw: "RelayState=x", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    expectProblem(empty, 400, "validation_failed");
    expectProblem(await postAcs("/v1/sso/saml/idp_01ARZ3NDEKTSV4RRFFQ69G5FAV/acs", "<x/>"), 404, "not_found");
    refused(await postAcs(sp, "%%%not base64", { raw: true }), /base64/);
    refused(await postAcs(sp, "<not xml"), /well-formed|not a SAML/);
    refused(await postAcs(sp, `<foo xmlns="urn:x"/>`), /not a SAML 2.0 Response/);
    const noCert = await setupSp({ cert: null });
    expectProblem(await postAcs(noCert, issue(noCert, null, { email: `x@${noCert.domain}` })), 409, "conflict");
  });

  it("bad signature: content changed after signing", async () => {
    const sp = await setupSp();
    refused(
      await attempt(sp, (id) => issue(sp, id, { email: `honest@${sp.domain}` }).replace(`honest@${sp.domain}`, `admin@${sp.domain}`)),
      /digest does not match/,
    );
  });

  it("wrong certificate, even with its certificate in KeyInfo", async () => {
    const sp = await setupSp();
    refused(
      await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, signing: { keys: IDP2, keyInfo: true } })),
      /does not verify with the configured certificate/,
    );
  });

  it("unsigned assertion", async () => {
    const sp = await setupSp();
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, sign: "none" })), /neither the Response nor the Assertion is signed/);
  });

  it("expired and not yet valid", async () => {
    const sp = await setupSp();
    const now = Date.now();
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, notOnOrAfter: now - 200_000 })), /expired \(Conditions/);
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, scNotOnOrAfter: now - 200_000 })), /expired \(SubjectConfirmationData/);
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, notBefore: now + 600_000 })), /not yet valid/);
  });

  it("wrong audience, recipient, destination, issuer", async () => {
    const sp = await setupSp();
    const email = `x@${sp.domain}`;
    refused(await attempt(sp, (id) => issue(sp, id, { email, audience: "https://other-sp.example/metadata" })), /Audience/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, audience: null })), /AudienceRestriction/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, recipient: "https://other-sp.example/acs" })), /Recipient/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, response: { destination: "https://other-sp.example/acs" } })), /Destination/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, sign: "response", response: { destination: null } })), /Destination/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, issuer: "https://evil-idp.example" })), /Assertion Issuer/);
    refused(await attempt(sp, (id) => issue(sp, id, { email, response: { issuer: "https://evil-idp.example" } })), /Response Issuer/);
  });

  it("a non-Success status", async () => {
    const sp = await setupSp();
    refused(
      await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, response: { status: "urn:oasis:names:tc:SAML:2.0:status:Requester" } })),
      /status Requester/,
    );
  });

  it("InResponseTo: unknown, reused, another config's, and none while IdP-initiated is off", async () => {
    const sp = await setupSp();
    const email = `x@${sp.domain}`;
    refused(await postAcs(sp, issue(sp, `_${"0".repeat(40)}`, { email })), /InResponseTo/);
    refused(await postAcs(sp, issue(sp, "not-ours", { email })), /InResponseTo/);
    const { requestId } = await startLogin(sp);
    expect((await postAcs(sp, issue(sp, requestId, { email }))).status).toBe(303);
    refused(await postAcs(sp, issue(sp, requestId, { email })), /InResponseTo/); // a fresh assertion, a spent request
    const other = await setupSp();
    const foreign = await startLogin(other);
    refused(await postAcs(sp, issue(sp, foreign.requestId, { email })), /InResponseTo/);
    refused(await postAcs(sp, issue(sp, null, { email })), /IdP-initiated/);
  });

  it("a replayed assertion is refused", async () => {
    const sp = await setupSp({ allowIdpInitiated: true });
    const xml = issue(sp, null, { email: `replay@${sp.domain}` });
    expect((await postAcs(sp, xml)).status).toBe(303);
    refused(await postAcs(sp, xml), /already used/);
  });

  it("SHA-1 is refused unless the config allows it", async () => {
    const sha1 = { signatureAlgorithm: ALGS.rsaSha1, digestAlgorithm: ALGS.sha1 };
    const sp = await setupSp();
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, signing: sha1 })), /SHA-1/);
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${sp.domain}`, signing: { digestAlgorithm: ALGS.sha1 } })), /SHA-1/);
    const legacy = await setupSp({ allowSha1: true });
    await signIn(legacy, `old@${legacy.domain}`, { signing: sha1 });
  });

  it("a DOCTYPE is refused before parsing", async () => {
    const sp = await setupSp();
    refused(await attempt(sp, (id) => `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]>${issue(sp, id, { email: `x@${sp.domain}` })}`), /DOCTYPE/);
  });

  it("an email outside the organization's verified domains", async () => {
    const sp = await setupSp();
    refused(await attempt(sp, (id) => issue(sp, id, { email: "someone@elsewhere.test" })), /verified domain of this organization/);
    // Another organization's verified domain.
    const other = await setupSp();
    refused(await attempt(sp, (id) => issue(sp, id, { email: `x@${other.domain}` })), /verified domain of this organization/);
    // The organization's own domain, not verified.
    const unverified = await setupSp({ domainVerified: false });
    refused(await attempt(unverified, (id) => issue(unverified, id, { email: `x@${unverified.domain}` })), /verified domain of this organization/);
    // No address at all.
    refused(
      await attempt(sp, (id) => issue(sp, id, { nameId: "opaque-id", nameIdFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" })),
      /no email address/,
    );
  });

  it("a domain bound to another IdP config of the organization", async () => {
    const sp = await setupSp({ domainConfig: "this" });
    await signIn(sp, `bound@${sp.domain}`);
    await env.DB.prepare("update domains set identity_provider_config_id = null where domain = ?").bind(sp.domain).run();
    const otherIdp = await setupSp();
    await env.DB.prepare("update identity_provider_configs set organization_id = ? where id = ?").bind(sp.orgId, otherIdp.idpId).run();
    await env.DB.prepare("update domains set identity_provider_config_id = ? where domain = ?").bind(otherIdp.idpId, sp.domain).run();
    refused(await attempt(sp, (id) => issue(sp, id, { email: `bound@${sp.domain}` })), /another identity provider config/);
  });

  it("a non-member without JIT is 403; a full organization refuses JIT and leaves no account behind", async () => {
    const sp = await setupSp({ jit: false });
    const outsider = await createVerifiedUser({ email: `outsider@${sp.domain}` });
    const res = await attempt(sp, (id) => issue(sp, id, { email: outsider.email }));
    expectProblem(res, 403, "forbidden");
    expect(res.body.detail).toMatch(/JIT is off/);
    expect(await userByEmail(`nobody@${sp.domain}`)).toBeNull();
    const brandNew = await attempt(sp, (id) => issue(sp, id, { email: `nobody@${sp.domain}` }));
    expectProblem(brandNew, 403, "forbidden");
    expect(await userByEmail(`nobody@${sp.domain}`)).toBeNull();

    const full = await setupSp({ jit: true });
    const { requestId } = await startLogin(full);
    const seatless = await postAcs(full, issue(full, requestId, { email: `late@${full.domain}` }), { env: { FREE_PLAN_SEATS: "1" } });
    expectProblem(seatless, 403, "forbidden");
    expect(seatless.body.detail).toMatch(/seat/);
    expect(await userByEmail(`late@${full.domain}`)).toBeNull();
  });
});
