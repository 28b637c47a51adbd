#!/usr/bin/env node
/**
 * `npm run dev:idp -- --idp <config id> --email <address>`: a local SAML identity provider for
 * `npm run dev`, to complete a sign-in without Okta or Entra. It starts the login at the API (as
 * a browser would), reads the AuthnRequest's ID from the redirect, issues an Assertion for the
 * address signed with the test-only key in test/fixtures/saml (xml-crypto, RSA-SHA256), posts it
 * to the ACS, and exchanges the code from the ACS's redirect for the session tokens.
 *
 * The config must trust that key and issuer: create it with the fixture certificate and the
 * issuer this script uses (default https://idp.dev.test), e.g.
 *   {"name":"Dev IdP","saml_entity_id":"https://idp.dev.test","saml_sso_url":"http://127.0.0.1:8787/dev-idp",
 *    "saml_x509_cert":"<test/fixtures/saml/idp-cert.pem>"}
 * Options: --api (default http://127.0.0.1:8787), --issuer, --relay-state, --callback-only (print the
 * callback URL with its unspent code and stop, for a browser to open: npm run test:browser does).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { inflateRawSync } from "node:zlib";
import { SignedXml } from "xml-crypto";

const { values: args } = parseArgs({
  options: {
    api: { type: "string", default: "http://127.0.0.1:8787" },
    idp: { type: "string" },
    email: { type: "string" },
    issuer: { type: "string", default: "https://idp.dev.test" },
    "relay-state": { type: "string" },
    "callback-only": { type: "boolean", default: false },
  },
  strict: true,
});
if (!args.idp || !args.email) {
  console.error("usage: npm run dev:idp -- --idp <identity provider config id> --email <address> [--api URL] [--issuer ENTITY_ID]");
  process.exit(2);
}
const api = args.api.replace(/\/$/, "");
const root = path.resolve(import.meta.dirname, "..");
const key = readFileSync(path.join(root, "test/fixtures/saml/idp-key.pem"), "utf8");
const cert = readFileSync(path.join(root, "test/fixtures/saml/idp-cert.pem"), "utf8");
const esc = (v) => v.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const id = () => `_${crypto.randomUUID().replace(/-/g, "")}`;
const at = (ms) => new Date(ms).toISOString();

// 1. Start the login as a browser would; the redirect carries the deflated AuthnRequest.
const loginUrl = `${api}/v1/sso/saml/${args.idp}/login${args["relay-state"] ? `?relay_state=${encodeURIComponent(args["relay-state"])}` : ""}`;
const login = await fetch(loginUrl, { redirect: "manual" });
if (login.status !== 302) throw new Error(`login: ${login.status} ${await login.text()}`);
const samlRequest = new URL(login.headers.get("location")).searchParams.get("SAMLRequest");
const request = inflateRawSync(Buffer.from(samlRequest, "base64")).toString("utf8");
const requestId = /\sID="([^"]+)"/.exec(request)[1];
const acs = /AssertionConsumerServiceURL="([^"]+)"/.exec(request)[1];
const audience = /<(?:saml:)?Issuer[^>]*>([^<]+)</.exec(request)[1];
console.log(`AuthnRequest ${requestId} for ${audience}`);

// 2. The Response with a signed Assertion, as Okta and Entra send it.
const now = Date.now();
const assertionId = id();
const assertion =
  `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${assertionId}" IssueInstant="${at(now)}" Version="2.0">` +
  `<saml:Issuer>${esc(args.issuer)}</saml:Issuer>` +
  `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(args.email)}</saml:NameID>` +
  `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="${esc(requestId)}" NotOnOrAfter="${at(now + 300_000)}" Recipient="${esc(acs)}"/></saml:SubjectConfirmation></saml:Subject>` +
  `<saml:Conditions NotBefore="${at(now - 60_000)}" NotOnOrAfter="${at(now + 300_000)}"><saml:AudienceRestriction><saml:Audience>${esc(audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
  `<saml:AuthnStatement AuthnInstant="${at(now)}" SessionIndex="${assertionId}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
  `<saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>${esc(args.email)}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>` +
  `</saml:Assertion>`;
const response =
  `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" Destination="${esc(acs)}" ID="${id()}" InResponseTo="${esc(requestId)}" IssueInstant="${at(now)}" Version="2.0">` +
  `<saml:Issuer>${esc(args.issuer)}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>${assertion}</samlp:Response>`;
const xpath = "/*[local-name(.)='Response']/*[local-name(.)='Assertion']";
const sig = new SignedXml({
  privateKey: key,
  publicCert: cert,
  signatureAlgorithm: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
  canonicalizationAlgorithm: "http://www.w3.org/2001/10/xml-exc-c14n#",
});
sig.addReference({
  xpath,
  digestAlgorithm: "http://www.w3.org/2001/04/xmlenc#sha256",
  transforms: ["http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"],
});
sig.computeSignature(response, { prefix: "ds", location: { reference: `${xpath}/*[local-name(.)='Issuer']`, action: "after" } });

// 3. Post it to the ACS as the browser would; the ACS answers with a redirect carrying a code.
const form = new URLSearchParams({ SAMLResponse: Buffer.from(sig.getSignedXml(), "utf8").toString("base64") });
const posted = await fetch(acs, { method: "POST", body: form, redirect: "manual" });
if (posted.status !== 303) throw new Error(`acs: ${posted.status} ${await posted.text()}`);
const callback = new URL(posted.headers.get("location"));
if (args["callback-only"]) {
  console.log(callback.toString());
  process.exit(0);
}
console.log(`ACS redirected to ${callback.origin}${callback.pathname} with a single-use code (Server-Timing: ${posted.headers.get("server-timing")})`);

// 4. What the front end at APP_BASE_URL would do with the code.
const exchanged = await fetch(`${api}/v1/auth/sso/exchange`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ code: callback.searchParams.get("code") }),
});
const body = await exchanged.json();
if (exchanged.status !== 200) throw new Error(`exchange: ${exchanged.status} ${JSON.stringify(body)}`);
console.log(JSON.stringify({ user: body.user, access_token: `${body.access_token.slice(0, 24)}…` }, null, 2));
