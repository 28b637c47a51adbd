/**
 * An independent SAML identity provider for the tests. It builds Responses and Assertions as
 * text and signs them with xml-crypto's SignedXml, which hashes and signs through node:crypto
 * (`createSign` with the PEM private key) and builds its own References and SignedInfo. The
 * verifier under test takes none of that path: it checks digests and signatures with WebCrypto
 * against the configured certificate, with its own reference rules. `signCanonical` is a second,
 * fully separate signer: it emits XML that is already in exclusive-canonical form and signs it
 * with WebCrypto, so no canonicalizer is shared with the verifier at all.
 *
 * Test-only keys: test/fixtures/saml (see its README).
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { SignedXml } from "xml-crypto";
import { newId } from "../../src/lib/ids";
import { spUrls } from "../../src/sso/metadata";
import { IDP2_CERT, IDP2_KEY, IDP_CERT, IDP_KEY } from "../fixtures/saml";
import { api, get, post, type ApiResponse, type RequestOptions } from "./client";
import { createOrg, createVerifiedUser, unique, type TestUser } from "./factories";

export const SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol";
export const SAML = "urn:oasis:names:tc:SAML:2.0:assertion";
export const DS = "http://www.w3.org/2000/09/xmldsig#";
export const NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

export const ALGS = {
  rsaSha256: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
  rsaSha512: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
  rsaSha1: "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
  ecdsaSha256: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
  sha256: "http://www.w3.org/2001/04/xmlenc#sha256",
  sha512: "http://www.w3.org/2001/04/xmlenc#sha512",
  sha1: "http://www.w3.org/2000/09/xmldsig#sha1",
  excC14n: "http://www.w3.org/2001/10/xml-exc-c14n#",
  excC14nWithComments: "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
  inclC14n: "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
  enveloped: "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
} as const;

export interface IdpKeyPair {
  key: string;
  cert: string;
}
export const IDP: IdpKeyPair = { key: IDP_KEY, cert: IDP_CERT };
export const IDP2: IdpKeyPair = { key: IDP2_KEY, cert: IDP2_CERT };

const esc = (v: string) => v.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
export const instant = (ms: number) => new Date(ms).toISOString();
export const randomId = () => `_${crypto.randomUUID().replace(/-/g, "")}`;

export interface AssertionParams {
  id?: string;
  issuer: string;
  audience: string | null;
  recipient: string;
  /** null: no InResponseTo on the SubjectConfirmationData (IdP-initiated). */
  inResponseTo: string | null;
  /** Raw XML content of the NameID (already escaped): lets a test put a comment inside. */
  nameIdXml?: string;
  nameId?: string;
  nameIdFormat?: string | null;
  attributes?: Record<string, string[]>;
  now?: number;
  notBefore?: number;
  notOnOrAfter?: number;
  scNotOnOrAfter?: number;
  /** Extra XML placed at the end of the Assertion. */
  extra?: string;
}

export function assertionXml(p: AssertionParams): string {
  const now = p.now ?? Date.now();
  const id = p.id ?? randomId();
  const nameId = p.nameIdXml ?? esc(p.nameId ?? "");
  const format = p.nameIdFormat === undefined ? NAMEID_EMAIL : p.nameIdFormat;
  const irt = p.inResponseTo === null ? "" : ` InResponseTo="${esc(p.inResponseTo)}"`;
  const attrs = Object.entries(p.attributes ?? {});
  return (
    `<saml:Assertion xmlns:saml="${SAML}" ID="${id}" IssueInstant="${instant(now)}" Version="2.0">` +
    `<saml:Issuer>${esc(p.issuer)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID${format === null ? "" : ` Format="${format}"`}>${nameId}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">` +
    `<saml:SubjectConfirmationData${irt} NotOnOrAfter="${instant(p.scNotOnOrAfter ?? now + 5 * 60_000)}" Recipient="${esc(p.recipient)}"></saml:SubjectConfirmationData>` +
    `</saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${instant(p.notBefore ?? now - 60_000)}" NotOnOrAfter="${instant(p.notOnOrAfter ?? now + 5 * 60_000)}">` +
    (p.audience === null ? "" : `<saml:AudienceRestriction><saml:Audience>${esc(p.audience)}</saml:Audience></saml:AudienceRestriction>`) +
    `</saml:Conditions>` +
    `<saml:AuthnStatement AuthnInstant="${instant(now)}" SessionIndex="${id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attrs.length === 0
      ? ""
      : `<saml:AttributeStatement>${attrs
          .map(
            ([name, values]) =>
              `<saml:Attribute Name="${esc(name)}">${values.map((v) => `<saml:AttributeValue>${esc(v)}</saml:AttributeValue>`).join("")}</saml:Attribute>`,
          )
          .join("")}</saml:AttributeStatement>`) +
    (p.extra ?? "") +
    `</saml:Assertion>`
  );
}

export interface ResponseParams {
  id?: string;
  issuer?: string | null;
  /** null: no Destination attribute. */
  destination: string | null;
  inResponseTo: string | null;
  status?: string;
  now?: number;
  /** Raw XML placed right after the Issuer (e.g. an Extensions element). */
  afterIssuer?: string;
}

export function responseXml(p: ResponseParams, body: string): string {
  const now = p.now ?? Date.now();
  const dest = p.destination === null ? "" : ` Destination="${esc(p.destination)}"`;
  const irt = p.inResponseTo === null ? "" : ` InResponseTo="${esc(p.inResponseTo)}"`;
  return (
    `<samlp:Response xmlns:samlp="${SAMLP}" xmlns:saml="${SAML}"${dest} ID="${p.id ?? randomId()}"${irt} IssueInstant="${instant(now)}" Version="2.0">` +
    (p.issuer === null ? "" : `<saml:Issuer>${esc(p.issuer ?? "")}</saml:Issuer>`) +
    (p.afterIssuer ?? "") +
    `<samlp:Status><samlp:StatusCode Value="${p.status ?? "urn:oasis:names:tc:SAML:2.0:status:Success"}"/></samlp:Status>` +
    body +
    `</samlp:Response>`
  );
}

export interface SignOptions {
  keys?: IdpKeyPair;
  signatureAlgorithm?: string;
  digestAlgorithm?: string;
  /** The c14n transform of the Reference (default exclusive). */
  transform?: string;
  canonicalization?: string;
  /** Whether KeyInfo carries the signing certificate (the verifier must ignore it either way). */
  keyInfo?: boolean;
  /** InclusiveNamespaces PrefixList of the Reference's exclusive c14n (Okta sends `xs`). */
  inclusivePrefixes?: string[];
}

/**
 * Signs the element `xpath` selects (it must carry an ID), placing the enveloped signature after
 * its Issuer, as SAML's schema wants.
 */
export function signAt(xml: string, xpath: string, o: SignOptions = {}): string {
  const keys = o.keys ?? IDP;
  const sig = new SignedXml({
    privateKey: keys.key,
    publicCert: o.keyInfo === false ? undefined : keys.cert,
    signatureAlgorithm: o.signatureAlgorithm ?? ALGS.rsaSha256,
    canonicalizationAlgorithm: o.canonicalization ?? ALGS.excC14n,
  });
  sig.addReference({
    xpath,
    digestAlgorithm: o.digestAlgorithm ?? ALGS.sha256,
    transforms: [ALGS.enveloped, o.transform ?? ALGS.excC14n],
    inclusiveNamespacesPrefixList: o.inclusivePrefixes,
  });
  sig.computeSignature(xml, { prefix: "ds", location: { reference: `${xpath}/*[local-name(.)='Issuer']`, action: "after" } });
  return sig.getSignedXml();
}

export const ASSERTION_XPATH = "/*[local-name(.)='Response']/*[local-name(.)='Assertion']";
export const RESPONSE_XPATH = "/*[local-name(.)='Response']";
export const signAssertion = (xml: string, o?: SignOptions) => signAt(xml, ASSERTION_XPATH, o);
export const signResponse = (xml: string, o?: SignOptions) => signAt(xml, RESPONSE_XPATH, o);

/** Base64 of the UTF-8 XML: the SAMLResponse form field. */
export function encodeResponse(xml: string): string {
  let bin = "";
  for (const b of new TextEncoder().encode(xml)) bin += String.fromCharCode(b);
  return btoa(bin);
}

// ---- A signer that shares nothing with the verifier's canonicalization ----------------------

function pemBytes(pem: string): Uint8Array {
  const b64 = pem.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}
const b64 = (bytes: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

/**
 * Signs an element given as text that is ALREADY in exclusive canonical form on its own (every
 * namespace it uses declared on it, attributes sorted, no whitespace between tags, `<a></a>`
 * rather than `<a/>`), by digesting and signing the strings themselves with WebCrypto. The
 * `<ds:Signature>` is inserted right after the element's first child (its Issuer). Returns the
 * signed element's text.
 */
export async function signCanonical(
  element: string,
  id: string,
  key: { pkcs8: string; kind: "RSA" | "EC" },
  o: { signatureAlgorithm?: string; digestAlgorithm?: string } = {},
): Promise<string> {
  const sigAlg = o.signatureAlgorithm ?? (key.kind === "EC" ? ALGS.ecdsaSha256 : ALGS.rsaSha256);
  const digestAlg = o.digestAlgorithm ?? ALGS.sha256;
  const hash = digestAlg === ALGS.sha512 ? "SHA-512" : "SHA-256";
  const digest = b64(await crypto.subtle.digest(hash, new TextEncoder().encode(element)));
  const signedInfo =
    `<ds:SignedInfo xmlns:ds="${DS}">` +
    `<ds:CanonicalizationMethod Algorithm="${ALGS.excC14n}"></ds:CanonicalizationMethod>` +
    `<ds:SignatureMethod Algorithm="${sigAlg}"></ds:SignatureMethod>` +
    `<ds:Reference URI="#${id}"><ds:Transforms><ds:Transform Algorithm="${ALGS.enveloped}"></ds:Transform><ds:Transform Algorithm="${ALGS.excC14n}"></ds:Transform></ds:Transforms>` +
    `<ds:DigestMethod Algorithm="${digestAlg}"></ds:DigestMethod><ds:DigestValue>${digest}</ds:DigestValue></ds:Reference>` +
    `</ds:SignedInfo>`;
  const params = key.kind === "EC" ? { name: "ECDSA", namedCurve: "P-256" } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const priv = await crypto.subtle.importKey("pkcs8", pemBytes(key.pkcs8), params, false, ["sign"]);
  const value = b64(
    await crypto.subtle.sign(
      key.kind === "EC" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" },
      priv,
      new TextEncoder().encode(signedInfo),
    ),
  );
  const signature = `<ds:Signature xmlns:ds="${DS}">${signedInfo}<ds:SignatureValue>${value}</ds:SignatureValue></ds:Signature>`;
  const afterFirstChild = element.indexOf("</saml:Issuer>") + "</saml:Issuer>".length;
  return element.slice(0, afterFirstChild) + signature + element.slice(afterFirstChild);
}

// ---- An ECDSA P-256 IdP (TEST-ONLY key, generated once with OpenSSL 3.0:
// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=EC Test IdP (E2)"`) ----
export const EC_IDP_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEKKmCkEhp4ABlYR2
ID+zz22NapOfFTmQElvToukG4mShRANCAARk8V6mi5OW8BrHemlQZTdXL0++Mhzl
h/Yojq3eTOZ+SFxkCzgfo8umpuY2tNu82+EJfxZPM31E11bEr+GQrWTP
-----END PRIVATE KEY-----`;
export const EC_IDP_CERT = `-----BEGIN CERTIFICATE-----
MIIBizCCATGgAwIBAgIUHQrFabewTV0fzzxMD9w+/3Bi888wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQRUMgVGVzdCBJZFAgKEUyKTAeFw0yNjEyMDEwMzU1MDJaFw0z
NjExMjgwMzU1MDJaMBsxGTAXBgNVBAMMEEVDIFRlc3QgSWRQIChFMikwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARk8V6mi5OW8BrHemlQZTdXL0++Mhzlh/Yojq3e
TOZ+SFxkCzgfo8umpuY2tNu82+EJfxZPM31E11bEr+GQrWTPo1MwUTAdBgNVHQ4E
FgQUHwgW8Vj+2aiWAV2hal9Leazh7uswHwYDVR0jBBgwFoAUHwgW8Vj+2aiWAV2h
al9Leazh7uswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiByJutq
caojLAgrEBk3XiZAcXj2otsq6HEw66UUY7vXrAIhAJ+4OQUwJZ3reIjEPgD3gfXx
EsWNd4QQA5zuAkXPX8KI
-----END CERTIFICATE-----`;

// ---- The SP side of a test: an organization, its verified domain, an IdP config ------------

export interface Sp {
  orgId: string;
  admin: TestUser;
  idpId: string;
  domain: string;
  idpEntityId: string;
  ssoUrl: string;
  spEntityId: string;
  acsUrl: string;
  loginPath: string;
  acsPath: string;
}

export interface SpOptions {
  jit?: boolean;
  cert?: string | null;
  secondary?: string | null;
  allowIdpInitiated?: boolean;
  allowSha1?: boolean;
  ssoUrl?: string | null;
  /** Bind the domain to this config (identity_provider_config_id), or to another id. */
  domainConfig?: "this" | "none" | string;
  domainVerified?: boolean;
}

/** Seeded directly through D1 (the domain and config routes have their own tests). */
export async function setupSp(o: SpOptions = {}): Promise<Sp> {
  const admin = await createVerifiedUser();
  const org = await createOrg(admin);
  const idpId = newId("identityProvider");
  const domain = `${unique("corp").toLowerCase()}.test`;
  const idpEntityId = `https://idp.example/${idpId}`;
  const ssoUrl = o.ssoUrl === undefined ? "https://idp.example/sso/saml?tenant=t1" : o.ssoUrl;
  const now = Date.now();
  await env.DB.prepare(
    "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, saml_sso_url, saml_x509_cert, saml_x509_cert_secondary, allow_idp_initiated, allow_sha1, is_default, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
  )
    .bind(
      idpId,
      org.id,
      "Test IdP",
      idpEntityId,
      ssoUrl,
      o.cert === undefined ? IDP.cert : o.cert,
      o.secondary ?? null,
      o.allowIdpInitiated ? 1 : 0,
      o.allowSha1 ? 1 : 0,
      now,
      now,
    )
    .run();
  const bound = o.domainConfig === undefined || o.domainConfig === "none" ? null : o.domainConfig === "this" ? idpId : o.domainConfig;
  await env.DB.prepare(
    "insert into domains (id, organization_id, domain, verification_token, verified_at, jit_provisioning_enabled, sso_enforcement, identity_provider_config_id, created_at, updated_at) values (?, ?, ?, ?, ?, ?, 'optional', ?, ?, ?)",
  )
    .bind(newId("domain"), org.id, domain, unique("tok"), o.domainVerified === false ? null : now, o.jit === false ? 0 : 1, bound, now, now)
    .run();
  const urls = spUrls({ apiBaseUrl: "http://api.test" }, idpId);
  return {
    orgId: org.id,
    admin,
    idpId,
    domain,
    idpEntityId,
    ssoUrl: ssoUrl ?? "",
    spEntityId: urls.sp_entity_id,
    acsUrl: urls.acs_url,
    loginPath: `/v1/sso/saml/${idpId}/login`,
    acsPath: `/v1/sso/saml/${idpId}/acs`,
  };
}

async function inflateRaw(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Response(stream).text();
}

/** GET …/login, and the AuthnRequest it sent the browser off with. */
export async function startLogin(sp: Sp, relayState?: string) {
  const q = relayState === undefined ? "" : `?relay_state=${encodeURIComponent(relayState)}`;
  const res = await get(`${sp.loginPath}${q}`);
  expect(res.status, res.text).toBe(302);
  const location = new URL(res.headers.get("location")!);
  const request = await inflateRaw(Uint8Array.from(atob(location.searchParams.get("SAMLRequest")!), (c) => c.charCodeAt(0)));
  const requestId = /\bID="([^"]+)"/.exec(request)![1]!;
  return { res, location, request, requestId, relayState: location.searchParams.get("RelayState") };
}

export interface IssueOptions extends Partial<AssertionParams> {
  email?: string;
  sign?: "assertion" | "response" | "both" | "none";
  signing?: SignOptions;
  response?: Partial<ResponseParams>;
}

/** A Response as the configured IdP would send it for `email`, answering `inResponseTo`. */
export function issue(sp: Sp, inResponseTo: string | null, o: IssueOptions = {}): string {
  const { email, sign = "assertion", signing, response, ...a } = o;
  const assertion = assertionXml({
    issuer: sp.idpEntityId,
    audience: sp.spEntityId,
    recipient: sp.acsUrl,
    inResponseTo,
    nameId: email,
    ...a,
  });
  let xml = responseXml({ issuer: sp.idpEntityId, destination: sp.acsUrl, inResponseTo, ...response }, assertion);
  if (sign === "assertion" || sign === "both") xml = signAssertion(xml, signing);
  if (sign === "response" || sign === "both") xml = signResponse(xml, signing);
  return xml;
}

/** Posts to the ACS as a browser does (HTTP-POST binding). */
export function postAcs(
  sp: Sp | string,
  xmlOrBase64: string,
  o: { relayState?: string; raw?: boolean; env?: RequestOptions["env"] } = {},
): Promise<ApiResponse> {
  const form = new URLSearchParams({ SAMLResponse: o.raw ? xmlOrBase64 : encodeResponse(xmlOrBase64) });
  if (o.relayState !== undefined) form.set("RelayState", o.relayState);
  return api("POST", typeof sp === "string" ? sp : sp.acsPath, {
    raw: form.toString(),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    env: o.env,
  });
}

/** The code on the callback URL the ACS redirected to. */
export function callbackOf(res: ApiResponse) {
  expect(res.status, res.text).toBe(303);
  const url = new URL(res.headers.get("location")!);
  return { url, code: url.searchParams.get("code")!, state: url.searchParams.get("state") };
}

export const exchange = (code: string) => post("/v1/auth/sso/exchange", { code });

/** A full SP-initiated sign-in; returns the exchange's token pair. */
export async function signIn(sp: Sp, email: string, o: IssueOptions = {}) {
  const { requestId } = await startLogin(sp);
  const acs = await postAcs(sp, issue(sp, requestId, { email, ...o }));
  const { code } = callbackOf(acs);
  const tokens = await exchange(code);
  expect(tokens.status, tokens.text).toBe(200);
  return { acs, tokens: tokens.body };
}
