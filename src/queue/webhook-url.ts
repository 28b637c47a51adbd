import { URL_WHITESPACE_OR_CONTROL } from "../lib/text";

/**
 * Where a webhook may point. The Worker POSTs to this URL on the organization's behalf, so a URL
 * that names this side of the network (loopback, private and link-local ranges, cloud metadata,
 * internal names) would turn webhooks into a way to probe it. IP literals are judged here; names
 * are resolved by Cloudflare's edge, which does not route to private networks.
 *
 * The WHATWG URL parser canonicalizes hosts first (`https://2130706433`, `https://0x7f.1` and
 * `https://[::ffff:127.0.0.1]` all come out as the loopback literal), so the checks read its
 * output, never the text.
 */

export const MAX_WEBHOOK_URL = 2048;

/** Special-purpose IPv4 ranges (IANA registry): none is a public receiver. */
const BLOCKED_V4: [string, number][] = [
  ["0.0.0.0", 8], // "this network", 0.0.0.0 included
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // CGNAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata (169.254.169.254)
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];

function v4ToInt(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function blockedV4(n: number): boolean {
  return BLOCKED_V4.some(([base, bits]) => {
    const size = 2 ** (32 - bits);
    return Math.floor(n / size) === Math.floor(v4ToInt(base)! / size);
  });
}

/** The eight 16-bit groups of a canonical IPv6 literal (as the URL parser prints it, without brackets). */
function v6Groups(ip: string): number[] | null {
  const halves = ip.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) return null;
  const groups = [...head, ...Array<number>(fill).fill(0), ...tail];
  return groups.some(Number.isNaN) ? null : groups;
}

function blockedV6(g: number[]): boolean {
  const first = g[0]!;
  const zeroPrefix = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (zeroPrefix(6)) return true; // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
  if (zeroPrefix(5) && g[5] === 0xffff) return true; // IPv4-mapped: reaches the v4 address
  if (first === 0x64 && g[1] === 0xff9b) return true; // NAT64: reaches the embedded v4 address
  if ((first & 0xfe00) === 0xfc00) return true; // unique-local fc00::/7
  if ((first & 0xffc0) === 0xfe80) return true; // link-local fe80::/10
  if ((first & 0xffc0) === 0xfec0) return true; // site-local fec0::/10 (deprecated)
  if ((first & 0xff00) === 0xff00) return true; // multicast
  if (first === 0x2001 && g[1] === 0x0db8) return true; // documentation
  return false;
}

/** Names that mean "this machine" or a private network rather than a public host. */
const INTERNAL_NAME = /(^|\.)(localhost|local|internal|intranet|lan|home\.arpa)$/;

export interface UrlPolicy {
  /** `ENVIRONMENT=development`: `http://127.0.0.1:<port>` is allowed, so a person can receive webhooks locally. */
  development: boolean;
}

/** The dev exception: plain HTTP to the IPv4 loopback, any port. */
export const isLocalDevUrl = (u: URL) => u.protocol === "http:" && u.hostname === "127.0.0.1";

/**
 * Why `raw` may not be a webhook URL, or null when it may. With `development: null` the dev
 * exception's shape passes (the schema's check, which cannot know the environment); the service
 * then applies the real policy.
 */
export function webhookUrlProblem(raw: string, policy: UrlPolicy | { development: null }): string | null {
  if (raw.length > MAX_WEBHOOK_URL) return `must be at most ${MAX_WEBHOOK_URL} characters`;
  if (URL_WHITESPACE_OR_CONTROL.test(raw)) return "must not contain spaces or control characters";
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "must be an absolute URL such as https://hooks.example.com/tenancy";
  }
  // Checked on the text too: `https://@host` parses with an empty user.
  if (u.username !== "" || u.password !== "" || /^[a-z0-9+.-]+:\/\/[^/?#]*@/i.test(raw)) return "must not carry credentials (user:password@)";
  if (isLocalDevUrl(u)) {
    if (policy.development === false) return "http://127.0.0.1 is allowed only with ENVIRONMENT=development; use an https URL";
    return null;
  }
  if (u.protocol !== "https:") return "must use https";
  // The parser drops :443; any port left is a non-default one.
  if (u.port !== "") return "must use the default https port (443)";
  const host = u.hostname.toLowerCase().replace(/\.$/, "");
  if (host === "") return "must name a host";
  if (host.startsWith("[")) {
    const groups = v6Groups(host.slice(1, -1));
    if (!groups || blockedV6(groups)) return "must not be a loopback, private, link-local, unique-local or IPv4-mapped IPv6 address";
    return null;
  }
  const v4 = v4ToInt(host);
  if (v4 !== null) {
    if (blockedV4(v4)) return "must not be a private, loopback, link-local, CGNAT, reserved or metadata IP address";
    return null;
  }
  if (!host.includes(".")) return "must be a public host name (a single-label name is internal)";
  if (INTERNAL_NAME.test(host)) return "must be a public host name, not localhost or an internal domain";
  return null;
}
