import { z } from "@hono/zod-openapi";

// C0 and C1 control characters, DEL, and the Unicode line/paragraph separators: invisible in a
// UI, they let a name impersonate another or break a log line, an email header or a CSV export.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// The same, but a multi-line text keeps its line breaks and tabs.
const CONTROL_EXCEPT_LINES = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/**
 * Whitespace or control characters in a URL: the URL parser drops tabs and line breaks and trims
 * spaces, so a URL holding any would be stored as one thing and mean another. Refused before parsing.
 */
export const URL_WHITESPACE_OR_CONTROL = /[\s\u0000-\u001f\u007f-\u009f]/;

/** A one-line human text (names, titles): trimmed, no control characters. */
export const singleLine = (max: number, what = "characters") =>
  z
    .string()
    .trim()
    .min(1, "must not be empty")
    .max(max, `must be at most ${max} ${what}`)
    .refine((v) => !CONTROL.test(v), "must not contain control characters or line breaks");

/** A free text that may span lines (descriptions, messages): no control characters but line breaks and tabs. */
export const multiLine = (max: number) =>
  z
    .string()
    .trim()
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !CONTROL_EXCEPT_LINES.test(v), "must not contain control characters");
