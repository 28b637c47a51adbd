/**
 * Every KV key and its TTL are built here. KV's minimum TTL is 60 s, and KV is eventually
 * consistent across locations (a write can take up to ~60 s to be seen elsewhere); both are
 * why these TTLs carry a 60 s margin.
 */
const KV_MIN_TTL = 60;

export const kvKeys = {
  /**
   * A revoked session. Access tokens are checked against it on every request; it must outlive
   * the last access token the session could have issued, hence access TTL + margin.
   */
  revokedSession: (sid: string, accessTokenTtlSeconds: number) => ({
    key: `rev:sid:${sid}`,
    ttl: Math.max(KV_MIN_TTL, accessTokenTtlSeconds + KV_MIN_TTL),
  }),

  /**
   * A user's profile (the User JSON) after a change to it: access tokens minted before the change
   * carry the old one in their claims, so it lives as long as the last of them can (access TTL +
   * margin). Read with the session's revocation entry, in the same KV call.
   */
  userProfile: (userId: string, accessTokenTtlSeconds: number) => ({
    key: `usr:profile:${userId}`,
    ttl: Math.max(KV_MIN_TTL, accessTokenTtlSeconds + KV_MIN_TTL),
  }),

  /** A fixed-window rate-limit counter; it only needs to live through its own window. */
  rateLimit: (bucket: string, subject: string, windowStart: number, windowSeconds: number) => ({
    key: `rl:${bucket}:${subject}:${windowStart}`,
    ttl: Math.max(KV_MIN_TTL, windowSeconds + KV_MIN_TTL),
  }),

  /**
   * An AuthnRequest we issued, awaiting its Response's InResponseTo; bound to the config by the
   * key, deleted when used. Ten minutes is time enough to sign in at the IdP, MFA included.
   */
  samlRequest: (configId: string, requestId: string) => ({
    key: `saml:req:${configId}:${requestId}`,
    ttl: 600,
  }),

  /**
   * A consumed assertion (by the SHA-256 of its ID: IDs are the IdP's text), kept until the
   * assertion could no longer be accepted anyway, so it cannot be replayed.
   */
  samlAssertion: (configId: string, assertionIdHash: string, secondsLeft: number) => ({
    key: `saml:asn:${configId}:${assertionIdHash}`,
    ttl: Math.max(KV_MIN_TTL, Math.ceil(secondsLeft)),
  }),

  /** The single-use code the ACS hands to the app (by its SHA-256), for `POST /v1/auth/sso/exchange`. */
  ssoCode: (codeHash: string) => ({
    key: `sso:code:${codeHash}`,
    ttl: KV_MIN_TTL,
  }),

  /**
   * Where a served SCIM list page ended (→ the id of its last resource), so the client's request
   * for the next page (startIndex = nextStartIndex, same list) is a keyset read instead of an
   * OFFSET walk. Scoped to the token (a replaced token starts over); ten minutes covers an IdP's
   * sync run between pages. A missing or not-yet-visible key only costs the OFFSET fallback.
   */
  scimPageCursor: (tokenKey: string, listFingerprint: string, nextStartIndex: number) => ({
    key: `scim:page:${tokenKey}:${listFingerprint}:${nextStartIndex}`,
    ttl: 600,
  }),
};
