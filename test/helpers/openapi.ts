import { get } from "./client";

export interface Operation {
  method: string;
  path: string;
  op: Record<string, any>;
  auth: { kind: string; permission?: string; scope?: string | null };
}

let cached: Promise<Operation[]> | undefined;

/** Every operation of the served OpenAPI document, with its `x-authorization` rule. */
export function operations(): Promise<Operation[]> {
  cached ??= get("/openapi.json").then((res) =>
    Object.entries(res.body.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => ({ method: method.toUpperCase(), path, op, auth: op["x-authorization"] })),
    ),
  );
  return cached;
}

/** Fills `{param}` placeholders: `{org_id}` from `orgId`, anything else from `other`. */
export function fillPath(path: string, orgId: string, other = "x_00000000000000000000000000"): string {
  return path.replace(/\{([a-z_]+)\}/g, (_, name: string) => (name === "org_id" ? orgId : other));
}
