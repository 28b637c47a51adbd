import { toHex } from "../lib/encoding";
import { xmlEscape } from "./metadata";

/**
 * The AuthnRequest of an SP-initiated login, for the HTTP-Redirect binding (SAML bindings 3.4):
 * deflated (raw DEFLATE, no zlib header), base64, as the `SAMLRequest` query parameter of the
 * IdP's SSO URL. Unsigned: our metadata says `AuthnRequestsSigned="false"`, and what protects the
 * login is the signed Response and its InResponseTo, which must name an ID we issued.
 */
const PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion";
const HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/** Our request IDs: `_` and 40 hex digits (an xs:ID must not start with a digit). */
export const REQUEST_ID = /^_[0-9a-f]{40}$/;

export const newRequestId = () => `_${toHex(crypto.getRandomValues(new Uint8Array(20)))}`;

/** xs:dateTime in UTC, whole seconds: some IdPs refuse fractional seconds. */
export const samlInstant = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function authnRequestXml(p: { id: string; now: number; destination: string; acsUrl: string; spEntityId: string }): string {
  return (
    `<samlp:AuthnRequest xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="${p.id}" Version="2.0" IssueInstant="${samlInstant(p.now)}"` +
    ` Destination="${xmlEscape(p.destination)}" AssertionConsumerServiceURL="${xmlEscape(p.acsUrl)}" ProtocolBinding="${HTTP_POST}">` +
    `<saml:Issuer>${xmlEscape(p.spEntityId)}</saml:Issuer>` +
    `<samlp:NameIDPolicy Format="${NAMEID_EMAIL}" AllowCreate="true"/>` +
    `</samlp:AuthnRequest>`
  );
}

async function deflateRaw(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The IdP URL to redirect the browser to; the IdP's own query parameters are kept. */
export async function authnRequestRedirect(p: {
  id: string;
  now: number;
  ssoUrl: string;
  acsUrl: string;
  spEntityId: string;
  relayState?: string;
}): Promise<string> {
  const xml = authnRequestXml({ id: p.id, now: p.now, destination: p.ssoUrl, acsUrl: p.acsUrl, spEntityId: p.spEntityId });
  const url = new URL(p.ssoUrl);
  url.searchParams.append("SAMLRequest", base64(await deflateRaw(xml)));
  if (p.relayState) url.searchParams.append("RelayState", p.relayState);
  return url.toString();
}
