import { z } from "../../lib/openapi";
import { singleLine, URL_WHITESPACE_OR_CONTROL } from "../../lib/text";
import { iso } from "../../lib/time";

export const MAX_PROXY_URL = 2048;
const SCHEMES = ["http:", "https:", "socks5:"];

/**
 * `scheme://host[:port][/]`. A proxy is addressed by host and port; anything after (path, query,
 * fragment) is where a token or password would hide, and credentials belong in `username` and
 * `password`, which are stored apart and sealed.
 */
export const ProxyUrl = z
  .string()
  .max(MAX_PROXY_URL, `must be at most ${MAX_PROXY_URL} characters`)
  .superRefine((v, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: "custom", message });
    if (URL_WHITESPACE_OR_CONTROL.test(v)) return fail("must not contain spaces or control characters");
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return fail("must be an absolute URL such as http://proxy.example.com:3128");
    }
    if (!SCHEMES.includes(u.protocol)) return fail("the scheme must be http, https or socks5");
    // Checked on the text too: `http://@host` parses with an empty user.
    if (u.username !== "" || u.password !== "" || /^[a-z0-9+.-]+:\/\/[^/?#]*@/i.test(v)) {
      return fail("must not carry credentials; use username/password");
    }
    if (u.hostname === "" || !/^[a-z0-9+.-]+:\/\/[^/?#]/i.test(v)) return fail("must name a host");
    if (v.includes("#")) return fail("must not have a fragment");
    if (v.includes("?")) return fail("must not have a query string");
    if (u.pathname !== "" && u.pathname !== "/") return fail("must not have a path (a proxy is addressed by host and port)");
  })
  .openapi({
    example: "http://proxy.example.com:3128",
    description:
      "`http`, `https` or `socks5` `://host[:port]` (≤ 2048 characters). No credentials (send `username`/`password`), path, query string or fragment.",
  });

const Username = singleLine(256).openapi({ description: "Sent to the proxy with the password; ≤ 256 characters." });
const Password = z
  .string()
  .min(1, "must not be empty")
  .max(1024, "must be at most 1024 characters")
  .openapi({ description: "Write-only: stored encrypted (AES-GCM) and never returned; `password_set` says whether one is stored." });

export const ProxyCreateInput = z
  .object({
    name: singleLine(100),
    url: ProxyUrl,
    username: Username.optional(),
    password: Password.optional(),
  })
  .refine((p) => p.password === undefined || p.username !== undefined, { path: ["password"], message: "needs a username" })
  .openapi("ProxyCreate");

export const ProxyUpdateInput = z
  .object({
    name: singleLine(100).optional(),
    url: ProxyUrl.optional(),
    username: Username.nullable().optional().openapi({ description: "`null` removes it (and needs the password removed too)." }),
    password: Password.nullable().optional().openapi({ description: "Write-only; `null` removes it. Omitted: unchanged." }),
  })
  .openapi("ProxyUpdate");

export const DefaultProxyInput = z
  .object({
    proxy_id: z.string().nullable().openapi({ description: "A proxy of this organization, or `null` to clear the default." }),
  })
  .openapi("DefaultProxyPut");

export const ProxySchema = z
  .object({
    id: z.string().openapi({ example: "prx_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    name: z.string(),
    url: z.string(),
    username: z.string().nullable(),
    password_set: z.boolean().openapi({ description: "Whether a password is stored; the password itself is never returned." }),
    default: z.boolean().openapi({ description: "Whether this is the organization's default proxy (at most one is)." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Proxy");

export const DefaultProxySchema = z.object({ proxy: ProxySchema.nullable() }).openapi("DefaultProxy");

export interface ProxyRow {
  id: string;
  name: string;
  url: string;
  username: string | null;
  passwordSet: boolean | number;
  isDefault: boolean;
  createdAt: number;
  updatedAt: number;
}

export const serializeProxy = (p: ProxyRow) => ({
  id: p.id,
  name: p.name,
  url: p.url,
  username: p.username,
  password_set: Boolean(p.passwordSet),
  default: Boolean(p.isDefault),
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});
