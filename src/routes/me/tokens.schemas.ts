import { refuseRepeats, z } from "../../lib/openapi";
import { SCOPES } from "../../lib/permissions";
import { iso, isoOrNull } from "../../lib/time";
import { singleLine } from "../../lib/text";

export const ScopeInput = z.enum(SCOPES);

/** Every token expires: a leaked one stops on its own. */
export const DEFAULT_TOKEN_DAYS = 90;
export const MAX_TOKEN_DAYS = 365;

export const TokenCreateInput = z
  .object({
    name: singleLine(100),
    scopes: refuseRepeats(z.array(ScopeInput).min(1, "must name at least one scope").max(SCOPES.length), "must not repeat a scope"),
    expires_in_days: z
      .number()
      .int()
      .min(1)
      .max(MAX_TOKEN_DAYS)
      .optional()
      .openapi({ description: `1–${MAX_TOKEN_DAYS}; omitted: ${DEFAULT_TOKEN_DAYS}. Every token expires.` }),
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

export const CreatedTokenSchema = TokenSchema.extend({ token: z.string().openapi({ description: "The secret `pat_…`, shown once." }) }).openapi(
  "CreatedPersonalAccessToken",
);

export function serializeToken(t: {
  id: string;
  name: string;
  scopes: string[];
  tokenPrefix: string;
  expiresAt: number | null;
  lastUsedAt: number | null;
  createdAt: number;
}) {
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
