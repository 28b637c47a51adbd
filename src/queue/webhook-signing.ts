import { utf8 } from "../lib/encoding";

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): the secret is `whsec_` + base64
 * of random bytes; each request carries `webhook-id`, `webhook-timestamp` (seconds) and
 * `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
 * keyed by the secret's decoded bytes. Receivers accept a request if any listed signature
 * matches, which is how a rotation sends the new and the previous secret's signatures together.
 */

/**
 * Binds a sealed signing secret to its organization and endpoint: copied into another row, it
 * does not decrypt. The current and the previous secret share it (a rotation moves the sealed
 * current one into the previous column without decrypting it).
 */
export const webhookSecretAad = (orgId: string, webhookId: string) => `webhook-secret:${orgId}:${webhookId}`;

export const WEBHOOK_SECRET_PREFIX = "whsec_";
/** 32 bytes: the spec allows 24–64; this is SHA-256's block-friendly key size. */
const SECRET_BYTES = 32;

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

async function sign(secret: string, content: string): Promise<string> {
  const raw = fromBase64(secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret);
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `v1,${toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(content))))}`;
}

/** The three Standard Webhooks headers for one attempt, signed with every secret given (current first). */
export async function signedHeaders(secrets: string[], msgId: string, timestampSeconds: number, body: string): Promise<Record<string, string>> {
  const content = `${msgId}.${timestampSeconds}.${body}`;
  const signatures = await Promise.all(secrets.map((s) => sign(s, content)));
  return { "webhook-id": msgId, "webhook-timestamp": String(timestampSeconds), "webhook-signature": signatures.join(" ") };
}
