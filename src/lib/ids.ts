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
  serviceAccountKey: "sak",
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
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

function encodeTime(ms: number): string {
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function encodeRandom(chars: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(chars));
  let out = "";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

export function newId(kind: IdKind, now = Date.now()): string {
  return `${ID_PREFIXES[kind]}_${encodeTime(now)}${encodeRandom(16)}`;
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
