import { importJWK, jwtVerify, SignJWT, type JWK, type JWTVerifyGetKey } from "jose";
import { newId } from "./ids";

/** The settings tokens are minted and verified with (the worker's Config satisfies it). */
type Config = { jwtSigningKeys: string; jwtIssuer: string; jwtAudience: string; accessTokenTtlSeconds: number };

/** The User object (SPEC §10) as an access token carries it, for GET /v1/me without D1. */
export interface SessionUser {
  id: string;
  email: string;
  display_name: string;
  email_verified: boolean;
  created_at: string;
  updated_at: string;
}

/** The only algorithm tokens are signed with, and the only one verification accepts. */
export const ACCESS_TOKEN_ALG = "ES256";

interface KeySet {
  signing: { kid: string; key: CryptoKey };
  verify: Map<string, CryptoKey>;
  jwks: { keys: JWK[] };
}

// Parsing and importing JWKs costs far more than one signature: do it once per isolate.
const keySets = new Map<string, Promise<KeySet>>();

async function buildKeySet(raw: string): Promise<KeySet> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("JWT_SIGNING_KEYS must be a JSON array of ES256 private JWKs");
  }
  const jwks = (Array.isArray(parsed) ? parsed : [parsed]) as JWK[];
  if (jwks.length === 0) throw new Error("JWT_SIGNING_KEYS is empty");
  const verify = new Map<string, CryptoKey>();
  const publicKeys: JWK[] = [];
  let signing: KeySet["signing"] | undefined;
  for (const jwk of jwks) {
    if (!jwk.kid || jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.d) {
      throw new Error("each JWT signing key needs kid, kty EC, crv P-256 and d");
    }
    const { d: _d, key_ops: _ops, ...pub } = jwk;
    const publicJwk: JWK = { ...pub, alg: ACCESS_TOKEN_ALG, use: "sig" };
    publicKeys.push(publicJwk);
    verify.set(jwk.kid, (await importJWK(publicJwk, ACCESS_TOKEN_ALG)) as CryptoKey);
    // The first key signs; the rest only verify, so a new key can be put first to rotate.
    if (!signing) signing = { kid: jwk.kid, key: (await importJWK({ ...jwk, alg: ACCESS_TOKEN_ALG }, ACCESS_TOKEN_ALG)) as CryptoKey };
  }
  return { signing: signing!, verify, jwks: { keys: publicKeys } };
}

function keySet(raw: string): Promise<KeySet> {
  let ks = keySets.get(raw);
  if (!ks) {
    ks = buildKeySet(raw);
    keySets.set(raw, ks);
    ks.catch(() => keySets.delete(raw));
  }
  return ks;
}

export async function publicJwks(raw: string) {
  return (await keySet(raw)).jwks;
}

/**
 * The account as it was when the token was minted: what GET /v1/me answers without D1. Times in
 * milliseconds (the claims carry seconds with a millisecond fraction).
 */
export interface TokenProfile {
  email: string;
  name: string;
  emailVerified: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface AccessClaims {
  sub: string;
  sid: string;
  jti: string;
  exp: number;
  /** When the session's sign-in happened (OIDC `auth_time`, seconds); a refresh keeps it. */
  authTime: number;
  profile: TokenProfile;
}

/** The claim names an access token carries, as the discovery document lists them. */
export const ACCESS_TOKEN_CLAIMS = [
  "iss",
  "aud",
  "sub",
  "sid",
  "jti",
  "iat",
  "exp",
  "auth_time",
  "email",
  "email_verified",
  "name",
  "updated_at",
  "created_at",
] as const;

// OIDC states `updated_at` in seconds; the fraction keeps the millisecond the API reports.
const toSeconds = (ms: number) => ms / 1000;
const toMs = (seconds: number) => Math.round(seconds * 1000);

export async function signAccessToken(config: Config, claims: { sub: string; sid: string; authTime: number; profile: TokenProfile }) {
  const ks = await keySet(config.jwtSigningKeys);
  const now = Math.floor(Date.now() / 1000);
  const ttl = config.accessTokenTtlSeconds;
  const { profile } = claims;
  const token = await new SignJWT({
    sid: claims.sid,
    auth_time: claims.authTime,
    email: profile.email,
    email_verified: profile.emailVerified,
    name: profile.name,
    updated_at: toSeconds(profile.updatedAt),
    created_at: toSeconds(profile.createdAt),
  })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid: ks.signing.kid, typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuer(config.jwtIssuer)
    .setAudience(config.jwtAudience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(newId("event").slice(4))
    .sign(ks.signing.key);
  return { token, expiresIn: ttl, exp: now + ttl };
}

/**
 * Tokens this isolate has verified, per configuration (a changed key set or issuer starts afresh).
 * A client sends the same token for its whole life: the ECDSA verification is the largest CPU
 * cost of a request that reads no D1, and its answer for the same bytes cannot change before
 * `exp`. Only valid tokens are kept, so made-up ones cannot fill it; revocation is not cached
 * (it is read from KV on every request).
 */
const verifiedTokens = new WeakMap<Config, Map<string, AccessClaims>>();
const VERIFIED_TOKENS_MAX = 1_000;

/**
 * Returns the claims, or null for anything that is not a valid, unexpired token of ours: this
 * issuer and audience, every claim present. Tokens minted before `iss` became the API's URL
 * (`tenancy-api`, no profile claims) are refused: the client refreshes, as after any expiry.
 */
export async function verifyAccessToken(config: Config, token: string, nowMs = Date.now()): Promise<AccessClaims | null> {
  let verified = verifiedTokens.get(config);
  if (!verified) {
    verified = new Map();
    verifiedTokens.set(config, verified);
  }
  const known = verified.get(token);
  // jose's own rule: expired once the clock reaches `exp`.
  if (known) {
    if (known.exp > nowMs / 1000) return known;
    verified.delete(token);
    return null;
  }
  const claims = await verifySignedToken(config, token);
  if (claims) {
    // The oldest entry makes room (a Map iterates in insertion order): a busy isolate keeps its recent clients.
    if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, claims);
  }
  return claims;
}

async function verifySignedToken(config: Config, token: string): Promise<AccessClaims | null> {
  const ks = await keySet(config.jwtSigningKeys);
  const getKey: JWTVerifyGetKey = (header) => {
    const key = header.kid ? ks.verify.get(header.kid) : undefined;
    if (!key) throw new Error("unknown kid");
    return key;
  };
  try {
    const { payload: p } = await jwtVerify(token, getKey, { issuer: config.jwtIssuer, audience: config.jwtAudience, algorithms: [ACCESS_TOKEN_ALG] });
    const strings = [p.sub, p.sid, p.jti, p.email, p.name].every((v) => typeof v === "string");
    const numbers = [p.exp, p.auth_time, p.updated_at, p.created_at].every((v) => typeof v === "number");
    if (!strings || !numbers || typeof p.email_verified !== "boolean") return null;
    return {
      sub: p.sub!,
      sid: p.sid as string,
      jti: p.jti!,
      exp: p.exp!,
      authTime: p.auth_time as number,
      profile: {
        email: p.email as string,
        name: p.name as string,
        emailVerified: p.email_verified,
        createdAt: toMs(p.created_at as number),
        updatedAt: toMs(p.updated_at as number),
      },
    };
  } catch {
    return null;
  }
}
