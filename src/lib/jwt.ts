import { importJWK, jwtVerify, SignJWT, type JWK, type JWTVerifyGetKey } from "jose";
import { newId } from "./ids";

const ISSUER = "tenancy-api";
const AUDIENCE = "tenancy-api";

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
    const publicJwk: JWK = { ...pub, alg: "ES256", use: "sig" };
    publicKeys.push(publicJwk);
    verify.set(jwk.kid, (await importJWK(publicJwk, "ES256")) as CryptoKey);
    // The first key signs; the rest only verify, so a new key can be put first to rotate.
    if (!signing) signing = { kid: jwk.kid, key: (await importJWK({ ...jwk, alg: "ES256" }, "ES256")) as CryptoKey };
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

export interface AccessClaims {
  sub: string;
  sid: string;
  jti: string;
  exp: number;
  /** When the session's sign-in happened (OIDC `auth_time`, seconds); a refresh keeps it. */
  authTime: number;
}

export async function signAccessToken(raw: string, claims: { sub: string; sid: string; authTime: number }, ttlSeconds: number) {
  const ks = await keySet(raw);
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ sid: claims.sid, auth_time: claims.authTime })
    .setProtectedHeader({ alg: "ES256", kid: ks.signing.kid, typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(newId("event").slice(4))
    .sign(ks.signing.key);
  return { token, expiresIn: ttlSeconds, exp: now + ttlSeconds };
}

/** Returns the claims, or null for anything that is not a valid, unexpired token of ours. */
export async function verifyAccessToken(raw: string, token: string): Promise<AccessClaims | null> {
  const ks = await keySet(raw);
  const getKey: JWTVerifyGetKey = (header) => {
    const key = header.kid ? ks.verify.get(header.kid) : undefined;
    if (!key) throw new Error("unknown kid");
    return key;
  };
  try {
    const { payload } = await jwtVerify(token, getKey, { issuer: ISSUER, audience: AUDIENCE, algorithms: ["ES256"] });
    if (typeof payload.sub !== "string" || typeof payload.sid !== "string" || typeof payload.jti !== "string" || typeof payload.exp !== "number") {
      return null;
    }
    // A token without auth_time counts as signed in long ago: it cannot do what needs a recent sign-in.
    const authTime = typeof payload.auth_time === "number" ? payload.auth_time : 0;
    return { sub: payload.sub, sid: payload.sid, jti: payload.jti, exp: payload.exp, authTime };
  } catch {
    return null;
  }
}
