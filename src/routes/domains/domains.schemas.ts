import { SSO_ENFORCEMENT } from "../../db/schema/sso";
import { z } from "../../lib/openapi";
import { iso, isoOrNull } from "../../lib/time";
import { EmailInput } from "../users/users.schemas";

export const VERIFICATION_PREFIX = "_tenancy-verification";
export const VERIFICATION_VALUE_PREFIX = "tenancy-verification=";

// Characters that would make `http://<input>` parse as something other than a bare host (a path,
// a port, credentials, an IPv6 literal, a percent-escape) or that no hostname holds.
const NOT_A_HOST = /[\s/\\?#@:[\]%<>^|"'`{}*,;=!$&()+~\u0000-\u001f\u007f-\u009f]/;
const IPV4 = /^\d+(\.\d+){0,3}$|^0x/i;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * The stored form of a domain: lower-case, without the one trailing dot a fully qualified name
 * may carry, Unicode names in their punycode (ASCII) form as DNS and email addresses carry them.
 * Refuses IP literals, single labels (`localhost`, `intranet`), wildcards and anything longer
 * than DNS allows.
 */
export function normalizeDomain(raw: string): { domain: string } | { problem: string } {
  let d = raw.trim().toLowerCase();
  if (d.endsWith(".")) d = d.slice(0, -1);
  if (d === "") return { problem: "must not be empty" };
  if (d.includes("*")) return { problem: "must be one domain name, not a wildcard" };
  if (d.includes(":") || d.startsWith("[")) return { problem: "must be a domain name, not an IP address" };
  if (NOT_A_HOST.test(d)) return { problem: "must be a bare domain name such as example.com (no scheme, path, port or spaces)" };
  let host: string;
  try {
    host = new URL(`http://${d}`).hostname;
  } catch {
    return { problem: "is not a valid domain name" };
  }
  // The URL parser reads the last label as a number (`10.0.0.1`, `0x7f.1`) and rewrites it as IPv4.
  if (IPV4.test(d) || /^\d+(\.\d+){3}$/.test(host) || /^\d+$/.test(host.split(".").pop() ?? "")) return { problem: "must be a domain name, not an IP address" };
  if (host.length > 253) return { problem: "must be at most 253 characters (in its ASCII form)" };
  const labels = host.split(".");
  if (labels.length < 2) return { problem: "must have at least two labels (such as example.com)" };
  if (labels.some((l) => l.length > 63)) return { problem: "each label must be at most 63 characters" };
  if (!labels.every((l) => LABEL.test(l))) return { problem: "each label must be letters, digits and inner hyphens" };
  if (labels[labels.length - 1] === "localhost") return { problem: "must not be localhost" };
  return { domain: host };
}

export const DomainName = z
  .string()
  .max(1000, "must be at most 253 characters")
  .transform((v, ctx) => {
    const n = normalizeDomain(v);
    if ("problem" in n) {
      ctx.addIssue({ code: "custom", message: n.problem });
      return z.NEVER;
    }
    return n.domain;
  })
  .openapi({
    type: "string",
    maxLength: 253,
    example: "acme.com",
    description:
      "A domain your organization's email addresses use. Stored lower-case without a trailing dot; Unicode names are stored in punycode (`bücher.example` → `xn--bcher-kva.example`). IP addresses, single labels, `localhost`, wildcards and public email domains (gmail.com, outlook.com, …: 422 `public_email_domain`) are refused.",
  });

export const DomainCreateInput = z.object({ domain: DomainName }).openapi("DomainCreate");

export const DomainUpdateInput = z
  .object({
    jit_provisioning_enabled: z
      .boolean()
      .optional()
      .openapi({ description: "A person who verifies an address at this domain becomes a `user` member. Needs a verified domain to switch on." }),
    sso_enforcement: z.enum(SSO_ENFORCEMENT).optional().openapi({
      description: "`required` refuses password login for this domain's addresses (admins excepted while `sso_admin_bypass`). Needs a verified domain.",
    }),
    scim_enabled: z.boolean().optional().openapi({ description: "Needs a verified domain to switch on." }),
    identity_provider_config_id: z.string().nullable().optional().openapi({
      description:
        "An identity provider config of this organization (404 otherwise) used for this domain's SSO logins; null: the organization's default config.",
    }),
  })
  .openapi("DomainUpdate");

export const DomainSchema = z
  .object({
    id: z.string().openapi({ example: "dom_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    domain: z.string(),
    verification: z
      .object({
        type: z.literal("TXT"),
        name: z.string().openapi({ example: "_tenancy-verification.acme.com" }),
        value: z.string().openapi({ example: "tenancy-verification=3q2-7wEAAQ…" }),
      })
      .openapi({ description: "Publish this TXT record, then call `…/verify`." }),
    verified_at: z.string().nullable(),
    jit_provisioning_enabled: z.boolean(),
    sso_enforcement: z.enum(SSO_ENFORCEMENT),
    scim_enabled: z.boolean(),
    identity_provider_config_id: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Domain");

export const DiscoverQuery = z.object({
  email: EmailInput.openapi({ param: { name: "email", in: "query" }, type: "string", format: "email", example: "ada@acme.com" }),
});

export const DiscoverSchema = z
  .object({
    sso: z.boolean().openapi({ description: "True when an SSO login exists for the address: follow `login_url`." }),
    enforcement: z.enum(SSO_ENFORCEMENT).openapi({ description: "`required`: a password login will be refused (403 `sso_required`), admins excepted." }),
    organization_id: z.string().optional().openapi({ description: "The organization that verified the address's domain." }),
    login_url: z.string().optional().openapi({ description: "Starts the SAML login (`GET /v1/sso/saml/{config_id}/login`)." }),
  })
  .openapi("SsoDiscovery");

export interface DomainRow {
  id: string;
  domain: string;
  verificationToken: string;
  verifiedAt: number | null;
  jitProvisioningEnabled: boolean;
  ssoEnforcement: (typeof SSO_ENFORCEMENT)[number];
  scimEnabled: boolean;
  identityProviderConfigId: string | null;
  createdAt: number;
  updatedAt: number;
}

export const verificationRecord = (d: { domain: string; verificationToken: string }) => ({
  type: "TXT" as const,
  name: `${VERIFICATION_PREFIX}.${d.domain}`,
  value: `${VERIFICATION_VALUE_PREFIX}${d.verificationToken}`,
});

export const serializeDomain = (d: DomainRow) => ({
  id: d.id,
  domain: d.domain,
  verification: verificationRecord(d),
  verified_at: isoOrNull(d.verifiedAt),
  jit_provisioning_enabled: Boolean(d.jitProvisioningEnabled),
  sso_enforcement: d.ssoEnforcement,
  scim_enabled: Boolean(d.scimEnabled),
  identity_provider_config_id: d.identityProviderConfigId,
  created_at: iso(d.createdAt),
  updated_at: iso(d.updatedAt),
});
