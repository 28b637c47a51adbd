import { z } from "../../lib/openapi";
import { SCOPES } from "../../lib/permissions";
import { iso, isoOrNull } from "../../lib/time";

export const ScopeInput = z.enum(SCOPES);

export const TokenCreateInput = z
  .object({
    name: z.string().trim().min(1, "must not be empty").max(100, "must be at most 100 characters"),
    scopes: z
      .array(ScopeInput)
      .min(1, "must name at least one scope")
      .max(SCOPES.length)
      .refine((s) => new Set(s).size === s.length, "must not repeat a scope"),
    expires_in_days: z.number().int().min(1).max(365).optional().openapi({ description: "1–365; omitted: the token does not expire." }),
  })
  .openapi("PersonalAccessTokenCreate");

export const TokenSchema = z
  .object({
    id: z.string().openapi({ example: "tok_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    name: z.string(),
    scopes: z.array(z.string()),
    token_prefix: z.string().openapi({ description: "The first characters of the token, to recognise it." }),
    expires_at: z.string().nullable(),
    last_used_at: z.string().nullable().openapi({ description: "Updated at most once a minute." }),
    created_at: z.string(),
  })
  .openapi("PersonalAccessToken");

export const CreatedTokenSchema = TokenSchema.extend({ token: z.string().openapi({ description: "The secret `pat_…`, shown once." }) }).openapi("CreatedPersonalAccessToken");

export function serializeToken(t: { id: string; name: string; scopes: string[]; tokenPrefix: string; expiresAt: number | null; lastUsedAt: number | null; createdAt: number }) {
  return {
    id: t.id,
    name: t.name,
    scopes: t.scopes,
    token_prefix: t.tokenPrefix,
    expires_at: isoOrNull(t.expiresAt),
    last_used_at: isoOrNull(t.lastUsedAt),
    created_at: iso(t.createdAt),
  };
}
