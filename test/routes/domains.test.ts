import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import {
  claimDomain,
  dnsJson,
  domainPath,
  domainRow,
  domainsPath,
  NXDOMAIN,
  publish,
  quoted,
  seedIdpConfig,
  stubResolver,
  txtAnswer,
  uniqueDomain,
  verifiedDomain,
  verifyPath,
} from "./domains-helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

async function adminWithOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org, token: admin.accessToken };
}

describe("happy", () => {
  it("claims a domain: 201 with its verification record, unverified and everything off", async () => {
    const { org, token } = await adminWithOrg();
    const domain = uniqueDomain();
    const res = await post(domainsPath(org.id), { domain }, { token });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(/^dom_[0-9A-HJKMNP-TV-Z]{26}$/),
      domain,
      verification: { type: "TXT", name: `_tenancy-verification.${domain}`, value: expect.stringMatching(/^tenancy-verification=[A-Za-z0-9_-]{32}$/) },
      verified_at: null,
      jit_provisioning_enabled: false,
      sso_enforcement: "optional",
      scim_enabled: false,
      identity_provider_config_id: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect((await get(domainPath(org.id, res.body.id), { token })).body).toEqual(res.body);
    // Every claim gets its own token.
    const other = await claimDomain(token, org.id);
    expect(other.verification.value).not.toBe(res.body.verification.value);
  });

  it("normalizes the domain: lower-case, one trailing dot dropped, Unicode stored as punycode", async () => {
    const { org, token } = await adminWithOrg();
    const base = uniqueDomain();
    expect((await post(domainsPath(org.id), { domain: `  ${base.toUpperCase()}. ` }, { token })).body.domain).toBe(base);
    const label = unique("b").toLowerCase();
    const res = await post(domainsPath(org.id), { domain: `bücher-${label}.example` }, { token });
    expect(res.status, res.text).toBe(201);
    expect(res.body.domain).toBe(new URL(`http://bücher-${label}.example`).hostname);
    expect(res.body.domain).toMatch(/^xn--/);
    // The same name written in Unicode or in punycode is the same domain.
    expectProblem(await post(domainsPath(org.id), { domain: res.body.domain }, { token }), 409, "conflict");
  });

  it("lists in creation order, page by page to the end, in one round trip reading about a page of rows", async () => {
    const { org, token } = await adminWithOrg();
    const created: string[] = [];
    for (let i = 0; i < 5; i++) created.push((await claimDomain(token, org.id)).id);
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await get(`${domainsPath(org.id)}?page_size=2${pageToken ? `&page_token=${encodeURIComponent(pageToken)}` : ""}`, { token });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      expect(res.cost.rowsRead).toBeLessThanOrEqual(12);
      seen.push(...res.body.items.map((d: { id: string }) => d.id));
      pageToken = res.body.next_page_token;
      pages++;
    } while (pageToken);
    expect(seen).toEqual(created);
    expect(pages).toBe(3);
  });

  it("a list page costs the same in a small and a large organization", async () => {
    const small = await adminWithOrg();
    const large = await adminWithOrg();
    await claimDomain(small.token, small.org.id);
    await claimDomain(small.token, small.org.id);
    await Promise.all(Array.from({ length: 30 }, () => claimDomain(large.token, large.org.id)));
    const a = await get(`${domainsPath(small.org.id)}?page_size=2`, { token: small.token });
    const b = await get(`${domainsPath(large.org.id)}?page_size=2`, { token: large.token });
    expect(a.body.items).toHaveLength(2);
    expect(b.body.items).toHaveLength(2);
    expect(b.cost).toEqual(a.cost);
  });

  it("verifies a domain whose TXT record is published", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const { asked } = publish({ [d.verification.name]: ["v=spf1 -all", d.verification.value] });
    const before = Date.now();
    const res = await post(verifyPath(org.id, d.id), undefined, { token });
    expect(res.status, res.text).toBe(200);
    expect(asked).toEqual([`_tenancy-verification.${d.domain}`]);
    expect(Date.parse(res.body.verified_at)).toBeGreaterThanOrEqual(before);
    expect(res.body).toMatchObject({ id: d.id, domain: d.domain, verification: d.verification, jit_provisioning_enabled: false });
  });

  it("reads TXT data split into several quoted strings, with escapes, or unquoted", async () => {
    const { org, token } = await adminWithOrg();
    const split = await claimDomain(token, org.id);
    const value = split.verification.value;
    stubResolver((name) => dnsJson(txtAnswer(name, [`"${value.slice(0, 10)}" "${value.slice(10)}"`])));
    expect((await post(verifyPath(org.id, split.id), undefined, { token })).status).toBe(200);
    vi.restoreAllMocks();

    const bare = await claimDomain(token, org.id);
    // Some resolvers give the text without quotes; CNAME steps of the answer are skipped.
    stubResolver((name) =>
      dnsJson({
        Status: 0,
        Answer: [
          { name, type: 5, TTL: 60, data: "elsewhere.example." },
          { name, type: 16, TTL: 60, data: bare.verification.value },
        ],
      }),
    );
    expect((await post(verifyPath(org.id, bare.id), undefined, { token })).status).toBe(200);
    vi.restoreAllMocks();

    const escaped = await claimDomain(token, org.id);
    const v = escaped.verification.value;
    // `\061` is "=" written as a decimal escape.
    stubResolver((name) => dnsJson(txtAnswer(name, [`"${v.replace("=", "\\061")}"`])));
    expect((await post(verifyPath(org.id, escaped.id), undefined, { token })).status).toBe(200);
  });

  it("re-verifying a verified domain re-checks: still published → 200 unchanged; gone → 422 and it stays verified", async () => {
    const { org, token } = await adminWithOrg();
    const d = await verifiedDomain(token, org.id);
    publish({ [d.verification.name]: [d.verification.value] });
    const again = await post(verifyPath(org.id, d.id), undefined, { token });
    expect(again.status).toBe(200);
    expect(again.body.verified_at).toBe(d.verified_at);
    expect(again.body.updated_at).toBe(d.updated_at);
    vi.restoreAllMocks();

    publish({});
    const gone = expectProblem(await post(verifyPath(org.id, d.id), undefined, { token }), 422, "domain_verification_failed");
    expect(gone.detail).toMatch(/stays verified/);
    expect(gone.verification).toEqual(d.verification);
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(d);
  });

  it("PATCH switches JIT, enforcement and SCIM on a verified domain, on and off, and sets the identity provider config", async () => {
    const { org, token } = await adminWithOrg();
    const d = await verifiedDomain(token, org.id);
    const idp = await seedIdpConfig(org.id);
    const on = await patch(
      domainPath(org.id, d.id),
      { jit_provisioning_enabled: true, sso_enforcement: "required", scim_enabled: true, identity_provider_config_id: idp },
      { token },
    );
    expect(on.status, on.text).toBe(200);
    expect(on.body).toMatchObject({
      jit_provisioning_enabled: true,
      sso_enforcement: "required",
      scim_enabled: true,
      identity_provider_config_id: idp,
      verified_at: d.verified_at,
    });
    expect(Date.parse(on.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(d.updated_at));
    // Omitted fields are unchanged.
    const partial = await patch(domainPath(org.id, d.id), { scim_enabled: false }, { token });
    expect(partial.body).toMatchObject({ jit_provisioning_enabled: true, sso_enforcement: "required", scim_enabled: false, identity_provider_config_id: idp });
    const off = await patch(
      domainPath(org.id, d.id),
      { jit_provisioning_enabled: false, sso_enforcement: "optional", identity_provider_config_id: null },
      { token },
    );
    expect(off.body).toMatchObject({ jit_provisioning_enabled: false, sso_enforcement: "optional", scim_enabled: false, identity_provider_config_id: null });
    // An empty body changes nothing.
    expect((await patch(domainPath(org.id, d.id), {}, { token })).body).toEqual(off.body);
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(off.body);
  });

  it("deleting an identity provider config clears it from the domain", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const idp = await seedIdpConfig(org.id);
    expect((await patch(domainPath(org.id, d.id), { identity_provider_config_id: idp }, { token })).body.identity_provider_config_id).toBe(idp);
    await env.DB.prepare("delete from identity_provider_configs where id = ?").bind(idp).run();
    expect((await get(domainPath(org.id, d.id), { token })).body.identity_provider_config_id).toBeNull();
  });

  it("switching off is allowed on an unverified domain", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const res = await patch(domainPath(org.id, d.id), { jit_provisioning_enabled: false, sso_enforcement: "optional", scim_enabled: false }, { token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.verified_at).toBeNull();
  });

  it("DELETE → 204; the domain is gone, and a verified one is freed for another organization", async () => {
    const a = await adminWithOrg();
    const b = await adminWithOrg();
    const domain = uniqueDomain();
    const mine = await verifiedDomain(a.token, a.org.id, domain);
    const theirs = await claimDomain(b.token, b.org.id, domain);
    publish({ [theirs.verification.name]: [theirs.verification.value] });
    expectProblem(await post(verifyPath(b.org.id, theirs.id), undefined, { token: b.token }), 409, "domain_taken");
    const res = await del(domainPath(a.org.id, mine.id), { token: a.token });
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expectProblem(await get(domainPath(a.org.id, mine.id), { token: a.token }), 404, "not_found");
    expectProblem(await del(domainPath(a.org.id, mine.id), { token: a.token }), 404, "not_found");
    const now = await post(verifyPath(b.org.id, theirs.id), undefined, { token: b.token });
    expect(now.status, now.text).toBe(200);
  });

  it("two organizations may claim the same domain; several domains per organization", async () => {
    const a = await adminWithOrg();
    const b = await adminWithOrg();
    const domain = uniqueDomain();
    await claimDomain(a.token, a.org.id, domain);
    await claimDomain(b.token, b.org.id, domain);
    await claimDomain(a.token, a.org.id, `sub.${domain}`);
  });
});

describe("errors", () => {
  it.each([
    ["missing", {}],
    ["not a string", { domain: 42 }],
    ["empty", { domain: "  " }],
    ["an IPv4 address", { domain: "192.0.2.1" }],
    ["an IPv4 address the URL parser would rewrite", { domain: "0x7f.1" }],
    ["a numeric last label", { domain: "example.123" }],
    ["an IPv6 address", { domain: "[2001:db8::1]" }],
    ["a bare IPv6 address", { domain: "2001:db8::1" }],
    ["a single label", { domain: "intranet" }],
    ["localhost", { domain: "localhost" }],
    ["a localhost subdomain", { domain: "app.localhost" }],
    ["a wildcard", { domain: "*.example.com" }],
    ["a URL", { domain: "https://example.com" }],
    ["a path", { domain: "example.com/path" }],
    ["a port", { domain: "example.com:443" }],
    ["an address", { domain: "ada@example.com" }],
    ["an underscore", { domain: "my_host.example.com" }],
    ["an empty label", { domain: "a..example.com" }],
    ["a leading dot", { domain: ".example.com" }],
    ["a leading hyphen", { domain: "-acme.example.com" }],
    ["a label over 63 characters", { domain: `${"a".repeat(64)}.example.com` }],
    ["over 253 characters", { domain: `${Array.from({ length: 5 }, () => "a".repeat(60)).join(".")}.com` }],
    ["control characters", { domain: "acme\u0000.example.com" }],
  ])("refuses %s: 400 naming `domain`", async (_, body) => {
    const { org, token } = await adminWithOrg();
    const res = await post(domainsPath(org.id), body, { token });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["domain"]);
  });

  it.each(["gmail.com", "GoogleMail.com.", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "proton.me", "qq.com", "gmx.de"])(
    "refuses the public email domain %s: 422",
    async (domain) => {
      const { org, token } = await adminWithOrg();
      expectProblem(await post(domainsPath(org.id), { domain }, { token }), 422, "public_email_domain");
      expect((await get(domainsPath(org.id), { token })).body.items).toEqual([]);
    },
  );

  it("the same domain twice in one organization: 409 conflict", async () => {
    const { org, token } = await adminWithOrg();
    const domain = uniqueDomain();
    await claimDomain(token, org.id, domain);
    expectProblem(await post(domainsPath(org.id), { domain: domain.toUpperCase() }, { token }), 409, "conflict");
  });

  it("record absent (no TXT answer, another value, or NXDOMAIN): 422 and nothing changes", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const answers = [
      (name: string) => dnsJson({ Status: 0, Question: [{ name, type: 16 }] }),
      (name: string) => dnsJson(txtAnswer(name, [quoted("tenancy-verification=someone-elses-token"), quoted(`${d.verification.value}x`)])),
      () => dnsJson(NXDOMAIN),
    ];
    for (const answer of answers) {
      stubResolver(answer);
      const body = expectProblem(await post(verifyPath(org.id, d.id), undefined, { token }), 422, "domain_verification_failed");
      expect(body.verification).toEqual(d.verification);
      vi.restoreAllMocks();
    }
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(d);
  });

  it.each([
    ["HTTP 500", () => new Response("oops", { status: 500 })],
    ["HTTP 404", () => new Response("not here", { status: 404 })],
    ["a network error", () => Promise.reject(new TypeError("network connection lost"))],
    ["a timeout", () => Promise.reject(new DOMException("The operation timed out.", "TimeoutError"))],
    ["a body that is not JSON", () => dnsJson("<html>captive portal</html>")],
    ["JSON that is not a DNS answer", () => dnsJson({ hello: "world" })],
    ["a JSON array", () => dnsJson([1, 2])],
    ["an Answer that is not a list", () => dnsJson({ Status: 0, Answer: "yes" })],
    ["SERVFAIL", () => dnsJson({ Status: 2 })],
    ["REFUSED", () => dnsJson({ Status: 5 })],
  ])("the resolver failing (%s): 502 dns_lookup_failed and nothing changes", async (_, answer) => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    stubResolver(answer as () => Response | Promise<Response>);
    const body = expectProblem(await post(verifyPath(org.id, d.id), undefined, { token }), 502, "dns_lookup_failed");
    expect(body.detail).toMatch(/Nothing was changed/);
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(d);
    expect((await domainRow(d.id))!.verified_at).toBeNull();
  });

  it("a resolver failure on a verified domain leaves it verified", async () => {
    const { org, token } = await adminWithOrg();
    const d = await verifiedDomain(token, org.id);
    stubResolver(() => new Response("down", { status: 503 }));
    expectProblem(await post(verifyPath(org.id, d.id), undefined, { token }), 502, "dns_lookup_failed");
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(d);
  });

  it("a domain verified by one organization: another gets 409 domain_taken and nothing changes", async () => {
    const a = await adminWithOrg();
    const b = await adminWithOrg();
    const domain = uniqueDomain();
    const won = await verifiedDomain(a.token, a.org.id, domain);
    const lost = await claimDomain(b.token, b.org.id, domain);
    // B publishes its own record too: the database, not DNS, decides.
    publish({ [lost.verification.name]: [won.verification.value, lost.verification.value] });
    expectProblem(await post(verifyPath(b.org.id, lost.id), undefined, { token: b.token }), 409, "domain_taken");
    expect((await get(domainPath(b.org.id, lost.id), { token: b.token })).body).toEqual(lost);
    expect((await get(domainPath(a.org.id, won.id), { token: a.token })).body).toEqual(won);
  });

  it("two organizations verifying the same domain at once: exactly one wins", async () => {
    const orgs = await Promise.all([adminWithOrg(), adminWithOrg(), adminWithOrg()]);
    const domain = uniqueDomain();
    const claims = await Promise.all(orgs.map((o) => claimDomain(o.token, o.org.id, domain)));
    publish({ [`_tenancy-verification.${domain}`]: claims.map((c) => c.verification.value) });
    const results = await Promise.all(orgs.map((o, i) => post(verifyPath(o.org.id, claims[i]!.id), undefined, { token: o.token })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409]);
    for (const r of results.filter((r) => r.status === 409)) expectProblem(r, 409, "domain_taken");
    const rows = await Promise.all(claims.map((c) => domainRow(c.id)));
    expect(rows.filter((r) => r!.verified_at !== null)).toHaveLength(1);
  });

  it("PATCH switching on for an unverified domain: 409 domain_not_verified, nothing changes", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    for (const body of [
      { jit_provisioning_enabled: true },
      { sso_enforcement: "required" },
      { scim_enabled: true },
      { scim_enabled: false, jit_provisioning_enabled: true },
    ]) {
      expectProblem(await patch(domainPath(org.id, d.id), body, { token }), 409, "domain_not_verified");
    }
    expect((await get(domainPath(org.id, d.id), { token })).body).toEqual(d);
  });

  it("PATCH with another organization's, an unknown or a malformed identity provider config: 404, nothing changes", async () => {
    const a = await adminWithOrg();
    const b = await adminWithOrg();
    const d = await claimDomain(a.token, a.org.id);
    const foreign = await seedIdpConfig(b.org.id);
    for (const id of [foreign, "idp_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", ""]) {
      const res = expectProblem(await patch(domainPath(a.org.id, d.id), { identity_provider_config_id: id }, { token: a.token }), 404, "not_found");
      expect(res.detail).toMatch(/identity provider config/);
    }
    expect((await get(domainPath(a.org.id, d.id), { token: a.token })).body).toEqual(d);
  });

  it("PATCH validation: every bad field is named", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const res = await patch(
      domainPath(org.id, d.id),
      { jit_provisioning_enabled: "yes", sso_enforcement: "always", scim_enabled: 1, identity_provider_config_id: 5 },
      { token },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["identity_provider_config_id", "jit_provisioning_enabled", "scim_enabled", "sso_enforcement"]);
  });

  it("unknown and malformed domain ids: 404 on every route, and the resolver is never asked", async () => {
    const { org, token } = await adminWithOrg();
    const { spy } = publish({});
    for (const id of ["dom_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "prj_01ARZ3NDEKTSV4RRFFQ69G5FAV"]) {
      expectProblem(await get(domainPath(org.id, id), { token }), 404, "not_found");
      expectProblem(await patch(domainPath(org.id, id), { scim_enabled: false }, { token }), 404, "not_found");
      expectProblem(await del(domainPath(org.id, id), { token }), 404, "not_found");
      expectProblem(await post(verifyPath(org.id, id), undefined, { token }), 404, "not_found");
    }
    expect(spy).not.toHaveBeenCalled();
  });

  it("a bad page_size or page_token: 400", async () => {
    const { org, token } = await adminWithOrg();
    expectProblem(await get(`${domainsPath(org.id)}?page_size=0`, { token }), 400, "validation_failed");
    expectProblem(await get(`${domainsPath(org.id)}?page_token=forged.token`, { token }), 400, "invalid_page_token");
    // A token from another organization's list does not fit this one.
    const other = await adminWithOrg();
    await claimDomain(other.token, other.org.id);
    await claimDomain(other.token, other.org.id);
    const next = (await get(`${domainsPath(other.org.id)}?page_size=1`, { token: other.token })).body.next_page_token;
    expect(next).not.toBe("");
    expectProblem(await get(`${domainsPath(org.id)}?page_token=${encodeURIComponent(next)}`, { token }), 400, "invalid_page_token");
  });
});

describe("security", () => {
  it("401 without a credential", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    expectProblem(await get(domainsPath(org.id)), 401, "unauthenticated");
    expectProblem(await post(domainsPath(org.id), { domain: uniqueDomain() }), 401, "unauthenticated");
    expectProblem(await post(verifyPath(org.id, d.id)), 401, "unauthenticated");
    expectProblem(await patch(domainPath(org.id, d.id), {}), 401, "unauthenticated");
    expectProblem(await del(domainPath(org.id, d.id)), 401, "unauthenticated");
  });

  it("a `user` member may neither read nor write domains (sso:read / sso:write are admins')", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    const t = member.accessToken;
    expectProblem(await get(domainsPath(org.id), { token: t }), 403, "forbidden");
    expectProblem(await get(domainPath(org.id, d.id), { token: t }), 403, "forbidden");
    expectProblem(await post(domainsPath(org.id), { domain: uniqueDomain() }, { token: t }), 403, "forbidden");
    expectProblem(await patch(domainPath(org.id, d.id), { scim_enabled: false }, { token: t }), 403, "forbidden");
    expectProblem(await post(verifyPath(org.id, d.id), undefined, { token: t }), 403, "forbidden");
    expectProblem(await del(domainPath(org.id, d.id), { token: t }), 403, "forbidden");
    expect(await domainRow(d.id)).not.toBeNull();
  });

  it("a custom role with sso:read reads but does not write", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const role = await post(`/v1/organizations/${org.id}/roles`, { name: unique("ssoread").toLowerCase().slice(0, 30), permissions: ["sso:read"] }, { token });
    expect(role.status, role.text).toBe(201);
    const member = await createUser();
    await addMemberDirect(org.id, member, role.body.name);
    expect((await get(domainPath(org.id, d.id), { token: member.accessToken })).status).toBe(200);
    expectProblem(await post(domainsPath(org.id), { domain: uniqueDomain() }, { token: member.accessToken }), 403, "forbidden");
  });

  it("PAT scopes: organization:read reads, writes need organization:write", async () => {
    const { admin, org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    const reader = await createPat(admin, ["organization:read"]);
    const writer = await createPat(admin, ["organization:write"]);
    const members = await createPat(admin, ["organization_member:write"]);
    expect((await get(domainsPath(org.id), { token: reader.token })).status).toBe(200);
    expectProblem(await post(domainsPath(org.id), { domain: uniqueDomain() }, { token: reader.token }), 403, "insufficient_scope");
    expectProblem(await post(verifyPath(org.id, d.id), undefined, { token: reader.token }), 403, "insufficient_scope");
    expectProblem(await get(domainsPath(org.id), { token: members.token }), 403, "insufficient_scope");
    expect((await post(domainsPath(org.id), { domain: uniqueDomain() }, { token: writer.token })).status).toBe(201);
  });

  it("another organization's domain is 404 under this one, on every route, and nothing changes", async () => {
    const a = await adminWithOrg();
    const b = await adminWithOrg();
    const theirs = await claimDomain(b.token, b.org.id);
    const { spy } = publish({ [theirs.verification.name]: [theirs.verification.value] });
    expectProblem(await get(domainPath(a.org.id, theirs.id), { token: a.token }), 404, "not_found");
    expectProblem(await patch(domainPath(a.org.id, theirs.id), { scim_enabled: false }, { token: a.token }), 404, "not_found");
    expectProblem(await post(verifyPath(a.org.id, theirs.id), undefined, { token: a.token }), 404, "not_found");
    expectProblem(await del(domainPath(a.org.id, theirs.id), { token: a.token }), 404, "not_found");
    expect(spy).not.toHaveBeenCalled();
    expect((await get(domainPath(b.org.id, theirs.id), { token: b.token })).body).toEqual(theirs);
    expect((await get(domainsPath(a.org.id), { token: a.token })).body.items).toEqual([]);
    // And an outsider to B sees B as not existing.
    expectProblem(await get(domainsPath(b.org.id), { token: a.token }), 404, "not_found");
  });

  it("an inactive organization is read-only", async () => {
    const { org, token } = await adminWithOrg();
    const d = await claimDomain(token, org.id);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, { token })).status).toBe(200);
    expect((await get(domainPath(org.id, d.id), { token })).status).toBe(200);
    expectProblem(await post(domainsPath(org.id), { domain: uniqueDomain() }, { token }), 409, "organization_inactive");
    expectProblem(await post(verifyPath(org.id, d.id), undefined, { token }), 409, "organization_inactive");
  });
});
