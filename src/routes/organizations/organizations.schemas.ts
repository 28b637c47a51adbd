import { z } from "../../lib/openapi";
import { fromBase64 } from "../../lib/encoding";
import { iso } from "../../lib/time";
import { multiLine, singleLine } from "../../lib/text";

export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
export const MAX_LOGO_BYTES = 256 * 1024;
const LOGO_PREFIX = /^data:image\/(png|jpeg|svg\+xml|webp);base64,/;
// What the checks below accept, for the document: the prefix, then non-empty base64 (padding optional).
const LOGO_PATTERN = /^data:image\/(png|jpeg|svg\+xml|webp);base64,(?=[A-Za-z0-9+/])(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
const ONE_PIXEL_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

export const NameInput = singleLine(100);
export const SlugInput = z
  .string()
  .regex(SLUG_PATTERN, "must be 1–64 lower-case letters, digits or dashes, not starting or ending with a dash")
  .openapi({ example: "acme" });
export const DescriptionInput = multiLine(1000);

export const LogoInput = z
  .string()
  // A base64 string of 256 KiB decoded is ~350 KB; anything far longer is refused before decoding.
  .max(400_000, "must be a data URI of at most 256 KiB")
  .superRefine((v, ctx) => {
    const m = LOGO_PREFIX.exec(v);
    if (!m) {
      ctx.addIssue({ code: "custom", message: "must be a data:image/(png|jpeg|svg+xml|webp);base64, URI" });
      return;
    }
    const b64 = v.slice(m[0].length);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) {
      ctx.addIssue({ code: "custom", message: "must contain valid base64 data" });
      return;
    }
    let bytes: number;
    try {
      bytes = fromBase64(b64).length;
    } catch {
      ctx.addIssue({ code: "custom", message: "must contain valid base64 data" });
      return;
    }
    if (bytes === 0) ctx.addIssue({ code: "custom", message: "must not be empty" });
    if (bytes > MAX_LOGO_BYTES) ctx.addIssue({ code: "custom", message: `image is ${bytes} bytes; the limit is ${MAX_LOGO_BYTES}` });
  })
  .openapi({
    description: "A `data:image/(png|jpeg|svg+xml|webp);base64,` URI; the decoded image is at most 256 KiB (a larger one is 400 naming its size).",
    pattern: LOGO_PATTERN.source,
    example: ONE_PIXEL_PNG,
  });

export const OrganizationCreateInput = z
  .object({
    name: NameInput,
    slug: SlugInput.optional(),
    description: DescriptionInput.optional(),
    logo_data_uri: LogoInput.optional(),
  })
  .openapi("OrganizationCreate");

export const OrganizationUpdateInput = z
  .object({
    name: NameInput.optional(),
    slug: SlugInput.optional(),
    description: DescriptionInput.nullable().optional(),
    logo_data_uri: LogoInput.nullable().optional(),
    active: z.boolean().optional(),
  })
  .openapi("OrganizationUpdate");

export const OwnerSchema = z.object({ id: z.string(), display_name: z.string(), email: z.string() }).nullable();

export const OrganizationSchema = z
  .object({
    id: z.string().openapi({ example: "org_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    name: z.string(),
    slug: z.string(),
    description: z.string().nullable(),
    logo_data_uri: z.string().nullable(),
    active: z.boolean(),
    owner: OwnerSchema.openapi({ description: "The creator; null once that account is deleted." }),
    member_count: z.number().int(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Organization");

export type OrganizationJson = z.infer<typeof OrganizationSchema>;

export interface OrganizationRow {
  id: string;
  name: string;
  slug: string;
  description: string | null;
  logoDataUri: string | null;
  active: boolean;
  memberCount: number;
  createdAt: number;
  updatedAt: number;
}

export function serializeOrganization(o: OrganizationRow, owner: { id: string; displayName: string; email: string } | null): OrganizationJson {
  return {
    id: o.id,
    name: o.name,
    slug: o.slug,
    description: o.description,
    logo_data_uri: o.logoDataUri,
    active: o.active,
    owner: owner ? { id: owner.id, display_name: owner.displayName, email: owner.email } : null,
    member_count: o.memberCount,
    created_at: iso(o.createdAt),
    updated_at: iso(o.updatedAt),
  };
}

export const MyOrganizationSchema = z.object({ organization: OrganizationSchema, role: z.string() }).openapi("OrganizationMembership");

export const PreferencesSchema = z
  .object({
    support_team_access: z.boolean().openapi({ description: "Lets the vendor's support team access the organization for debugging." }),
    sso_admin_bypass: z.boolean().openapi({ description: "Admins may still sign in with a password when SSO is required (default true)." }),
  })
  .openapi("Preferences");

export const PreferencesUpdateInput = z
  .object({ support_team_access: z.boolean().optional(), sso_admin_bypass: z.boolean().optional() })
  .openapi("PreferencesUpdate");
