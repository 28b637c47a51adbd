import { z } from "@hono/zod-openapi";
import { ERROR_CODES, type ErrorCode } from "./errors";

export { z };

// A missing field reads "is required" rather than "expected string, received undefined".
z.config({ customError: (issue) => (issue.input === undefined && issue.code === "invalid_type" ? "is required" : undefined) });

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    request_id: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })),
  })
  .openapi("Problem");

/** The problem responses of a route, grouped by status, for its OpenAPI entry. */
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
        description: list.map((c) => `\`${c}\``).join(", "),
        content: { "application/problem+json": { schema: ProblemSchema } },
      },
    ]),
  );
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
