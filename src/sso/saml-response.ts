import { DOMParser, type XmlElement, type XmlNode } from "@xmldom/xmldom/lib/dom-parser";
import { ExclusiveCanonicalization, ExclusiveCanonicalizationWithComments } from "xml-crypto/lib/exclusive-canonicalization";
import { parseCertificatePem, type ParsedCertificate } from "./certificate";

/**
 * Verification of a SAML 2.0 Response posted to our ACS (HTTP-POST binding).
 *
 * Parsing (@xmldom/xmldom) and exclusive canonicalization (xml-crypto's ExclusiveCanonicalization)
 * come from maintained libraries; everything else about the XML signature is decided here, on
 * purpose narrowly, because signature wrapping lives in the gap between "a signature in this
 * document is valid" and "the element we read is the one it covers":
 *
 * - The document is one Response holding exactly one Assertion, a direct child of the Response,
 *   and no EncryptedAssertion. No DOCTYPE (so no entities), no processing instructions, no two
 *   elements sharing an ID (ID, Id or id, in any namespace).
 * - Every ds:Signature in the document is a direct child of the Response or of that Assertion, at
 *   most one each; a signature anywhere else (Extensions, Advice, ds:Object, …) is refused, and so
 *   is ds:Object inside a signature.
 * - Each signature has exactly one Reference whose URI is `#` + the ID of its own parent, the
 *   transforms enveloped-signature then exclusive c14n, and algorithms from the allow-list. Every
 *   signature present must verify; at least one must exist. The Assertion we read is then covered:
 *   either it is signed itself or it is the single Assertion inside a signed Response.
 * - The key is only ever the configured certificate (or the secondary one, for rollover). KeyInfo
 *   in the message is ignored.
 * - Values are read from the very DOM nodes that were digested, with their whole text content; a
 *   NameID or attribute value holding a comment or markup is refused (the comment-truncation
 *   attack: `admin@victim.com<!---->.evil.com` digests like `admin@victim.com.evil.com`).
 *
 * Signature values are checked with WebCrypto (RSASSA-PKCS1-v1_5, ECDSA), which xml-crypto's
 * SignedXml cannot do for ECDSA.
 */

export const NS = {
  samlp: "urn:oasis:names:tc:SAML:2.0:protocol",
  saml: "urn:oasis:names:tc:SAML:2.0:assertion",
  ds: "http://www.w3.org/2000/09/xmldsig#",
  ec: "http://www.w3.org/2001/10/xml-exc-c14n#",
} as const;

export const ALG = {
  excC14n: "http://www.w3.org/2001/10/xml-exc-c14n#",
  excC14nWithComments: "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
  enveloped: "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
  sha1: "http://www.w3.org/2000/09/xmldsig#sha1",
  sha256: "http://www.w3.org/2001/04/xmlenc#sha256",
  sha512: "http://www.w3.org/2001/04/xmlenc#sha512",
  rsaSha1: "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
  rsaSha256: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
  rsaSha512: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
  ecdsaSha256: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
} as const;

const DIGESTS: Record<string, { hash: string; sha1?: true }> = {
  [ALG.sha256]: { hash: "SHA-256" },
  [ALG.sha512]: { hash: "SHA-512" },
  [ALG.sha1]: { hash: "SHA-1", sha1: true },
};

const SIGNATURES: Record<string, { key: "RSA" | "EC"; hash: string; sha1?: true }> = {
  [ALG.rsaSha256]: { key: "RSA", hash: "SHA-256" },
  [ALG.rsaSha512]: { key: "RSA", hash: "SHA-512" },
  [ALG.ecdsaSha256]: { key: "EC", hash: "SHA-256" },
  [ALG.rsaSha1]: { key: "RSA", hash: "SHA-1", sha1: true },
};

const SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
export const NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";

/** Clock skew tolerated on every NotBefore / NotOnOrAfter: IdP and Workers clocks drift. */
export const CLOCK_SKEW_MS = 120_000;
/** The decoded XML; real responses are a few KB to ~100 KB (many group attributes). */
export const MAX_RESPONSE_BYTES = 512 * 1024;
/** Nodes in the document: bounds the walk and the canonicalization work. */
const MAX_NODES = 20_000;

/**
 * A refused response. `message` is a short fixed reason, safe to show: it never quotes the XML.
 */
export class SamlError extends Error {}

export interface SamlExpectations {
  /** The IdP's entity id (the config's saml_entity_id). */
  idpEntityId: string;
  /** Ours: the Audience. */
  spEntityId: string;
  /** Ours: the Recipient and Destination. */
  acsUrl: string;
  /** PEM: the configured certificate, then the secondary one during rollover. */
  certificates: string[];
  allowSha1: boolean;
  now: number;
}

export interface VerifiedAssertion {
  assertionId: string;
  /** Of the Response or its bearer SubjectConfirmationData; null for an IdP-initiated response. */
  inResponseTo: string | null;
  /** Lower-cased; null when neither the NameID nor a known attribute holds an address. */
  email: string | null;
  displayName: string | null;
  /** The latest NotOnOrAfter that bounds the assertion: how long its ID must stay spent. */
  expiresAt: number;
  signed: { response: boolean; assertion: boolean };
}

function fail(reason: string): never {
  throw new SamlError(reason);
}

// ---- Entry point ------------------------------------------------------------------------------

export async function verifySamlResponse(samlResponse: string, exp: SamlExpectations): Promise<VerifiedAssertion> {
  const xml = decodeBase64Xml(samlResponse);
  const doc = parseXml(xml);
  const root = doc.documentElement;
  if (!root || !is(root, NS.samlp, "Response")) fail("the document is not a SAML 2.0 Response");
  const response = root as XmlElement;
  const { assertion, signatures } = inspectStructure(doc, response);

  const keys = await importKeys(exp.certificates);
  const signed = { response: false, assertion: false };
  for (const sig of signatures) {
    const parent = sig.parentNode as XmlElement;
    await verifySignature(sig, parent, keys, exp.allowSha1);
    if (parent === response) signed.response = true;
    else signed.assertion = true;
  }
  if (!signed.response && !signed.assertion) fail("neither the Response nor the Assertion is signed");

  return checkConditions(response, assertion, signed, exp);
}

// ---- Decoding and parsing -------------------------------------------------------------------

function decodeBase64Xml(value: string): string {
  const b64 = value.replace(/[\r\n\t ]+/g, "");
  if (b64.length === 0) fail("SAMLResponse is empty");
  if (b64.length > Math.ceil((MAX_RESPONSE_BYTES * 4) / 3) + 4) fail(`SAMLResponse is larger than ${MAX_RESPONSE_BYTES / 1024} KiB`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) fail("SAMLResponse is not valid base64");
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return fail("SAMLResponse is not UTF-8 XML");
  }
}

function parseXml(xml: string) {
  // Refused before parsing: a DTD is how entity expansion and external entities get in, and a
  // SAML response never needs one.
  if (/<!DOCTYPE/i.test(xml) || /<!ENTITY/i.test(xml)) fail("the XML holds a DOCTYPE; DTDs are refused");
  let problem = false;
  const note = () => {
    problem = true;
  };
  let doc: ReturnType<DOMParser["parseFromString"]> | undefined;
  try {
    doc = new DOMParser({ errorHandler: { warning: note, error: note, fatalError: note } }).parseFromString(xml, "text/xml");
  } catch {
    return fail("the XML is not well-formed");
  }
  if (problem || !doc || !doc.documentElement) fail("the XML is not well-formed");
  if (doc.doctype) fail("the XML holds a DOCTYPE; DTDs are refused");
  return doc;
}

const ELEMENT = 1;
const TEXT = 3;
const CDATA = 4;
const PROCESSING_INSTRUCTION = 7;

const is = (n: XmlNode | null | undefined, ns: string, local: string): n is XmlElement =>
  !!n && n.nodeType === ELEMENT && (n as XmlElement).namespaceURI === ns && (n as XmlElement).localName === local;

function childElements(el: XmlElement): XmlElement[] {
  const out: XmlElement[] = [];
  for (let i = 0; i < el.childNodes.length; i++) {
    const c = el.childNodes[i]!;
    if (c.nodeType === ELEMENT) out.push(c as XmlElement);
  }
  return out;
}

const children = (el: XmlElement, ns: string, local: string) => childElements(el).filter((c) => is(c, ns, local));

/** The one child of that name, or none; two is refused (which one would we read?). */
function optionalChild(el: XmlElement, ns: string, local: string, what: string): XmlElement | undefined {
  const found = children(el, ns, local);
  if (found.length > 1) fail(`${what} appears more than once`);
  return found[0];
}

function requiredChild(el: XmlElement, ns: string, local: string, what: string): XmlElement {
  return optionalChild(el, ns, local, what) ?? fail(`${what} is missing`);
}

/** xmldom's getAttribute returns "" for a missing attribute; absent and empty must differ here. */
function attr(el: XmlElement, name: string): string | null {
  return el.getAttributeNode(name)?.value ?? null;
}

/** Text content, refusing anything but text: a comment inside would be dropped from the digest. */
function pureText(el: XmlElement, what: string): string {
  let out = "";
  for (let i = 0; i < el.childNodes.length; i++) {
    const c = el.childNodes[i]!;
    if (c.nodeType !== TEXT && c.nodeType !== CDATA) fail(`${what} holds a comment or markup`);
    out += c.data ?? "";
  }
  return out.trim();
}

/**
 * One walk over the document: node budget, no processing instructions, unique IDs, where the
 * Assertion and the signatures are.
 */
function inspectStructure(doc: XmlNode, response: XmlElement) {
  const ids = new Set<string>();
  const assertions: XmlElement[] = [];
  const signatures: XmlElement[] = [];
  let count = 0;
  const stack: XmlNode[] = [doc];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (++count > MAX_NODES) fail("the XML has too many nodes");
    if (node.nodeType === PROCESSING_INSTRUCTION) {
      // xmldom reports the XML declaration as a processing instruction named `xml`.
      if (!(node.nodeName === "xml" && node.parentNode === doc)) fail("the XML holds a processing instruction");
    }
    if (node.nodeType === ELEMENT) {
      const el = node as XmlElement;
      for (let i = 0; i < el.attributes.length; i++) {
        const a = el.attributes[i]!;
        const local = a.localName ?? a.name;
        if (local === "ID" || local === "Id" || local === "id") {
          if (ids.has(a.value)) fail("two elements share an ID");
          ids.add(a.value);
        }
      }
      if (el.namespaceURI === NS.saml && (el.localName === "Assertion" || el.localName === "EncryptedAssertion")) {
        if (el.localName === "EncryptedAssertion") fail("encrypted assertions are not supported: turn assertion encryption off at the IdP");
        assertions.push(el);
      }
      if (is(el, NS.ds, "Signature")) signatures.push(el);
    }
    const kids = node.childNodes;
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]!);
  }
  if (assertions.length === 0) fail("the Response holds no Assertion");
  if (assertions.length > 1) fail("the Response holds more than one Assertion");
  const assertion = assertions[0]!;
  if (assertion.parentNode !== response) fail("the Assertion is not a direct child of the Response");
  const owners = new Set<XmlNode>();
  for (const sig of signatures) {
    const parent = sig.parentNode;
    if (parent !== response && parent !== assertion) fail("a Signature sits outside the Response and Assertion it could cover");
    if (owners.has(parent!)) fail("an element holds more than one Signature");
    owners.add(parent!);
  }
  return { assertion, signatures };
}

// ---- Signatures -----------------------------------------------------------------------------

interface VerifyKey {
  cert: ParsedCertificate;
  imported: Map<string, Promise<CryptoKey | null>>;
}

async function importKeys(pems: string[]): Promise<VerifyKey[]> {
  const keys: VerifyKey[] = [];
  for (const pem of pems) {
    try {
      keys.push({ cert: parseCertificatePem(pem), imported: new Map() });
    } catch {
      // A stored certificate that no longer parses verifies nothing; the other may still.
    }
  }
  if (keys.length === 0) fail("the identity provider config has no usable certificate");
  return keys;
}

function cryptoKey(k: VerifyKey, alg: { key: "RSA" | "EC"; hash: string }): Promise<CryptoKey | null> {
  const id = `${alg.key}:${alg.hash}`;
  let p = k.imported.get(id);
  if (!p) {
    const params =
      alg.key === "RSA"
        ? { name: "RSASSA-PKCS1-v1_5", hash: alg.hash }
        : { name: "ECDSA", namedCurve: typeof k.cert.keyDetail === "string" ? k.cert.keyDetail : "" };
    p = k.cert.keyType !== alg.key ? Promise.resolve(null) : crypto.subtle.importKey("spki", k.cert.spki, params, false, ["verify"]).catch(() => null);
    k.imported.set(id, p);
  }
  return p;
}

function base64Bytes(text: string, what: string): Uint8Array {
  const b64 = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) fail(`${what} is not valid base64`);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Prefixes declared on the element's ancestors, nearest first: what an InclusiveNamespaces list may pull in. */
function ancestorNamespaces(el: XmlNode): { prefix: string; namespaceURI: string }[] {
  const seen = new Set<string>();
  const out: { prefix: string; namespaceURI: string }[] = [];
  for (let p = el.parentNode; p && p.nodeType === ELEMENT; p = p.parentNode) {
    const pe = p as XmlElement;
    for (let i = 0; i < pe.attributes.length; i++) {
      const a = pe.attributes[i]!;
      if (a.prefix === "xmlns" && !seen.has(a.localName)) {
        seen.add(a.localName);
        out.push({ prefix: a.localName, namespaceURI: a.value });
      }
    }
  }
  return out;
}

function prefixList(method: XmlElement): string[] {
  const inc = optionalChild(method, NS.ec, "InclusiveNamespaces", "InclusiveNamespaces");
  const list = inc ? (attr(inc, "PrefixList") ?? "") : "";
  return list.split(/\s+/).filter(Boolean);
}

function canonicalize(el: XmlElement, withComments: boolean, prefixes: string[], ancestors: { prefix: string; namespaceURI: string }[]): string {
  const c14n = withComments ? new ExclusiveCanonicalizationWithComments() : new ExclusiveCanonicalization();
  try {
    // The library may add namespace declarations to the element it is given: give it a copy.
    return c14n.process(el as never, { inclusiveNamespacesPrefixList: prefixes, ancestorNamespaces: ancestors });
  } catch {
    return fail("the signed XML could not be canonicalized");
  }
}

const bytesEqual = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

async function verifySignature(sig: XmlElement, target: XmlElement, keys: VerifyKey[], allowSha1: boolean): Promise<void> {
  const where = target.localName === "Response" ? "the Response signature" : "the Assertion signature";
  for (const c of childElements(sig)) {
    if (c.namespaceURI !== NS.ds || !["SignedInfo", "SignatureValue", "KeyInfo"].includes(c.localName))
      fail(`${where} holds an unexpected ${c.localName} element`);
  }
  const signedInfo = requiredChild(sig, NS.ds, "SignedInfo", `${where}'s SignedInfo`);
  const signatureValue = requiredChild(sig, NS.ds, "SignatureValue", `${where}'s SignatureValue`);

  const c14nMethod = requiredChild(signedInfo, NS.ds, "CanonicalizationMethod", "CanonicalizationMethod");
  const c14nAlg = attr(c14nMethod, "Algorithm");
  if (c14nAlg !== ALG.excC14n && c14nAlg !== ALG.excC14nWithComments) fail(`${where} uses a canonicalization other than exclusive c14n`);
  const sigMethod = requiredChild(signedInfo, NS.ds, "SignatureMethod", "SignatureMethod");
  const sigAlg = SIGNATURES[attr(sigMethod, "Algorithm") ?? ""];
  if (!sigAlg) fail(`${where} uses a signature algorithm outside the allow-list (rsa-sha256, rsa-sha512, ecdsa-sha256)`);
  if (sigAlg!.sha1 && !allowSha1) fail(`${where} uses SHA-1, which this identity provider config does not allow`);

  const refs = children(signedInfo, NS.ds, "Reference");
  if (refs.length !== 1) fail(`${where} must hold exactly one Reference`);
  const ref = refs[0]!;
  const targetId = attr(target, "ID");
  if (!targetId) fail(`the signed ${target.localName} has no ID`);
  if (attr(ref, "URI") !== `#${targetId}`) fail(`${where}'s Reference does not point to the element that holds it`);

  const transforms = optionalChild(ref, NS.ds, "Transforms", "Transforms");
  const steps = transforms ? children(transforms, NS.ds, "Transform") : [];
  if (transforms && childElements(transforms).length !== steps.length) fail(`${where} has an unexpected element among its Transforms`);
  const algs = steps.map((s) => attr(s, "Algorithm"));
  if (algs.length !== 2 || algs[0] !== ALG.enveloped || (algs[1] !== ALG.excC14n && algs[1] !== ALG.excC14nWithComments)) {
    fail(`${where} must use exactly the enveloped-signature and exclusive c14n transforms`);
  }
  const digestMethod = requiredChild(ref, NS.ds, "DigestMethod", "DigestMethod");
  const digestAlg = DIGESTS[attr(digestMethod, "Algorithm") ?? ""];
  if (!digestAlg) fail(`${where} uses a digest algorithm outside the allow-list (sha256, sha512)`);
  if (digestAlg!.sha1 && !allowSha1) fail(`${where} uses SHA-1, which this identity provider config does not allow`);
  const digestValue = base64Bytes(pureText(requiredChild(ref, NS.ds, "DigestValue", "DigestValue"), "DigestValue"), "DigestValue");

  // The reference: the target without this signature (enveloped-signature), canonicalized. A
  // same-document `#id` reference drops comments whatever the transform says (XMLDSig 4.4.3.3).
  const index = Array.from({ length: target.childNodes.length }, (_, i) => target.childNodes[i]).indexOf(sig);
  const copy = target.cloneNode(true) as XmlElement;
  copy.removeChild(copy.childNodes[index]!);
  const referenced = canonicalize(copy, false, prefixList(steps[1]!), ancestorNamespaces(target));
  const digest = new Uint8Array(await crypto.subtle.digest(digestAlg!.hash, new TextEncoder().encode(referenced)));
  if (!bytesEqual(digest, digestValue)) fail(`${where}'s digest does not match: the signed content was changed`);

  const signedInfoC14n = canonicalize(
    signedInfo.cloneNode(true) as XmlElement,
    c14nAlg === ALG.excC14nWithComments,
    prefixList(c14nMethod),
    ancestorNamespaces(signedInfo),
  );
  const signature = base64Bytes(pureText(signatureValue, "SignatureValue"), "SignatureValue");
  const data = new TextEncoder().encode(signedInfoC14n);
  for (const k of keys) {
    const key = await cryptoKey(k, sigAlg!);
    if (!key) continue;
    const algorithm = sigAlg!.key === "RSA" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: sigAlg!.hash };
    if (await crypto.subtle.verify(algorithm, key, signature, data).catch(() => false)) return;
  }
  fail(`${where} does not verify with the configured certificate`);
}

// ---- Conditions -------------------------------------------------------------------------------

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function instant(el: XmlElement, name: string, what: string): number | null {
  const v = attr(el, name);
  if (v === null) return null;
  const ms = DATE_TIME.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) fail(`${what} ${name} is not an xs:dateTime`);
  return ms;
}

function checkIssuer(parent: XmlElement, expected: string, what: string, required: boolean) {
  const issuer = optionalChild(parent, NS.saml, "Issuer", `${what} Issuer`);
  if (!issuer) {
    if (required) fail(`${what} has no Issuer`);
    return;
  }
  if (pureText(issuer, `${what} Issuer`) !== expected) fail(`${what} Issuer is not this config's saml_entity_id`);
}

function checkConditions(response: XmlElement, assertion: XmlElement, signed: VerifiedAssertion["signed"], exp: SamlExpectations): VerifiedAssertion {
  const now = exp.now;
  if (attr(response, "Version") !== "2.0" || attr(assertion, "Version") !== "2.0") fail("the Response or Assertion is not SAML 2.0");

  const destination = attr(response, "Destination");
  // SAML core 3.2.2: a signed message must name its Destination; an unsigned one may omit it.
  if (destination === null ? signed.response : destination !== exp.acsUrl) fail("the Response Destination is not our ACS URL");
  checkIssuer(response, exp.idpEntityId, "the Response", false);

  const status = requiredChild(response, NS.samlp, "Status", "the Response Status");
  const code = attr(requiredChild(status, NS.samlp, "StatusCode", "the StatusCode"), "Value");
  if (code !== SUCCESS) {
    const short = (code ?? "")
      .split(":")
      .pop()!
      .replace(/[^A-Za-z]/g, "")
      .slice(0, 40);
    fail(`the identity provider answered with status ${short || "unknown"}, not Success`);
  }

  const assertionId = attr(assertion, "ID");
  if (!assertionId) fail("the Assertion has no ID");
  checkIssuer(assertion, exp.idpEntityId, "the Assertion", true);

  // Conditions: the time window and the audience.
  const conditions = requiredChild(assertion, NS.saml, "Conditions", "the Assertion Conditions");
  const notBefore = instant(conditions, "NotBefore", "Conditions");
  const notOnOrAfter = instant(conditions, "NotOnOrAfter", "Conditions");
  if (notBefore !== null && now + CLOCK_SKEW_MS < notBefore) fail("the Assertion is not yet valid (Conditions NotBefore)");
  if (notOnOrAfter !== null && now - CLOCK_SKEW_MS >= notOnOrAfter) fail("the Assertion has expired (Conditions NotOnOrAfter)");
  const restrictions = children(conditions, NS.saml, "AudienceRestriction");
  if (restrictions.length === 0) fail("the Assertion has no AudienceRestriction");
  for (const r of restrictions) {
    const audiences = children(r, NS.saml, "Audience").map((a) => pureText(a, "Audience"));
    if (!audiences.includes(exp.spEntityId)) fail("the Audience is not our SP entity id");
  }

  // Subject: a bearer confirmation for our ACS, within its window.
  const subject = requiredChild(assertion, NS.saml, "Subject", "the Assertion Subject");
  const responseInResponseTo = attr(response, "InResponseTo");
  let confirmed: { notOnOrAfter: number; inResponseTo: string | null } | undefined;
  let reason = "the Subject has no bearer SubjectConfirmation";
  for (const sc of children(subject, NS.saml, "SubjectConfirmation")) {
    if (attr(sc, "Method") !== BEARER) continue;
    const data = optionalChild(sc, NS.saml, "SubjectConfirmationData", "SubjectConfirmationData");
    if (!data) {
      reason = "the bearer SubjectConfirmation has no SubjectConfirmationData";
      continue;
    }
    const scNotOnOrAfter = instant(data, "NotOnOrAfter", "SubjectConfirmationData");
    const scNotBefore = instant(data, "NotBefore", "SubjectConfirmationData");
    const scInResponseTo = attr(data, "InResponseTo");
    if (attr(data, "Recipient") !== exp.acsUrl) reason = "the SubjectConfirmationData Recipient is not our ACS URL";
    else if (scNotOnOrAfter === null) reason = "the SubjectConfirmationData has no NotOnOrAfter";
    else if (now - CLOCK_SKEW_MS >= scNotOnOrAfter) reason = "the Assertion has expired (SubjectConfirmationData NotOnOrAfter)";
    else if (scNotBefore !== null && now + CLOCK_SKEW_MS < scNotBefore) reason = "the Assertion is not yet valid (SubjectConfirmationData NotBefore)";
    else if (scInResponseTo !== null && responseInResponseTo !== null && scInResponseTo !== responseInResponseTo)
      reason = "the Response and its Assertion answer different requests";
    else {
      confirmed = { notOnOrAfter: scNotOnOrAfter, inResponseTo: scInResponseTo ?? responseInResponseTo };
      break;
    }
  }
  if (!confirmed) return fail(reason);

  const { email, displayName } = identity(subject, assertion);
  return {
    assertionId: assertionId!,
    inResponseTo: confirmed.inResponseTo,
    email,
    displayName,
    expiresAt: Math.max(confirmed.notOnOrAfter, notOnOrAfter ?? 0) + CLOCK_SKEW_MS,
    signed,
  };
}

// ---- Who it is --------------------------------------------------------------------------------

const EMAIL = /^[^\s@<>()",;:\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** Attribute names IdPs put an address in, lower-cased: Okta, Entra ID (claims URI), Google, LDAP OID. */
const EMAIL_ATTRIBUTES = [
  "email",
  "mail",
  "emailaddress",
  "user.email",
  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
  "urn:oid:0.9.2342.19200300.100.1.3",
];
const NAME_ATTRIBUTES = ["displayname", "name", "http://schemas.microsoft.com/identity/claims/displayname", "urn:oid:2.16.840.1.113730.3.1.241"];
const GIVEN_ATTRIBUTES = ["firstname", "givenname", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "urn:oid:2.5.4.42"];
const SURNAME_ATTRIBUTES = ["lastname", "surname", "sn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "urn:oid:2.5.4.4"];

function attributes(assertion: XmlElement): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const statement of children(assertion, NS.saml, "AttributeStatement")) {
    for (const a of children(statement, NS.saml, "Attribute")) {
      const name = (attr(a, "Name") ?? "").toLowerCase();
      const friendly = (attr(a, "FriendlyName") ?? "").toLowerCase();
      const values = children(a, NS.saml, "AttributeValue").map((v) => pureText(v, "an AttributeValue"));
      for (const n of [name, friendly]) if (n && !out.has(n)) out.set(n, values);
    }
  }
  return out;
}

function identity(subject: XmlElement, assertion: XmlElement): { email: string | null; displayName: string | null } {
  if (optionalChild(subject, NS.saml, "EncryptedID", "EncryptedID")) fail("encrypted NameIDs are not supported");
  const nameIdEl = optionalChild(subject, NS.saml, "NameID", "NameID");
  const nameId = nameIdEl ? pureText(nameIdEl, "the NameID") : "";
  const format = nameIdEl ? attr(nameIdEl, "Format") : null;
  const attrs = attributes(assertion);
  const first = (names: string[]) => names.map((n) => attrs.get(n)?.find((v) => v !== "")).find((v) => v !== undefined) ?? null;

  // The NameID when its format says it is an address; else the first address attribute; else a
  // NameID without a format (or "unspecified") that reads as an address (Entra's default UPN).
  let email: string | null = null;
  if (format === NAMEID_EMAIL) email = nameId;
  else email = first(EMAIL_ATTRIBUTES) ?? ((format === null || format === NAMEID_UNSPECIFIED) && EMAIL.test(nameId) ? nameId : null);
  if (email !== null) {
    email = email.toLowerCase();
    if (email.length > 254 || !EMAIL.test(email)) fail("the asserted email address is not a valid address");
  }

  const given = first(GIVEN_ATTRIBUTES);
  const surname = first(SURNAME_ATTRIBUTES);
  const displayName = first(NAME_ATTRIBUTES) ?? ([given, surname].filter(Boolean).join(" ") || null);
  return { email, displayName };
}
