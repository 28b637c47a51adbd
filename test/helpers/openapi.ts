import { dereference, validate, type Schema } from "@cfworker/json-schema";
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

/**
 * Checks a response body against the schema the document gives for its operation and status, as
 * an OpenAPI fuzzer does (schemathesis's response_schema_conformance): the served document,
 * dereferenced once, validated with @cfworker/json-schema (no code generation, so it runs in
 * workerd). Returns the validator's errors; none when the status documents no JSON body.
 */
type Conformance = (o: Operation, status: number, contentType: string | null, body: unknown) => string[];

async function responseConformance(): Promise<Conformance> {
  const doc = withoutExamples((await get("/openapi.json")).body) as Record<string, any>;
  const lookup = dereference(doc);
  return (o, status, contentType, body) => {
    const response = doc.paths[o.path]?.[o.method.toLowerCase()]?.responses?.[String(status)];
    if (!response) return [`${status} is not a documented response`];
    const content = response.content as Record<string, { schema?: unknown }> | undefined;
    if (!content) return [];
    const type = (contentType ?? "").split(";")[0]!.trim();
    const documented = content[type];
    if (!documented) return [`${status} answered ${type || "no content type"}, documented: ${Object.keys(content).join(", ")}`];
    if (!/json/.test(type) || !documented.schema) return [];
    const result = validate(body, documented.schema as Schema, "2020-12", lookup, false);
    return result.valid ? [] : result.errors.filter((e) => e.keyword !== "properties" && e.keyword !== "items").map((e) => `${e.instanceLocation}: ${e.error}`);
  };
}

/** Examples hold objects with `id` fields, which a JSON Schema reader would take for schema ids. */
function withoutExamples(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutExamples);
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([k]) => k !== "example" && k !== "examples")
      .map(([k, v]) => [k, withoutExamples(v)]),
  );
}

let matcher: Promise<{ conforms: Conformance; find: (method: string, path: string) => Operation | undefined }> | undefined;

/**
 * What the document says is wrong with a response to METHOD PATH (a concrete path, query string
 * allowed), or [] when it conforms or no documented operation matches (an unknown path, a
 * method the path does not have: those are 404/405 by design, outside any operation).
 */
export async function nonConformance(method: string, path: string, status: number, contentType: string | null, body: unknown): Promise<string[]> {
  matcher ??= (async () => {
    const ops = await operations();
    const conforms = await responseConformance();
    // The router prefers a literal segment (`…/invitations/batch`) to a parameter (`…/{invitation_id}`): so does the lookup.
    const compiled = ops
      .map((o) => ({ o, params: o.path.split("{").length, re: new RegExp(`^${o.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{[^}]+\}/g, "[^/]+")}$`) }))
      .sort((a, b) => a.params - b.params);
    return { conforms, find: (m, p) => compiled.find((c) => c.o.method === m && c.re.test(p))?.o };
  })();
  // A 5xx is a failure of its own, which the tests that provoke one (a broken configuration) expect.
  if (status >= 500) return [];
  const { conforms, find } = await matcher;
  const bare = path.split("?")[0]!;
  const o = find(method, bare);
  return o ? conforms(o, status, contentType, body) : [];
}
