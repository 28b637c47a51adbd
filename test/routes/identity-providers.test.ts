import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import { EC_P256_CERT, EC_SECP256K1_CERT, EXPIRED_CERT, FUTURE_CERT, IDP2_CERT, IDP_CERT, IDP_KEY, WEAK_RSA1024_CERT } from "../fixtures/saml";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const IDP_ID = /^idp_[0-9A-HJKMNP-TV-Z]{26}$/;
// `openssl x509 -noout -enddate` of the fixtures.
const IDP_CERT_EXPIRES = "2036-11-28T03:30:56.000Z";
const IDP2_CERT_EXPIRES = "2036-11-28T03:30:57.000Z";

const configsPath = (orgId: string) => `/v1/organizations/${orgId}/identity-provider-configs`;
const samlSsoPath = (orgId: string) => `/v1/organizations/${orgId}/saml-sso`;
const bareBase64 = (pem: string) => pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");

async function adminAndOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

type Idp = Record<string, any> & { id: string };

async function createIdp(caller: { accessToken: string }, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(
    configsPath(orgId),
    { name: `Okta ${unique()}`, saml_entity_id: "http://www.okta.com/exk123", ...body },
    { token: caller.accessToken },
  );
  expect(res.status, res.text).toBe(201);
  return res.body as Idp;
}

const row = (id: string) => env.DB.prepare("select * from identity_provider_configs where id = ?").bind(id).first<Record<string, unknown>>();

const RESPONSE_KEYS = [
  "acs_url",
  "allow_idp_initiated",
  "allow_sha1",
  "created_at",
  "default",
  "id",
  "login_url",
  "metadata_url",
  "name",
  "organization_id",
  "saml_entity_id",
  "saml_sso_url",
  "saml_x509_cert",
  "saml_x509_cert_expires_at",
  "saml_x509_cert_secondary",
  "saml_x509_cert_secondary_expires_at",
  "scim_enabled",
  "sp_entity_id",
  "updated_at",
];

describe("happy", () => {
  it("POST creates a config with the SP side; GET and the list return the same", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      configsPath(org.id),
      {
        name: "Okta",
        saml_entity_id: "http://www.okta.com/exk1a2b3c4",
        saml_sso_url: "https://acme.okta.com/app/acme/exk1a2b3c4/sso/saml",
        saml_x509_cert: IDP_CERT,
        allow_idp_initiated: true,
        scim_enabled: true,
      },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    const id = res.body.id;
    expect(res.body).toEqual({
      id: expect.stringMatching(IDP_ID),
      organization_id: org.id,
      name: "Okta",
      saml_entity_id: "http://www.okta.com/exk1a2b3c4",
      saml_sso_url: "https://acme.okta.com/app/acme/exk1a2b3c4/sso/saml",
      saml_x509_cert: IDP_CERT,
      saml_x509_cert_expires_at: IDP_CERT_EXPIRES,
      saml_x509_cert_secondary: null,
      saml_x509_cert_secondary_expires_at: null,
      allow_idp_initiated: true,
      allow_sha1: false,
      scim_enabled: true,
      default: false,
      sp_entity_id: `http://api.test/v1/sso/saml/${id}/metadata`,
      acs_url: `http://api.test/v1/sso/saml/${id}/acs`,
      metadata_url: `http://api.test/v1/sso/saml/${id}/metadata`,
      login_url: `http://api.test/v1/sso/saml/${id}/login`,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    const one = await get(`${configsPath(org.id)}/${id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.body).toEqual(res.body);
    const list = await get(configsPath(org.id), { token: admin.accessToken });
    expect(list.body).toEqual({ items: [res.body], next_page_token: "" });
    expect(await row(id)).toMatchObject({
      organization_id: org.id,
      saml_x509_cert: IDP_CERT,
      saml_x509_cert_expires_at: Date.parse(IDP_CERT_EXPIRES),
      is_default: 0,
    });
  });

  it("only name and saml_entity_id are required; the flags default to false", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(configsPath(org.id), { name: "Entra ID", saml_entity_id: "https://sts.windows.net/0000-tenant/" }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(RESPONSE_KEYS);
    expect(res.body).toMatchObject({
      saml_sso_url: null,
      saml_x509_cert: null,
      saml_x509_cert_expires_at: null,
      allow_idp_initiated: false,
      allow_sha1: false,
      scim_enabled: false,
      default: false,
    });
  });

  it("certificates: bare base64 (as in IdP metadata) is stored as PEM; ECDSA P-256 and a not-yet-valid rollover certificate are accepted", async () => {
    const { admin, org } = await adminAndOrg();
    const bare = await createIdp(admin, org.id, { saml_x509_cert: bareBase64(IDP_CERT) });
    expect(bare.saml_x509_cert).toBe(IDP_CERT);
    expect(bare.saml_x509_cert_expires_at).toBe(IDP_CERT_EXPIRES);
    // Line breaks of another width, CRLF and surrounding blanks are normalised too.
    const b64 = bareBase64(IDP_CERT);
    const wrapped = `\r\n  -----BEGIN CERTIFICATE-----\r\n${b64.match(/.{1,76}/g)!.join("\r\n")}\r\n-----END CERTIFICATE-----\r\n`;
    expect((await createIdp(admin, org.id, { saml_x509_cert: wrapped })).saml_x509_cert).toBe(IDP_CERT);

    const ec = await createIdp(admin, org.id, { saml_x509_cert: EC_P256_CERT });
    expect(ec.saml_x509_cert).toBe(EC_P256_CERT);
    const rollover = await createIdp(admin, org.id, { saml_x509_cert: IDP_CERT, saml_x509_cert_secondary: FUTURE_CERT });
    expect(rollover).toMatchObject({ saml_x509_cert_secondary: FUTURE_CERT, saml_x509_cert_secondary_expires_at: "2045-01-01T00:00:00.000Z" });
  });

  it("PATCH changes fields; omitted fields are unchanged; an empty body changes nothing", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const idp = await createIdp(admin, org.id, { saml_sso_url: "https://idp.example.com/sso", saml_x509_cert: IDP_CERT });
    const res = await patch(
      `${configsPath(org.id)}/${idp.id}`,
      { name: "Renamed", saml_entity_id: "urn:idp:new", allow_sha1: true, allow_idp_initiated: true, scim_enabled: true },
      t,
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      id: idp.id,
      name: "Renamed",
      saml_entity_id: "urn:idp:new",
      saml_sso_url: "https://idp.example.com/sso",
      saml_x509_cert: IDP_CERT,
      allow_sha1: true,
      allow_idp_initiated: true,
      scim_enabled: true,
      sp_entity_id: idp.sp_entity_id,
      acs_url: idp.acs_url,
      created_at: idp.created_at,
    });
    expect(Date.parse(res.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(idp.updated_at));
    const same = await patch(`${configsPath(org.id)}/${idp.id}`, {}, t);
    expect(same.status, same.text).toBe(200);
    expect(same.body).toEqual(res.body);
    const cleared = await patch(`${configsPath(org.id)}/${idp.id}`, { saml_sso_url: null, saml_x509_cert: null }, t);
    expect(cleared.body).toMatchObject({ saml_sso_url: null, saml_x509_cert: null, saml_x509_cert_expires_at: null });
    expect(await row(idp.id)).toMatchObject({ saml_x509_cert: null, saml_x509_cert_expires_at: null });
  });

  it("certificate rollover: add a secondary, promote it, then clear; promoting with none is 409", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const idp = await createIdp(admin, org.id, { saml_x509_cert: IDP_CERT });
    const path = `${configsPath(org.id)}/${idp.id}`;
    const added = await patch(path, { saml_x509_cert_secondary: IDP2_CERT }, t);
    expect(added.status, added.text).toBe(200);
    expect(added.body).toMatchObject({
      saml_x509_cert: IDP_CERT,
      saml_x509_cert_expires_at: IDP_CERT_EXPIRES,
      saml_x509_cert_secondary: IDP2_CERT,
      saml_x509_cert_secondary_expires_at: IDP2_CERT_EXPIRES,
    });
    const promoted = await patch(path, { promote_secondary_cert: true, name: "After rollover" }, t);
    expect(promoted.status, promoted.text).toBe(200);
    expect(promoted.body).toMatchObject({
      name: "After rollover",
      saml_x509_cert: IDP2_CERT,
      saml_x509_cert_expires_at: IDP2_CERT_EXPIRES,
      saml_x509_cert_secondary: null,
      saml_x509_cert_secondary_expires_at: null,
    });
    expect(await row(idp.id)).toMatchObject({
      saml_x509_cert: IDP2_CERT,
      saml_x509_cert_expires_at: Date.parse(IDP2_CERT_EXPIRES),
      saml_x509_cert_secondary: null,
    });

    const again = await patch(path, { promote_secondary_cert: true }, t);
    expectProblem(again, 409, "conflict");
    expect((await get(path, t)).body).toEqual(promoted.body);

    // Replace the secondary, then clear it.
    expect((await patch(path, { saml_x509_cert_secondary: IDP_CERT }, t)).body.saml_x509_cert_secondary).toBe(IDP_CERT);
    const cleared = await patch(path, { saml_x509_cert_secondary: null }, t);
    expect(cleared.body).toMatchObject({ saml_x509_cert: IDP2_CERT, saml_x509_cert_secondary: null, saml_x509_cert_secondary_expires_at: null });
  });

  it("http SSO URLs are accepted with ENVIRONMENT=development (a local IdP)", async () => {
    const { admin, org } = await adminAndOrg();
    const idp = await createIdp(admin, org.id, { saml_sso_url: "http://127.0.0.1:7000/sso" });
    expect(idp.saml_sso_url).toBe("http://127.0.0.1:7000/sso");
    // A query string is fine (Google Workspace's SSO URL has one).
    const google = await createIdp(admin, org.id, { saml_sso_url: "https://accounts.google.com/o/saml2/idp?idpid=C0abc123" });
    expect(google.saml_sso_url).toBe("https://accounts.google.com/o/saml2/idp?idpid=C0abc123");
  });

  it("DELETE removes the config; domains that used it keep existing without one", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const idp = await createIdp(admin, org.id);
    const domainId = newId("domain");
    const now = Date.now();
    await env.DB.prepare(
      "insert into domains (id, organization_id, domain, verification_token, identity_provider_config_id, created_at, updated_at) values (?, ?, ?, 'tok', ?, ?, ?)",
    )
      .bind(domainId, org.id, `${unique()}.example.com`, idp.id, now, now)
      .run();
    const res = await del(`${configsPath(org.id)}/${idp.id}`, t);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expect(await row(idp.id)).toBeNull();
    const domain = await env.DB.prepare("select identity_provider_config_id from domains where id = ?").bind(domainId).first();
    expect(domain).toEqual({ identity_provider_config_id: null });
    expectProblem(await get(`${configsPath(org.id)}/${idp.id}`, t), 404, "not_found");
    expectProblem(await del(`${configsPath(org.id)}/${idp.id}`, t), 404, "not_found");
  });

  it("lists in creation order across pages to the end, one round trip per page", async () => {
    const { admin, org } = await adminAndOrg();
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await createIdp(admin, org.id)).id);
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await get(`${configsPath(org.id)}?page_size=3${token ? `&page_token=${encodeURIComponent(token)}` : ""}`, { token: admin.accessToken });
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      expect(res.body.items.length).toBeLessThanOrEqual(3);
      seen.push(...res.body.items.map((p: Idp) => p.id));
      token = res.body.next_page_token;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(created);
  });

  it("a page reads about page_size rows whatever the organization holds; GET one reads one", async () => {
    const { admin, org } = await adminAndOrg();
    const now = Date.now();
    const seed = Array.from({ length: 300 }, (_, i) =>
      env.DB.prepare(
        "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, created_at, updated_at) values (?, ?, ?, 'urn:x', ?, ?)",
      ).bind(newId("identityProvider", now - 1000 + i), org.id, `idp${i}`, now, now),
    );
    for (let i = 0; i < seed.length; i += 100) await env.DB.batch(seed.slice(i, i + 100));
    const baseline = await get(`/v1/organizations/${org.id}`, { token: admin.accessToken });
    const small = await get(`${configsPath(org.id)}?page_size=5`, { token: admin.accessToken });
    expect(small.status, small.text).toBe(200);
    expect(small.body.items.length).toBe(5);
    expect(small.cost.queries).toBe(1);
    expect(small.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(5 + 1 + 2);
    const next = await get(`${configsPath(org.id)}?page_size=5&page_token=${encodeURIComponent(small.body.next_page_token)}`, { token: admin.accessToken });
    expect(next.cost.queries).toBe(1);
    expect(next.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(5 + 1 + 2);
    const one = await get(`${configsPath(org.id)}/${small.body.items[2].id}`, { token: admin.accessToken });
    expect(one.status, one.text).toBe(200);
    expect(one.cost.queries).toBe(1);
    expect(one.cost.rowsRead - baseline.cost.rowsRead).toBeLessThanOrEqual(2);
  });

  it("PATs: organization:read reads, organization:write writes", async () => {
    const { admin, org } = await adminAndOrg();
    const reader = await createPat(admin, ["organization:read"]);
    const writer = await createPat(admin, ["organization:write"]);
    const idp = await createIdp({ accessToken: writer.token }, org.id);
    expect((await get(`${configsPath(org.id)}/${idp.id}`, { token: reader.token })).status).toBe(200);
    expect((await get(configsPath(org.id), { token: reader.token })).status).toBe(200);
    expect((await post(samlSsoPath(org.id), { entity_id: "urn:x" }, { token: writer.token })).status).toBe(201);
  });
});

describe("happy: saml-sso", () => {
  it("POST creates the default config (201), then updates it (200); omitted fields keep their value, null clears", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const created = await post(samlSsoPath(org.id), { entity_id: "http://www.okta.com/exkA", sso_url: "https://acme.okta.com/sso", x509_cert: IDP_CERT }, t);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({
      id: expect.stringMatching(IDP_ID),
      name: "SAML SSO",
      default: true,
      saml_entity_id: "http://www.okta.com/exkA",
      saml_sso_url: "https://acme.okta.com/sso",
      saml_x509_cert: IDP_CERT,
      saml_x509_cert_expires_at: IDP_CERT_EXPIRES,
      acs_url: `http://api.test/v1/sso/saml/${created.body.id}/acs`,
    });
    expect(Object.keys(created.body).sort()).toEqual(RESPONSE_KEYS);

    const updated = await post(samlSsoPath(org.id), { entity_id: "http://www.okta.com/exkB" }, t);
    expect(updated.status, updated.text).toBe(200);
    expect(updated.body).toMatchObject({
      id: created.body.id,
      saml_entity_id: "http://www.okta.com/exkB",
      saml_sso_url: "https://acme.okta.com/sso",
      saml_x509_cert: IDP_CERT,
      created_at: created.body.created_at,
    });

    const rotated = await post(samlSsoPath(org.id), { entity_id: "http://www.okta.com/exkB", sso_url: null, x509_cert: IDP2_CERT }, t);
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body).toMatchObject({ id: created.body.id, saml_sso_url: null, saml_x509_cert: IDP2_CERT, saml_x509_cert_expires_at: IDP2_CERT_EXPIRES });

    // It is an ordinary config too: listed, readable, and editable by id.
    const other = await createIdp(admin, org.id);
    const list = await get(configsPath(org.id), t);
    expect(list.body.items.map((i: Idp) => [i.id, i.default])).toEqual([
      [created.body.id, true],
      [other.id, false],
    ]);
    expect((await patch(`${configsPath(org.id)}/${created.body.id}`, { name: "Okta (default)" }, t)).body).toMatchObject({
      name: "Okta (default)",
      default: true,
    });
  });

  it("DELETE removes only the default config; again is 404; a new POST creates a new one", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    expectProblem(await del(samlSsoPath(org.id), t), 404, "not_found");
    const other = await createIdp(admin, org.id);
    const first = await post(samlSsoPath(org.id), { entity_id: "urn:a" }, t);
    const res = await del(samlSsoPath(org.id), t);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe("");
    expect(await row(first.body.id)).toBeNull();
    expect(await row(other.id)).not.toBeNull();
    expectProblem(await del(samlSsoPath(org.id), t), 404, "not_found");
    const second = await post(samlSsoPath(org.id), { entity_id: "urn:b" }, t);
    expect(second.status, second.text).toBe(201);
    expect(second.body.id).not.toBe(first.body.id);
  });

  it("concurrent upserts leave exactly one default config", async () => {
    const { admin, org } = await adminAndOrg();
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => post(samlSsoPath(org.id), { entity_id: `urn:race:${i}` }, { token: admin.accessToken })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 201]);
    expect(new Set(results.map((r) => r.body.id)).size).toBe(1);
    const { results: rows } = await env.DB.prepare("select id from identity_provider_configs where organization_id = ? and is_default = 1").bind(org.id).all();
    expect(rows.length).toBe(1);
  });

  it("each organization has its own default config", async () => {
    const a = await adminAndOrg();
    const b = await adminAndOrg();
    const ra = await post(samlSsoPath(a.org.id), { entity_id: "urn:a" }, { token: a.admin.accessToken });
    const rb = await post(samlSsoPath(b.org.id), { entity_id: "urn:b" }, { token: b.admin.accessToken });
    expect([ra.status, rb.status]).toEqual([201, 201]);
    expect(ra.body.id).not.toBe(rb.body.id);
    expect(await del(samlSsoPath(a.org.id), { token: a.admin.accessToken })).toMatchObject({ status: 204 });
    expect(await row(rb.body.id)).not.toBeNull();
  });
});

describe("errors", () => {
  it("POST validates every field and lists each bad one", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      configsPath(org.id),
      { name: "", saml_sso_url: "ftp://idp.example.com", saml_x509_cert: "garbage", saml_x509_cert_secondary: 7, allow_sha1: "yes", scim_enabled: 1 },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual([
      "allow_sha1",
      "name",
      "saml_entity_id",
      "saml_sso_url",
      "saml_x509_cert",
      "saml_x509_cert_secondary",
      "scim_enabled",
    ]);
    const missing = await post(configsPath(org.id), {}, { token: admin.accessToken });
    expectProblem(missing, 400, "validation_failed");
    expect(errorPaths(missing).sort()).toEqual(["name", "saml_entity_id"]);
    const { results } = await env.DB.prepare("select id from identity_provider_configs where organization_id = ?").bind(org.id).all();
    expect(results).toEqual([]);
  });

  const b64 = () => bareBase64(IDP_CERT);
  it.each([
    ["garbage", "garbage text", "PEM certificate"],
    ["empty", "", "PEM certificate"],
    ["expired", EXPIRED_CERT, "expired on 2021-01-01T00:00:00.000Z"],
    ["RSA 1024", WEAK_RSA1024_CERT, "1024-bit RSA key"],
    ["secp256k1", EC_SECP256K1_CERT, "P-256, P-384 or P-521"],
    ["two certificates", `${IDP_CERT}\n${IDP2_CERT}`, "exactly one"],
    ["text after the block", `${IDP_CERT}\nhello`, "nothing but the PEM block"],
    ["a CSR", IDP_CERT.replaceAll("CERTIFICATE", "CERTIFICATE REQUEST"), "exactly one"],
    ["bad base64", IDP_CERT.replace(/\n(.)/, "\n!$1"), "valid base64"],
    ["truncated", `-----BEGIN CERTIFICATE-----\n${b64().slice(0, 400)}\n-----END CERTIFICATE-----`, "not an X.509 certificate"],
    ["trailing DER bytes", `-----BEGIN CERTIFICATE-----\n${btoa(`${atob(b64())}\u0000\u0000\u0000`)}\n-----END CERTIFICATE-----`, "trailing bytes"],
    ["base64 of random bytes", btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(300)))), "not an X.509 certificate"],
    ["DER SEQUENCE that is not a certificate", btoa("\u0030\u0003\u0002\u0001\u0001"), "not an X.509 certificate"],
    ["too long", "A".repeat(16_385), "at most 16384"],
    ["unterminated PEM", "-----BEGIN CERTIFICATE-----\nMIIB", "PEM certificate"],
  ])("saml_x509_cert: %s is refused with a clear message", async (_, cert, message) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(configsPath(org.id), { name: "x", saml_entity_id: "urn:x", saml_x509_cert: cert }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["saml_x509_cert"]);
    expect(res.body.errors[0].message).toContain(message);
    // The same rule for the secondary, on PATCH and on the shortcut.
    const idp = await createIdp(admin, org.id);
    const res2 = await patch(`${configsPath(org.id)}/${idp.id}`, { saml_x509_cert_secondary: cert }, { token: admin.accessToken });
    expectProblem(res2, 400, "validation_failed");
    expect(errorPaths(res2)).toEqual(["saml_x509_cert_secondary"]);
    const res3 = await post(samlSsoPath(org.id), { entity_id: "urn:x", x509_cert: cert }, { token: admin.accessToken });
    expectProblem(res3, 400, "validation_failed");
    expect(errorPaths(res3)).toEqual(["x509_cert"]);
  });

  it("a pasted private key is refused and never echoed or stored", async () => {
    const { admin, org } = await adminAndOrg();
    for (const cert of [IDP_KEY, `${IDP_CERT}\n${IDP_KEY}`, IDP_KEY.replaceAll("PRIVATE KEY", "RSA PRIVATE KEY")]) {
      const res = await post(configsPath(org.id), { name: "x", saml_entity_id: "urn:x", saml_x509_cert: cert }, { token: admin.accessToken });
      expectProblem(res, 400, "validation_failed");
      expect(res.body.errors[0].message).toContain("private key");
      expect(res.text).not.toContain(bareBase64(IDP_KEY).slice(0, 40));
    }
    const { results } = await env.DB.prepare("select id from identity_provider_configs where organization_id = ?").bind(org.id).all();
    expect(results).toEqual([]);
  });

  it("the same certificate as primary and secondary is refused", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      configsPath(org.id),
      { name: "x", saml_entity_id: "urn:x", saml_x509_cert: IDP_CERT, saml_x509_cert_secondary: bareBase64(IDP_CERT) },
      { token: admin.accessToken },
    );
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["saml_x509_cert_secondary"]);
    const idp = await createIdp(admin, org.id, { saml_x509_cert: IDP_CERT, saml_x509_cert_secondary: IDP2_CERT });
    const res2 = await patch(`${configsPath(org.id)}/${idp.id}`, { saml_x509_cert: IDP2_CERT }, { token: admin.accessToken });
    expectProblem(res2, 400, "validation_failed");
    expect(errorPaths(res2)).toEqual(["saml_x509_cert"]);
  });

  it.each(
    [
      ["not a url", "spaces"],
      ["idp.example.com/sso", "absolute"],
      ["javascript:alert(1)", "https"],
      ["ftp://idp.example.com/sso", "https"],
      ["https://user:pw@idp.example.com/sso", "credentials"],
      ["https://idp.example.com/sso#frag", "fragment"],
      ["https:///sso", "host"],
      ["https://idp.exam\nple.com", "spaces"],
      [`https://idp.example.com/${"a".repeat(2048)}`, "2048"],
    ].map(([url, why]) => [JSON.stringify(url!.slice(0, 40)), url!, why!] as const),
  )("saml_sso_url %s is refused", async (_, url, why) => {
    const { admin, org } = await adminAndOrg();
    const res = await post(configsPath(org.id), { name: "x", saml_entity_id: "urn:x", saml_sso_url: url }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["saml_sso_url"]);
    expect(res.body.errors[0].message).toContain(why);
  });

  it("http SSO URLs are refused outside development, on every write", async () => {
    const { admin, org } = await adminAndOrg();
    const opts = { token: admin.accessToken, env: { ENVIRONMENT: "test" } };
    const res = await api("POST", configsPath(org.id), { ...opts, body: { name: "x", saml_entity_id: "urn:x", saml_sso_url: "http://idp.example.com/sso" } });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["saml_sso_url"]);
    expect(res.body.errors[0].message).toContain("https");
    const idp = await createIdp(admin, org.id);
    expectProblem(
      await api("PATCH", `${configsPath(org.id)}/${idp.id}`, { ...opts, body: { saml_sso_url: "http://idp.example.com/sso" } }),
      400,
      "validation_failed",
    );
    const short = await api("POST", samlSsoPath(org.id), { ...opts, body: { entity_id: "urn:x", sso_url: "http://idp.example.com/sso" } });
    expectProblem(short, 400, "validation_failed");
    expect(errorPaths(short)).toEqual(["sso_url"]);
    expect(
      (await api("POST", configsPath(org.id), { ...opts, body: { name: "x", saml_entity_id: "urn:x", saml_sso_url: "https://idp.example.com/sso" } })).status,
    ).toBe(201);
  });

  it("PATCH validates its fields; promote cannot be combined with a certificate", async () => {
    const { admin, org } = await adminAndOrg();
    const idp = await createIdp(admin, org.id, { saml_x509_cert: IDP_CERT, saml_x509_cert_secondary: IDP2_CERT });
    const path = `${configsPath(org.id)}/${idp.id}`;
    const res = await patch(path, { name: null, saml_entity_id: "", allow_sha1: "no", promote_secondary_cert: false }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["allow_sha1", "name", "promote_secondary_cert", "saml_entity_id"]);
    const combined = await patch(path, { promote_secondary_cert: true, saml_x509_cert: IDP2_CERT }, { token: admin.accessToken });
    expectProblem(combined, 400, "validation_failed");
    expect(errorPaths(combined)).toEqual(["promote_secondary_cert"]);
    expect((await get(path, { token: admin.accessToken })).body).toEqual(idp);
  });

  it("saml-sso validates its body: entity_id is required", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(samlSsoPath(org.id), { sso_url: "nope", x509_cert: "nope" }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["entity_id", "sso_url", "x509_cert"]);
    expectProblem(await post(samlSsoPath(org.id), { entity_id: "a\nb" }, { token: admin.accessToken }), 400, "validation_failed");
    expectProblem(await api("POST", samlSsoPath(org.id), { token: admin.accessToken }), 400, "validation_failed");
  });

  it("unknown and malformed config ids are 404 on every id route", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    for (const id of [newId("identityProvider"), "nope", "idp_", newId("proxy")]) {
      expectProblem(await get(`${configsPath(org.id)}/${id}`, t), 404, "not_found");
      expectProblem(await patch(`${configsPath(org.id)}/${id}`, { name: "x" }, t), 404, "not_found");
      expectProblem(await del(`${configsPath(org.id)}/${id}`, t), 404, "not_found");
    }
  });

  it("a bad page_size or page token is 400; a token of another organization is refused", async () => {
    const { admin, org } = await adminAndOrg();
    const other = await createOrg(admin);
    for (let i = 0; i < 3; i++) await createIdp(admin, other.id);
    const page = await get(`${configsPath(other.id)}?page_size=1`, { token: admin.accessToken });
    expect(page.body.next_page_token).not.toBe("");
    expectProblem(await get(`${configsPath(org.id)}?page_size=0`, { token: admin.accessToken }), 400, "validation_failed");
    expectProblem(await get(`${configsPath(org.id)}?page_token=garbage`, { token: admin.accessToken }), 400, "invalid_page_token");
    expectProblem(
      await get(`${configsPath(org.id)}?page_token=${encodeURIComponent(page.body.next_page_token)}`, { token: admin.accessToken }),
      400,
      "invalid_page_token",
    );
  });

  it("an inactive organization is read-only: writes are 409, reads work", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const idp = await createIdp(admin, org.id);
    await post(samlSsoPath(org.id), { entity_id: "urn:x" }, t);
    expect((await patch(`/v1/organizations/${org.id}`, { active: false }, t)).status).toBe(200);
    expectProblem(await post(configsPath(org.id), { name: "late", saml_entity_id: "urn:x" }, t), 409, "organization_inactive");
    expectProblem(await patch(`${configsPath(org.id)}/${idp.id}`, { name: "x" }, t), 409, "organization_inactive");
    expectProblem(await del(`${configsPath(org.id)}/${idp.id}`, t), 409, "organization_inactive");
    expectProblem(await post(samlSsoPath(org.id), { entity_id: "urn:y" }, t), 409, "organization_inactive");
    expectProblem(await del(samlSsoPath(org.id), t), 409, "organization_inactive");
    expect((await get(configsPath(org.id), t)).body.items.length).toBe(2);
    expect((await get(`${configsPath(org.id)}/${idp.id}`, t)).status).toBe(200);
  });
});

describe("security", () => {
  async function setup() {
    const { admin, org } = await adminAndOrg();
    const idp = await createIdp(admin, org.id, { saml_x509_cert: IDP_CERT });
    return { admin, org, idp };
  }

  const routes = (orgId: string, id: string): [string, string, unknown?][] => [
    ["GET", configsPath(orgId)],
    ["POST", configsPath(orgId), { name: "x", saml_entity_id: "urn:x" }],
    ["GET", `${configsPath(orgId)}/${id}`],
    ["PATCH", `${configsPath(orgId)}/${id}`, { name: "x" }],
    ["DELETE", `${configsPath(orgId)}/${id}`],
    ["POST", samlSsoPath(orgId), { entity_id: "urn:x" }],
    ["DELETE", samlSsoPath(orgId)],
  ];

  it("every route: 401 without a credential", async () => {
    const { org, idp } = await setup();
    for (const [method, path, body] of routes(org.id, idp.id)) expectProblem(await api(method, path, { body }), 401, "unauthenticated");
  });

  it("every route: the built-in user role is 403 (it lacks sso:*)", async () => {
    const { org, idp } = await setup();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    for (const [method, path, body] of routes(org.id, idp.id)) {
      const res = await api(method, path, { body, token: member.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.body.required_permission).toMatch(/^sso:(read|write)$/);
    }
    expect(await row(idp.id)).not.toBeNull();
  });

  it("a custom role with sso:read only may read but not write", async () => {
    const { admin, org, idp } = await setup();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: unique("ssoview").slice(0, 30), permissions: ["sso:read"] },
      { token: admin.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const viewer = await createUser();
    await addMemberDirect(org.id, viewer, role.body.name);
    for (const [method, path, body] of routes(org.id, idp.id)) {
      const res = await api(method, path, { body, token: viewer.accessToken });
      if (method === "GET") expect(res.status, res.text).toBe(200);
      else expectProblem(res, 403, "forbidden");
    }
  });

  it("every route: a PAT without the scope is 403 insufficient_scope", async () => {
    const { admin, org, idp } = await setup();
    const members = await createPat(admin, ["organization_member:write", "organization_integration:write"]);
    const reader = await createPat(admin, ["organization:read"]);
    for (const [method, path, body] of routes(org.id, idp.id)) {
      const res = await api(method, path, { body, token: members.token });
      expectProblem(res, 403, "insufficient_scope");
      expect(res.body.required_scope).toBe(method === "GET" ? "organization:read" : "organization:write");
      if (method !== "GET") expectProblem(await api(method, path, { body, token: reader.token }), 403, "insufficient_scope");
    }
  });

  it("another organization's config is 404 on every id route and unchanged", async () => {
    const a = await setup();
    const b = await setup();
    const t = { token: a.admin.accessToken };
    expectProblem(await get(`${configsPath(a.org.id)}/${b.idp.id}`, t), 404, "not_found");
    expectProblem(await patch(`${configsPath(a.org.id)}/${b.idp.id}`, { name: "stolen", saml_x509_cert: IDP2_CERT }, t), 404, "not_found");
    expectProblem(await del(`${configsPath(a.org.id)}/${b.idp.id}`, t), 404, "not_found");
    expect((await get(`${configsPath(b.org.id)}/${b.idp.id}`, { token: b.admin.accessToken })).body).toEqual(b.idp);
    expect((await get(configsPath(a.org.id), t)).body.items.map((i: Idp) => i.id)).toEqual([a.idp.id]);
    // B's default config is not A's to replace or delete.
    const bDefault = await post(samlSsoPath(b.org.id), { entity_id: "urn:b" }, { token: b.admin.accessToken });
    expectProblem(await del(samlSsoPath(a.org.id), t), 404, "not_found");
    expect((await post(samlSsoPath(a.org.id), { entity_id: "urn:a" }, t)).status).toBe(201);
    expect(await row(bDefault.body.id)).toMatchObject({ saml_entity_id: "urn:b", organization_id: b.org.id });
  });

  it("an outsider gets 404 on every route of an organization it is not in", async () => {
    const { org, idp } = await setup();
    const outsider = await createUser();
    await createOrg(outsider);
    for (const [method, path, body] of routes(org.id, idp.id)) {
      expectProblem(await api(method, path, { body, token: outsider.accessToken }), 404, "not_found");
    }
  });

  it("deleting the organization removes its configs", async () => {
    const { admin, org, idp } = await setup();
    expect((await del(`/v1/organizations/${org.id}`, { token: admin.accessToken })).status).toBe(204);
    expect(await row(idp.id)).toBeNull();
  });
});
