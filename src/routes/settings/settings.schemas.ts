import { namedRecord, z } from "../../lib/openapi";

export const MAX_SETTINGS_BYTES = 64 * 1024;
export const MAX_SECRETS = 50;
export const SECRET_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export const SettingsPutInput = z
  .object({
    settings: z
      .record(z.string(), z.unknown())
      .refine((s) => new TextEncoder().encode(JSON.stringify(s)).length <= MAX_SETTINGS_BYTES, `must be at most ${MAX_SETTINGS_BYTES} bytes as JSON`)
      .optional()
      .openapi({ description: "Free-form JSON object (≤ 64 KiB); replaces the stored settings. Omitted: unchanged." }),
    secrets: namedRecord(z.string().min(1, "must not be empty").max(8192, "must be at most 8192 characters").nullable(), {
      pattern: SECRET_NAME,
      message: "secret names are 1–64 letters, digits, `_`, `.` or `-`",
      max: MAX_SECRETS,
      noun: "secrets",
    })
      .optional()
      .openapi({ description: "Secrets to set (string) or delete (null); secrets not named are unchanged. Write-only." }),
  })
  .openapi("SettingsPut");

export const SettingsSchema = z
  .object({
    settings: z.record(z.string(), z.unknown()),
    secrets: z
      .record(z.string(), z.object({ set: z.literal(true), updated_at: z.string() }))
      .openapi({ description: "Names of stored secrets; values are never returned." }),
    updated_at: z.string().nullable(),
  })
  .openapi("Settings");
