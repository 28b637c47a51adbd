import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate } from "@peculiar/asn1-x509";

/**
 * An identity provider's signing certificate, pinned per config: we trust exactly this key, so
 * nothing here walks a chain or checks a CA. What matters is that the text really is one X.509
 * certificate, that its key is one WebCrypto can verify SAML signatures with, and when it expires.
 *
 * Parsed with @peculiar/asn1-x509 (maintained, pure JS, runs in workerd): about 120 KB minified,
 * 31 KB gzipped in the bundle. `@peculiar/x509` needs tsyringe and a reflect-metadata polyfill,
 * and pkijs adds about 415 KB minified, for nothing more than we use.
 */
export interface ParsedCertificate {
  /** The certificate as stored and returned: one PEM block, 64-column base64. */
  pem: string;
  der: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** The subject's common name, when it has one. */
  subject?: string;
  /** SubjectPublicKeyInfo, DER: `crypto.subtle.importKey("spki", …)`. */
  spki: Uint8Array;
  keyType: "RSA" | "EC";
  /** RSA modulus bits, or the EC curve's WebCrypto name. */
  keyDetail: number | "P-256" | "P-384" | "P-521";
}

/** The text is not an acceptable certificate; `message` is safe to show (it never echoes the input). */
export class CertificateError extends Error {}

export const MAX_CERTIFICATE_CHARS = 16_384;
export const MIN_RSA_BITS = 2048;

const OID_RSA = "1.2.840.113549.1.1.1";
const OID_EC = "1.2.840.10045.2.1";
const EC_CURVES: Record<string, "P-256" | "P-384" | "P-521"> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};
const OID_CN = "2.5.4.3";

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Accepts a PEM block (`-----BEGIN CERTIFICATE-----`) or the bare base64 body, which is what an
 * IdP's metadata XML holds in `<ds:X509Certificate>`. Throws CertificateError otherwise.
 */
export function parseCertificatePem(text: string): ParsedCertificate {
  if (text.length > MAX_CERTIFICATE_CHARS) throw new CertificateError(`must be at most ${MAX_CERTIFICATE_CHARS} characters`);
  const blocks = [...text.matchAll(BLOCK)];
  let body: string;
  if (blocks.length > 0) {
    // A pasted private key must be refused loudly: storing it would put a secret where we promise none.
    if (blocks.some((b) => b[1]!.includes("PRIVATE KEY")))
      throw new CertificateError("is a private key: send the identity provider's certificate, never its key");
    const certs = blocks.filter((b) => b[1] === "CERTIFICATE");
    if (certs.length !== 1 || blocks.length !== 1) throw new CertificateError("must hold exactly one -----BEGIN CERTIFICATE----- block");
    if (text.replace(BLOCK, "").trim() !== "") throw new CertificateError("must hold nothing but the PEM block");
    body = certs[0]![2]!;
  } else {
    if (/PRIVATE KEY/.test(text)) throw new CertificateError("is a private key: send the identity provider's certificate, never its key");
    if (text.includes("-----")) throw new CertificateError("must be a PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)");
    body = text;
  }
  const b64 = body.replace(/\s+/g, "");
  if (b64 === "" || !BASE64.test(b64) || b64.length % 4 !== 0)
    throw new CertificateError("must be a PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----) with valid base64");
  const der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  if (tlvLength(der, 0) !== der.length) throw new CertificateError("is not an X.509 certificate (the DER structure is malformed or has trailing bytes)");

  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch {
    throw new CertificateError("is not an X.509 certificate (the DER structure could not be parsed)");
  }
  const tbs = cert.tbsCertificate;
  const notBefore = tbs.validity.notBefore.getTime().getTime();
  const notAfter = tbs.validity.notAfter.getTime().getTime();
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter) || notAfter <= notBefore) throw new CertificateError("has an invalid validity period");

  const spkiInfo = tbs.subjectPublicKeyInfo;
  const spki = new Uint8Array(AsnConvert.serialize(spkiInfo));
  const oid = spkiInfo.algorithm.algorithm;
  let keyType: ParsedCertificate["keyType"];
  let keyDetail: ParsedCertificate["keyDetail"];
  if (oid === OID_RSA) {
    keyType = "RSA";
    keyDetail = rsaModulusBits(new Uint8Array(spkiInfo.subjectPublicKey));
    if (keyDetail < MIN_RSA_BITS) throw new CertificateError(`has a ${keyDetail}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`);
  } else if (oid === OID_EC) {
    keyType = "EC";
    const params = spkiInfo.algorithm.parameters;
    const curve = params ? EC_CURVES[curveOid(new Uint8Array(params))] : undefined;
    if (!curve) throw new CertificateError("has an elliptic-curve key on a curve other than P-256, P-384 or P-521");
    keyDetail = curve;
  } else {
    throw new CertificateError("has a key that is neither RSA nor ECDSA (P-256, P-384, P-521)");
  }

  return { pem: toPem(der), der, notBefore, notAfter, subject: commonName(cert), spki, keyType, keyDetail };
}

/** The 64-column PEM of DER bytes. */
export function toPem(der: Uint8Array): string {
  let bin = "";
  for (const byte of der) bin += String.fromCharCode(byte);
  const b64 = btoa(bin);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----`;
}

function commonName(cert: Certificate): string | undefined {
  for (const rdn of cert.tbsCertificate.subject) {
    for (const atv of rdn) {
      if (atv.type === OID_CN) {
        try {
          return atv.value.toString().slice(0, 256);
        } catch {
          return undefined;
        }
      }
    }
  }
  return undefined;
}

// ---- Minimal DER reads for what the schema classes leave as raw bytes ----------------------------

/** Total length (header + content) of the DER element at `at`, or -1 if it runs past the end. */
function tlvLength(der: Uint8Array, at: number): number {
  const header = tlvHeader(der, at);
  return header ? header.start - at + header.length : -1;
}

function tlvHeader(der: Uint8Array, at: number): { tag: number; start: number; length: number } | null {
  if (at + 2 > der.length) return null;
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > der.length) return null;
  return { tag, start, length: len };
}

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }: the modulus's bit length. */
function rsaModulusBits(key: Uint8Array): number {
  const seq = tlvHeader(key, 0);
  if (seq?.tag !== 0x30) throw new CertificateError("has a malformed RSA public key");
  const mod = tlvHeader(key, seq.start);
  if (mod?.tag !== 0x02) throw new CertificateError("has a malformed RSA public key");
  let i = mod.start;
  const end = mod.start + mod.length;
  while (i < end && key[i] === 0) i++;
  if (i === end) return 0;
  return (end - i - 1) * 8 + (32 - Math.clz32(key[i]!));
}

/** ECParameters as a namedCurve OBJECT IDENTIFIER, dotted. */
function curveOid(params: Uint8Array): string {
  const h = tlvHeader(params, 0);
  if (h?.tag !== 0x06 || h.length === 0) return "";
  const bytes = params.subarray(h.start, h.start + h.length);
  const parts: number[] = [];
  let value = 0;
  for (const b of bytes) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join(".");
}
