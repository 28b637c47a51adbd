import { fromBase64, fromBase64Url, toBase64Url, toHex, utf8 } from "./encoding";
import type { SecretPrefix } from "./ids";

/** A random secret with a readable prefix, e.g. `pat_…` (32 random bytes); only registered secret prefixes, never an id's. */
export function newSecret(prefix: SecretPrefix, bytes = 32): string {
  return `${prefix}_${toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)))}`;
}

/**
 * Secrets are high-entropy random strings, so a plain SHA-256 is a sufficient at-rest hash
 * (no dictionary to attack); lookups go by this hash through a unique index.
 */
export async function sha256Hex(value: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", utf8(value)));
}

/** Constant-time equality for strings of equal length; unequal lengths return false at once. */
export function timingSafeEqual(a: string, b: string): boolean {
  const ab = utf8(a);
  const bb = utf8(b);
  if (ab.length !== bb.length) return false;
  let diff = 0;
  for (let i = 0; i < ab.length; i++) diff |= ab[i]! ^ bb[i]!;
  return diff === 0;
}

// Imported keys are cached per isolate: importKey costs more than the operation it serves.
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

export async function hmacBase64Url(secret: string, message: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), utf8(message));
  return toBase64Url(new Uint8Array(sig));
}

export async function hmacHex(secret: string, message: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), utf8(message));
  return toHex(sig);
}

// ---- AES-GCM for secrets at rest ---------------------------------------------------------

const aesKeys = new Map<string, Promise<CryptoKey>>();

function aesKey(keyB64: string): Promise<CryptoKey> {
  let key = aesKeys.get(keyB64);
  if (!key) {
    const raw = fromBase64(keyB64);
    if (raw.length !== 32) throw new Error("ENCRYPTION_KEY must be 32 bytes, base64-encoded");
    key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    aesKeys.set(keyB64, key);
  }
  return key;
}

/**
 * `v1.<iv>.<ciphertext>`; the version names the key generation so the key can be rotated.
 * `aad` binds the ciphertext to its row (e.g. organization id + secret name) so a ciphertext
 * copied into another row does not decrypt.
 */
export async function encryptString(keyB64: string, plaintext: string, aad: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8(aad) }, await aesKey(keyB64), utf8(plaintext));
  return `v1.${toBase64Url(iv)}.${toBase64Url(new Uint8Array(ct))}`;
}

export async function decryptString(keyB64: string, sealed: string, aad: string): Promise<string> {
  const [version, iv, ct] = sealed.split(".");
  if (version !== "v1" || !iv || !ct) throw new Error("unknown ciphertext format");
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64Url(iv), additionalData: utf8(aad) }, await aesKey(keyB64), fromBase64Url(ct));
  return new TextDecoder().decode(pt);
}

// ---- Passwords ------------------------------------------------------------------------------

async function pbkdf2(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", utf8(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, 256);
  return new Uint8Array(bits);
}

/** `pbkdf2-sha256$<iterations>$<salt>$<hash>`: parameters live with the hash so they can be raised. */
export async function hashPassword(password: string, iterations: number): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await pbkdf2(password, salt, iterations);
  return `pbkdf2-sha256$${iterations}$${toBase64Url(salt)}$${toBase64Url(hash)}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, iter, salt, hash] = stored.split("$");
  const iterations = Number(iter);
  if (scheme !== "pbkdf2-sha256" || !salt || !hash || !Number.isInteger(iterations) || iterations < 1) return false;
  const candidate = await pbkdf2(password, fromBase64Url(salt), iterations);
  return timingSafeEqual(toBase64Url(candidate), hash);
}

/** A hash of a password nobody has, verified against when the email is unknown so both paths cost the same. */
const dummyHashes = new Map<number, Promise<string>>();
export function dummyPasswordHash(iterations: number): Promise<string> {
  let h = dummyHashes.get(iterations);
  if (!h) {
    h = hashPassword(toBase64Url(crypto.getRandomValues(new Uint8Array(24))), iterations);
    dummyHashes.set(iterations, h);
  }
  return h;
}

/** True if the stored hash was made with fewer iterations than configured (rehash on login). */
export function needsRehash(stored: string, iterations: number): boolean {
  const iter = Number(stored.split("$")[1]);
  return !Number.isInteger(iter) || iter < iterations;
}
