import { expect } from "vitest";
import type { ApiResponse } from "./client";

/**
 * Asserts an RFC 9457 problem with our stable `code`, whose `type` is the code's entry in the
 * catalogue the API serves (GET /docs/problems), and returns its body.
 */
export function expectProblem(res: ApiResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const type = expect.stringMatching(new RegExp(`^https?://[^/]+/docs/problems#${code}$`));
  expect(res.body).toMatchObject({ type, title: expect.any(String), status, detail: expect.any(String), code });
  expect(res.body.request_id).toBe(res.headers.get("x-request-id"));
  expect(Array.isArray(res.body.errors)).toBe(true);
  return res.body;
}

/** The field paths a validation problem names, in the order it names them. */
export const errorPaths = (res: ApiResponse): string[] => (res.body.errors as { path: string }[]).map((e) => e.path);

export const sortedErrorPaths = (res: ApiResponse): string[] => errorPaths(res).sort();
