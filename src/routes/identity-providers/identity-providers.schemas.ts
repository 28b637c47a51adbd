import { z } from "../../lib/openapi";
import { singleLine, URL_WHITESPACE_OR_CONTROL } from "../../lib/text";
import { iso, isoOrNull } from "../../lib/time";
import { CertificateError, MAX_CERTIFICATE_CHARS, MIN_RSA_BITS, parseCertificatePem, type ParsedCertificate } from "../../sso/certificate";
import type { SpUrls } from "../../sso/metadata";

export const MAX_SSO_URL = 2048;

/**
 * Where we send the person's browser with the AuthnRequest. Query strings are allowed (Google
 * Workspace's SSO URL carries `?idpid=`); credentials and fragments are not. Plain http is only
 * accepted with ENVIRONMENT=development, which the service checks (the schema cannot see config).
 */
export const SsoUrl = z
  .string()
  .max(MAX_SSO_URL, `must be at most ${MAX_SSO_URL} characters`)
  .superRefine((v, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: "custom", message });
    if (URL_WHITESPACE_OR_CONTROL.test(v)) return fail("must not contain spaces or control characters");
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return fail("must be an absolute https URL such as https://idp.example.com/sso/saml");
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") return fail("must be an https URL");
    if (!/^https?:\/\/[^/?#]/i.test(v) || u.hostname === "") return fail("must name a host");
    if (u.username !== "" || u.password !== "" || /^https?:\/\/[^/?#]*@/i.test(v)) return fail("must not carry credentials");
    if (v.includes("#")) return fail("must not have a fragment");
  })
  .openapi({
    example: "https://acme.okta.com/app/acme_tenancy_1/exk1a2b3c4/sso/saml",
    description: "The IdP's SAML 2.0 single sign-on URL (HTTP-Redirect binding), https (≤ 2048 characters; http only with ENVIRONMENT=development).",
  });

// A self-signed ECDSA P-256 certificate valid until 2126 whose key was discarded: the document's
// example must be one the server accepts, so a client built from the document can try the route.
const EXAMPLE_CERTIFICATE =
  "MIIBijCCATGgAwIBAgIUcCZE2SDMqbKhywGs4ySSRRUoeMUwCgYIKoZIzj0EAwIwGjEYMBYGA1UEAwwPaWRwLmV4YW1wbGUuY29tMCAXDTI2MTIwMTA2MTQxM1oYDzIxMjYxMTA3MDYxNDEzWjAaMRgwFgYDVQQDDA9pZHAuZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASgRg9CzR6k9MPhdFjUj+niFO8HLbyUsk4riYpvm9k+oD0GIygaQhKhXAsEMhsAiayW6aXDAAE3XrsBHLBa59tyo1MwUTAdBgNVHQ4EFgQUSktaodveM38CCxY45VxIEgFueJowHwYDVR0jBBgwFoAUSktaodveM38CCxY45VxIEgFueJowDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiAHRGtaeJ50LRzQqKTLjvuOrSlHG8Gm4oZ/FNzZm0oGVAIgVMhGsD90YCT4utmwdbv/jz8fx7mU9aTAMAAk67QA034=";

/** A certificate field: parsed and judged here, so a bad one is listed with the other bad fields. */
export const CertificateInput = z
  .string()
  .max(MAX_CERTIFICATE_CHARS, `must be at most ${MAX_CERTIFICATE_CHARS} characters`)
  .transform((v, ctx): ParsedCertificate => {
    let parsed: ParsedCertificate;
    try {
      parsed = parseCertificatePem(v);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof CertificateError ? err.message : "is not a valid certificate" });
      return z.NEVER;
    }
    if (parsed.notAfter <= Date.now()) {
      ctx.addIssue({ code: "custom", message: `expired on ${iso(parsed.notAfter)}: download the identity provider's current signing certificate` });
      return z.NEVER;
    }
    return parsed;
  })
  .openapi({
    description: `The IdP's X.509 signing certificate: a PEM block (\`-----BEGIN CERTIFICATE-----\`) or its bare base64 body as found in IdP metadata. RSA (≥ ${MIN_RSA_BITS} bits) or ECDSA (P-256, P-384, P-521). An expired certificate is refused (400); one not yet valid is accepted (a rollover certificate). Stored and returned as PEM; it is public.`,
    example: EXAMPLE_CERTIFICATE,
  });

const EntityId = singleLine(1024).openapi({
  example: "http://www.okta.com/exk1a2b3c4d5E6f7g8h9",
  description:
    "The IdP's entity id (the Issuer of its responses): Okta's “Identity Provider Issuer”, Entra ID's “Microsoft Entra Identifier”. ≤ 1024 characters.",
});
const Name = singleLine(100).openapi({ example: "Okta" });

export const IdpCreateInput = z
  .object({
    name: Name,
    saml_entity_id: EntityId,
    saml_sso_url: SsoUrl.nullable().optional(),
    saml_x509_cert: CertificateInput.nullable().optional(),
    saml_x509_cert_secondary: CertificateInput.nullable().optional().openapi({
      description:
        "A second certificate that also verifies, for a signing-certificate rollover. Same rules as `saml_x509_cert`, and not the same certificate as the primary one.",
    }),
    allow_idp_initiated: z
      .boolean()
      .default(false)
      .openapi({ description: "Accept responses the IdP sends unasked (IdP-initiated login, no InResponseTo). Default false." }),
    allow_sha1: z.boolean().default(false).openapi({ description: "Accept SHA-1 digests and signatures from a legacy IdP. Default false." }),
    scim_enabled: z.boolean().default(false),
  })
  .openapi("IdentityProviderConfigCreate");

export const IdpUpdateInput = z
  .object({
    name: Name.optional(),
    saml_entity_id: EntityId.optional(),
    saml_sso_url: SsoUrl.nullable().optional().openapi({ description: "`null` removes it (SP-initiated login then stops)." }),
    saml_x509_cert: CertificateInput.nullable()
      .optional()
      .openapi({ description: "Replaces the primary certificate; `null` removes it (no login verifies then)." }),
    saml_x509_cert_secondary: CertificateInput.nullable()
      .optional()
      .openapi({ description: "Sets or replaces the rollover certificate; `null` removes it. Not the same certificate as the primary one." }),
    promote_secondary_cert: z.literal(true).optional().openapi({
      description:
        "`true`: the secondary certificate becomes the primary and the secondary is cleared (409 `conflict` when there is none). Not combined with either certificate field.",
    }),
    allow_idp_initiated: z.boolean().optional(),
    allow_sha1: z.boolean().optional(),
    scim_enabled: z.boolean().optional(),
  })
  .superRefine((v, ctx) => {
    if (v.promote_secondary_cert && (v.saml_x509_cert !== undefined || v.saml_x509_cert_secondary !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["promote_secondary_cert"], message: "cannot be combined with saml_x509_cert or saml_x509_cert_secondary" });
    }
  })
  .openapi("IdentityProviderConfigUpdate");

export const SamlSsoInput = z
  .object({
    entity_id: EntityId,
    sso_url: SsoUrl.nullable().optional().openapi({ description: "Omitted: unchanged (none on creation); `null` removes it." }),
    x509_cert: CertificateInput.nullable()
      .optional()
      .openapi({ description: "Omitted: unchanged (none on creation); `null` removes it. Same rules as `saml_x509_cert`." }),
  })
  .openapi("SamlSsoUpsert");

export const IdpSchema = z
  .object({
    id: z.string().openapi({ example: "idp_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    organization_id: z.string(),
    name: z.string(),
    saml_entity_id: z.string(),
    saml_sso_url: z.string().nullable(),
    saml_x509_cert: z.string().nullable().openapi({ description: "PEM. Public: the IdP's certificate, not a secret." }),
    saml_x509_cert_expires_at: z.string().nullable(),
    saml_x509_cert_secondary: z.string().nullable(),
    saml_x509_cert_secondary_expires_at: z.string().nullable(),
    allow_idp_initiated: z.boolean(),
    allow_sha1: z.boolean(),
    scim_enabled: z.boolean(),
    default: z.boolean().openapi({ description: "Whether this is the configuration `…/saml-sso` manages (at most one per organization)." }),
    sp_entity_id: z.string().openapi({ description: "Our entity id (Okta: Audience URI; Entra ID: Identifier). It is the metadata URL." }),
    acs_url: z.string().openapi({ description: "Our assertion consumer service, HTTP-POST binding (Okta: Single sign-on URL; Entra ID: Reply URL)." }),
    metadata_url: z.string().openapi({ description: "Our SP metadata XML, for IdPs that import it." }),
    login_url: z.string().openapi({ description: "Starts an SP-initiated login with this IdP." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("IdentityProviderConfig");

export interface IdpRow {
  id: string;
  organizationId: string;
  name: string;
  samlEntityId: string;
  samlSsoUrl: string | null;
  samlX509Cert: string | null;
  samlX509CertExpiresAt: number | null;
  samlX509CertSecondary: string | null;
  samlX509CertSecondaryExpiresAt: number | null;
  allowIdpInitiated: boolean;
  allowSha1: boolean;
  scimEnabled: boolean;
  isDefault: boolean;
  createdAt: number;
  updatedAt: number;
}

export const serializeIdp = (r: IdpRow, sp: SpUrls) => ({
  id: r.id,
  organization_id: r.organizationId,
  name: r.name,
  saml_entity_id: r.samlEntityId,
  saml_sso_url: r.samlSsoUrl,
  saml_x509_cert: r.samlX509Cert,
  saml_x509_cert_expires_at: isoOrNull(r.samlX509CertExpiresAt),
  saml_x509_cert_secondary: r.samlX509CertSecondary,
  saml_x509_cert_secondary_expires_at: isoOrNull(r.samlX509CertSecondaryExpiresAt),
  allow_idp_initiated: Boolean(r.allowIdpInitiated),
  allow_sha1: Boolean(r.allowSha1),
  scim_enabled: Boolean(r.scimEnabled),
  default: Boolean(r.isDefault),
  sp_entity_id: sp.sp_entity_id,
  acs_url: sp.acs_url,
  metadata_url: sp.metadata_url,
  login_url: sp.login_url,
  created_at: iso(r.createdAt),
  updated_at: iso(r.updatedAt),
});
