import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { ERROR_CODES, problemTypeUri, type ErrorCode } from "./errors";

export { z };

// A missing field reads "is required" rather than "expected string, received undefined".
z.config({ customError: (issue) => (issue.input === undefined && issue.code === "invalid_type" ? "is required" : undefined) });

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ description: "`{API_BASE_URL}/docs/problems#<code>`: the code's entry in the problem catalogue." }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    request_id: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })),
  })
  .openapi("Problem");

/** Where the docs link a code: its anchor on the catalogue page, relative so it works on any host. */
const codeLink = (code: ErrorCode) => `[\`${code}\`](/docs/problems#${code})`;

/**
 * The problem responses of a route, grouped by status, for its OpenAPI entry: each code links to
 * the catalogue and has an example body (a shared component, see `registerProblemExamples`).
 */
export function errorResponses(codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      status,
      {
        description: list.map(codeLink).join(", "),
        content: {
          "application/problem+json": {
            schema: ProblemSchema,
            examples: Object.fromEntries(list.map((c) => [c, { $ref: `#/components/examples/${c}` }])),
          },
        },
      },
    ]),
  );
}

/**
 * One example problem per code, referenced by every route that may answer with it. Registered when
 * the document is first built, since an example's `type` holds the deployment's base URL.
 */
export function registerProblemExamples(app: Pick<OpenAPIHono, "openAPIRegistry">, apiBaseUrl: string) {
  for (const [code, { status, title }] of Object.entries(ERROR_CODES) as [ErrorCode, (typeof ERROR_CODES)[ErrorCode]][]) {
    app.openAPIRegistry.registerComponent("examples", code, {
      summary: title,
      value: {
        type: problemTypeUri(apiBaseUrl, code),
        title,
        status,
        detail: `${title}.`,
        code,
        request_id: "req_0123456789abcdef0123456789abcdef",
        errors: code === "validation_failed" ? [{ path: "email", message: "is required" }] : [],
      },
    });
  }
}

/** JSON request body; required so a missing or non-JSON body is rejected, never read as `{}`. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true as const, description, content: { "application/json": { schema } } };
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export const noContent = { description: "No content" } as const;

/** Path parameters are plain strings: a malformed id is a 404, never a 400. */
export const pathParam = (name: string) => z.string().openapi({ param: { name, in: "path" } });

/** An array whose repeated items are refused, published as `uniqueItems` so a generated client knows. */
export const refuseRepeats = <T extends z.ZodArray<z.ZodType>>(array: T, message: string) =>
  array.refine((v) => new Set(v).size === v.length, message).openapi({ uniqueItems: true });

/**
 * A record keyed by names matching `pattern`, at most `max` of them, published as `propertyNames`
 * and `maxProperties`. Names are judged here rather than by a key schema, whose message zod
 * replaces with a generic "Invalid key in record".
 */
export function namedRecord<V extends z.ZodType>(value: V, rule: { pattern: RegExp; message: string; max: number; noun: string }) {
  return (
    z
      .record(z.string(), value)
      .superRefine((record, ctx) => {
        const names = Object.keys(record);
        for (const name of names) if (!rule.pattern.test(name)) ctx.addIssue({ code: "custom", path: [name], message: rule.message });
        if (names.length > rule.max) ctx.addIssue({ code: "custom", message: `at most ${rule.max} ${rule.noun}` });
      })
      // `propertyNames` is JSON Schema 2020-12 (OpenAPI 3.1), missing from the 3.0-shaped metadata type.
      .openapi({ maxProperties: rule.max, ...({ propertyNames: { type: "string", pattern: rule.pattern.source } } as object) })
  );
}
