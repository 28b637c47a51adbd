import { refuseRepeats, z } from "../../lib/openapi";
import { SCOPES } from "../../lib/permissions";
import { iso, isoOrNull } from "../../lib/time";
import { RoleNameInput } from "../members/members.schemas";
import { singleLine } from "../../lib/text";

export const ServiceAccountCreateInput = z
  .object({
    name: singleLine(100),
    role: RoleNameInput.default("service_account"),
    scopes: refuseRepeats(z.array(z.enum(SCOPES)).min(1, "must name at least one scope").max(SCOPES.length), "must not repeat a scope")
      .optional()
      .openapi({ description: "Narrow the role's permissions; omitted: every scope (the role alone decides)." }),
  })
  .openapi("ServiceAccountCreate");

export const RotateKeyInput = z
  .object({
    grace_seconds: z
      .number()
      .int()
      .min(0)
      .max(86_400)
      .optional()
      .openapi({ description: "Keep the old key working this long (≤ 86400); omitted or 0: it stops at once." }),
  })
  .openapi("RotateKey");

export const ServiceAccountSchema = z
  .object({
    id: z.string().openapi({ example: "sa_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    organization_id: z.string(),
    name: z.string(),
    role: z.string(),
    scopes: z.array(z.string()),
    key_prefix: z.string().nullable().openapi({ description: "The start of the current key." }),
    created_by: z.string().nullable(),
    last_used_at: z.string().nullable().openapi({ description: "Written at most once a minute." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("ServiceAccount");

export const ServiceAccountWithKeySchema = z
  .object({ service_account: ServiceAccountSchema, key: z.string().openapi({ description: "The secret `sak_…`, shown once." }) })
  .openapi("ServiceAccountWithKey");

export interface ServiceAccountView {
  id: string;
  organizationId: string;
  name: string;
  role: string;
  scopes: string[];
  keyPrefix: string | null;
  createdBy: string | null;
  lastUsedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export const serializeServiceAccount = (s: ServiceAccountView) => ({
  id: s.id,
  organization_id: s.organizationId,
  name: s.name,
  role: s.role,
  scopes: s.scopes,
  key_prefix: s.keyPrefix,
  created_by: s.createdBy,
  last_used_at: isoOrNull(s.lastUsedAt),
  created_at: iso(s.createdAt),
  updated_at: iso(s.updatedAt),
});
