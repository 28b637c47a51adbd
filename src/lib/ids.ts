/**
 * Prefixed, time-sortable IDs: `<prefix>_<26 Crockford base32 chars>` — 48 bits of milliseconds
 * then 80 random bits (ULID layout), so sorting by id sorts by creation time and the id alone
 * can serve as a keyset tiebreaker.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export const ID_PREFIXES = {
  organization: "org",
  user: "usr",
  invitation: "inv",
  role: "rol",
  serviceAccount: "sa",
  // A key's row id, never shown to clients; the key itself is the secret `sak_…`.
  serviceAccountKey: "key",
  domain: "dom",
  identityProvider: "idp",
  proxy: "prx",
  integration: "int",
  license: "lic",
  deployment: "dep",
  tag: "tag",
  project: "prj",
  token: "tok",
  webhook: "whk",
  event: "evt",
  session: "ses",
  email: "eml",
  outbox: "obx",
  audit: "aud",
  scimUser: "scu",
  scimGroup: "scg",
  scimLog: "scl",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

/**
 * Every prefix a minted secret carries. None equals an id prefix (test/unit/prefixes.test.ts), so
 * a pasted value says by its prefix alone whether it is a credential or the id of a record, and
 * the bearer seam can dispatch on it. `newSecret` takes only these.
 */
export const SECRET_PREFIXES = {
  personalAccessToken: "pat",
  serviceAccountKey: "sak",
  scimToken: "scim",
  refreshToken: "rt",
  emailVerification: "vfy",
  invitationToken: "ivt",
  licenseKey: "lk",
  ssoCode: "ssoc",
  webhookSigningSecret: "whsec",
} as const;

export type SecretKind = keyof typeof SECRET_PREFIXES;
export type SecretPrefix = (typeof SECRET_PREFIXES)[SecretKind];

/**
 * Prefixes secrets were minted with before ids and secrets were told apart: still accepted on
 * input (the lookup is by the hash of the whole secret, so those rows need no migration), never
 * minted. Invitation tokens were `inv_…` like invitation ids; the last of them expires at most 30
 * days (the longest `expires_in_days`) after the release that stopped minting them, and then its
 * entry can go.
 */
export const LEGACY_SECRET_PREFIXES: Partial<Record<SecretKind, readonly string[]>> = {
  invitationToken: ["inv"],
};

/** True when `value` carries the prefix of `kind`, current or legacy. */
export function hasSecretPrefix(kind: SecretKind, value: string): boolean {
  return [SECRET_PREFIXES[kind], ...(LEGACY_SECRET_PREFIXES[kind] ?? [])].some((p) => value.startsWith(`${p}_`));
}

/** A SCIM token is `scim_…`: the /v1 seam refuses the prefix and the /scim/v2 seam requires it. */
export const SCIM_TOKEN_PREFIX = SECRET_PREFIXES.scimToken;

function encodeTime(ms: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

// Within one millisecond the random part is incremented instead of redrawn, so ids minted by
// one isolate stay in creation order (ULID's monotonic mode).
let lastTime = -1;
let lastRandom: number[] = [];

function nextRandom(now: number): string {
  if (now === lastTime) {
    for (let i = lastRandom.length - 1; i >= 0; i--) {
      if (lastRandom[i]! < 31) {
        lastRandom[i]! += 1;
        break;
      }
      lastRandom[i] = 0;
    }
  } else {
    lastTime = now;
    lastRandom = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b & 31);
    // Leave headroom so increments within the millisecond never wrap.
    lastRandom[0] = lastRandom[0]! & 15;
  }
  return lastRandom.map((d) => ALPHABET[d]).join("");
}

export function newId(kind: IdKind, now = Date.now()): string {
  return `${ID_PREFIXES[kind]}_${encodeTime(now)}${nextRandom(now)}`;
}

const patterns = new Map<IdKind, RegExp>();

/** True when `value` is a well-formed id of `kind`; a malformed id is answered 404, never 500. */
export function isId(kind: IdKind, value: string): boolean {
  let re = patterns.get(kind);
  if (!re) {
    re = new RegExp(`^${ID_PREFIXES[kind]}_[0-9A-HJKMNP-TV-Z]{26}$`);
    patterns.set(kind, re);
  }
  return re.test(value);
}

const ANY_ID = /^([a-z]+)_[0-9A-HJKMNP-TV-Z]{26}$/;
const KIND_OF_PREFIX = new Map(Object.entries(ID_PREFIXES).map(([kind, prefix]) => [prefix as string, kind as IdKind]));

/** The kind of id `value` is, if it is one: lets a secret-taking endpoint say "that is an id". */
export function idKindOf(value: string): IdKind | undefined {
  const prefix = ANY_ID.exec(value)?.[1];
  return prefix === undefined ? undefined : KIND_OF_PREFIX.get(prefix);
}
