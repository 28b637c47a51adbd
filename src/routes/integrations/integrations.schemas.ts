import { namedRecord, z } from "../../lib/openapi";
import { orderByParam, PageQuery } from "../../lib/pagination";
import { singleLine } from "../../lib/text";
import { iso } from "../../lib/time";

export const KIND_PATTERN = /^[a-z][a-z0-9_]{1,39}$/;
export const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export const MAX_CONFIG_BYTES = 16 * 1024;
export const MAX_SECRETS = 20;
export const MAX_SECRET_LENGTH = 8192;
/** Per request, and in total per integration (so reading one costs a bounded number of rows). */
export const MAX_ENVIRONMENTS = 100;
export const MAX_ENVIRONMENT_NAME = 100;
// As singleLine: invisible characters in an environment name would let two names look alike.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export const IntegrationCreateInput = z
  .object({
    kind: z.string().regex(KIND_PATTERN, "must be a lower-case slug: ^[a-z][a-z0-9_]{1,39}$").openapi({
      example: "vercel",
      description: "What is integrated: `vercel`, `aws_marketplace`, `github`, `slack`, `lambdatest`, … (`^[a-z][a-z0-9_]{1,39}$`).",
    }),
    display_name: singleLine(100),
    config: z
      .record(z.string(), z.unknown())
      .refine((c) => new TextEncoder().encode(JSON.stringify(c)).length <= MAX_CONFIG_BYTES, `must be at most ${MAX_CONFIG_BYTES} bytes as JSON`)
      .openapi({
        description: "Non-secret settings, a JSON object of at most 16 KiB serialized (larger: 400); returned as stored. Put credentials in `secrets`.",
      }),
    secrets: namedRecord(z.string().min(1, "must not be empty").max(MAX_SECRET_LENGTH, `must be at most ${MAX_SECRET_LENGTH} characters`), {
      pattern: SECRET_NAME,
      message: "secret names are 1–64 letters, digits, `_`, `.` or `-`",
      max: MAX_SECRETS,
      noun: "secrets",
    })
      .optional()
      .openapi({
        description: `Write-only credentials (≤ ${MAX_SECRETS}, each ≤ ${MAX_SECRET_LENGTH} characters), encrypted at rest (AES-GCM); read back only as \`{set, updated_at}\`.`,
      }),
  })
  .openapi("IntegrationCreate");

export const EnvironmentMappingInput = z
  .object({
    mapping: z
      .record(z.string(), z.string().max(64, "must be a project id (`prj_…`) or null").nullable())
      .superRefine((m, ctx) => {
        const keys = Object.keys(m);
        if (keys.length === 0) ctx.addIssue({ code: "custom", message: "must name at least one environment" });
        if (keys.length > MAX_ENVIRONMENTS) ctx.addIssue({ code: "custom", message: `at most ${MAX_ENVIRONMENTS} environments per request` });
        for (const k of keys) {
          // Refused rather than trimmed: trimming could fold two keys of one request into one.
          const bad =
            k.length === 0 || k.trim() !== k
              ? "environment names must be non-empty and not start or end with spaces"
              : k.length > MAX_ENVIRONMENT_NAME
                ? `environment names must be at most ${MAX_ENVIRONMENT_NAME} characters`
                : CONTROL.test(k)
                  ? "environment names must not contain control characters or line breaks"
                  : null;
          if (bad) ctx.addIssue({ code: "custom", path: [k], message: bad });
        }
      })
      .openapi({
        description: `External environment name → project id (\`prj_…\`) of this organization, or \`null\` to remove that environment. Environments not named are kept. 1–${MAX_ENVIRONMENTS} entries; names ≤ ${MAX_ENVIRONMENT_NAME} characters on one line; an integration maps at most ${MAX_ENVIRONMENTS} environments in all.`,
        example: { production: "prj_01JD6Q5W8ZK3H0V8N6C2Y4T1RB", preview: null },
        minProperties: 1,
        maxProperties: MAX_ENVIRONMENTS,
        // The checks above as one pattern: no surrounding whitespace, no control characters.
        ...({
          propertyNames: {
            type: "string",
            pattern: "^(?!\\s)(?!.*\\s$)[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$",
            minLength: 1,
            maxLength: MAX_ENVIRONMENT_NAME,
          },
        } as object),
      }),
  })
  .openapi("EnvironmentMappingPatch");

export const IntegrationListQuery = PageQuery.extend({
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({ param: { name: "filter", in: "query" }, description: 'AIP-160 subset: `kind = "vercel"` (exact; one index range per page).' }),
  order_by: orderByParam({ fields: ["created_at"], default: "created_at", only: true }),
});

export const IntegrationSchema = z
  .object({
    id: z.string().openapi({ example: "int_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    kind: z.string(),
    display_name: z.string(),
    config: z.record(z.string(), z.unknown()),
    secrets: z
      .record(z.string(), z.object({ set: z.literal(true), updated_at: z.string() }))
      .openapi({ description: "Names of stored secrets; values are never returned." }),
    environment_mapping: z.record(z.string(), z.string()).openapi({ description: "External environment → project id." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Integration");

export interface IntegrationRow {
  id: string;
  kind: string;
  displayName: string;
  config: Record<string, unknown>;
  secretNames: Record<string, number>;
  mapping: string | null;
  createdAt: number;
  updatedAt: number;
}

export const serializeIntegration = (r: IntegrationRow) => ({
  id: r.id,
  kind: r.kind,
  display_name: r.displayName,
  config: r.config,
  secrets: Object.fromEntries(Object.entries(r.secretNames).map(([name, at]) => [name, { set: true as const, updated_at: iso(at) }])),
  environment_mapping: r.mapping ? (JSON.parse(r.mapping) as Record<string, string>) : {},
  created_at: iso(r.createdAt),
  updated_at: iso(r.updatedAt),
});
