import { describe, expect, it } from "vitest";
import { api } from "../helpers/client";
import { createOrg, createUser, unique } from "../helpers/factories";
import { fillPath, nonConformance, operations, type Operation } from "../helpers/openapi";
import { get } from "../helpers/client";

/**
 * Keeps /openapi.json honest: for every operation with a body or query, a request built only
 * from the document's constraints (types, enums, lengths, bounds, patterns, uniqueItems,
 * propertyNames, examples) must not be refused as `validation_failed`. A refusal means a rule
 * lives in code or a description only, and a generated client would send what the server
 * refuses. Arrays are sent with duplicates unless the schema says `uniqueItems`, numbers at their
 * documented bound (or -1 when there is none), strings with spaces and capitals unless a pattern
 * or format says otherwise. Other refusals (404 for the placeholder ids, 409, 422, a filter's
 * syntax) are about the data, not the document.
 */

type Schema = Record<string, any>;

let components: Record<string, Schema> = {};
const resolve = (s: Schema): Schema => (s?.$ref ? resolve(components[s.$ref.split("/").pop()!]!) : s);

/** Strings tried, in order, against a pattern that has no example. */
const PATTERN_CANDIDATES = ["a", "abc", "a1", "ab-c", "k1", "example.com", "smoke", "x_00000000000000000000000000"];

class Unsampleable extends Error {}

function typeOf(s: Schema): string | undefined {
  if (Array.isArray(s.type)) return s.type.find((t: string) => t !== "null");
  return s.type;
}

function sampleString(s: Schema, variant: number): string {
  if (s.format === "email") return `${unique("fz")}@example.com`;
  if (s.format === "date-time") return new Date(Date.now() + 86_400_000 * 30).toISOString();
  if (s.format === "uri" || s.format === "url") return "https://example.com/hook";
  if (s.pattern) {
    const re = new RegExp(s.pattern);
    const found = PATTERN_CANDIDATES.map((c) => (variant ? `${c}${variant}` : c)).find((c) => re.test(c) && c.length >= (s.minLength ?? 0));
    if (found) return found;
    throw new Unsampleable(`pattern ${s.pattern} has no example that matches it`);
  }
  const min = s.minLength ?? 0;
  const max = s.maxLength ?? Infinity;
  const base = `Zq9 vT${variant || ""}`;
  let out = base;
  while (out.length < min) out += base;
  return out.slice(0, Math.max(min, Math.min(out.length, max)));
}

function sample(schema: Schema, variant = 0, full = true): unknown {
  const s = resolve(schema);
  if (s === undefined) return undefined;
  if (s.example !== undefined && variant === 0 && typeOf(s) !== "object") return s.example;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[variant % s.enum.length];
  for (const key of ["anyOf", "oneOf"]) {
    if (s[key]) {
      const branch = (s[key] as Schema[]).map(resolve).find((b) => typeOf(b) !== "null" && b.type !== "null") ?? s[key][0];
      return sample(branch, variant, full);
    }
  }
  if (s.allOf) return Object.assign({}, ...s.allOf.map((b: Schema) => sample(b, variant, full)));
  switch (typeOf(s)) {
    case "string":
      return sampleString(s, variant);
    case "integer":
    case "number":
      if (s.minimum !== undefined) return s.minimum;
      if (s.exclusiveMinimum !== undefined) return s.exclusiveMinimum + 1;
      if (s.maximum !== undefined) return s.maximum;
      return -1;
    case "boolean":
      return true;
    case "array": {
      const items = resolve(s.items ?? {});
      const wanted = Math.min(Math.max(s.minItems ?? 0, 2), s.maxItems ?? Infinity);
      // Duplicates unless the document refuses them.
      if (!s.uniqueItems) return Array.from({ length: wanted }, () => sample(items, 0, full));
      const out: unknown[] = [];
      for (let i = 0; out.length < wanted && i < wanted * 2; i++) {
        let item: unknown;
        try {
          item = sample(items, i, full);
        } catch (err) {
          // A patterned item with one example: one item it is.
          if (err instanceof Unsampleable && i > 0) break;
          throw err;
        }
        if (!out.some((o) => JSON.stringify(o) === JSON.stringify(item))) out.push(item);
      }
      return out;
    }
    case "object": {
      const out: Record<string, unknown> = {};
      const required = new Set<string>(s.required ?? []);
      for (const [name, prop] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
        if (full || required.has(name)) out[name] = sample(prop, 0, full);
      }
      if (s.additionalProperties && typeof s.additionalProperties === "object" && Object.keys(out).length === 0 && s.maxProperties !== 0) {
        const key = s.propertyNames ? String(sampleString(resolve(s.propertyNames), 0)) : "Zq9 vT";
        out[key] = sample(s.additionalProperties, 0, full);
      }
      return out;
    }
    default:
      return {};
  }
}

function queryOf(op: Operation, full: boolean): string {
  const params = ((op.op.parameters ?? []) as Schema[]).filter((p) => p.in === "query" && (full || p.required));
  const q = new URLSearchParams();
  for (const p of params) {
    const v = p.example ?? sample(p.schema ?? {});
    q.set(p.name, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * Refusals no JSON Schema keyword can state (the data decides, or fields depend on each other).
 * Each must be stated in the operation's document: `documented` is looked up in its request's
 * descriptions, so deleting the sentence fails the test.
 */
const RULES_OUTSIDE_SCHEMA: { operation: string; path: string; message: string; documented: string }[] = [
  { operation: "PATCH /v1/me", path: "old_password", message: "is incorrect", documented: "refused as `is incorrect`" },
  {
    operation: "POST /v1/organizations/{org_id}/tags/batch-delete",
    path: "ids",
    message: "name at least one tag in ids or names",
    documented: "Name at least one tag",
  },
  {
    operation: "POST /v1/organizations/{org_id}/identity-provider-configs",
    path: "saml_x509_cert_secondary",
    message: "is the same certificate as the primary one",
    documented: "not the same certificate as the primary one",
  },
  {
    operation: "PATCH /v1/organizations/{org_id}/identity-provider-configs/{idp_id}",
    path: "promote_secondary_cert",
    message: "cannot be combined with saml_x509_cert or saml_x509_cert_secondary",
    documented: "Not combined with either certificate field",
  },
];

/** Everything the document says about an operation's input, $refs followed. */
function documentText(o: Operation): string {
  const seen = new Set<string>();
  const expand = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(expand);
    if (v && typeof v === "object") {
      const ref = (v as Schema).$ref as string | undefined;
      if (ref) {
        if (seen.has(ref)) return {};
        seen.add(ref);
        return expand(components[ref.split("/").pop()!]);
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expand(x)]));
    }
    return v;
  };
  return JSON.stringify(expand({ description: o.op.description, parameters: o.op.parameters, body: o.op.requestBody }));
}

function outsideSchema(o: Operation, error: { path: string; message: string }) {
  const rule = RULES_OUTSIDE_SCHEMA.find((r) => r.operation === `${o.method} ${o.path}` && r.path === error.path && r.message === error.message);
  return rule !== undefined && documentText(o).includes(rule.documented);
}

const testable = (o: Operation) =>
  !o.path.startsWith("/scim/") && (o.op.requestBody?.content?.["application/json"] || (o.op.parameters ?? []).some((p: Schema) => p.in === "query"));

describe("security", async () => {
  const doc = (await get("/openapi.json")).body;
  components = doc.components?.schemas ?? {};
  const ops = (await operations()).filter(testable);

  it("every operation with input is covered", () => {
    expect(ops.length).toBeGreaterThan(40);
  });

  it("the response check catches a body, a status and a content type the document does not allow", async () => {
    const user = await createUser();
    const res = await get("/v1/me", { token: user.accessToken });
    expect(await nonConformance("GET", "/v1/me", res.status, res.headers.get("content-type"), res.body)).toEqual([]);
    expect(await nonConformance("GET", "/v1/me", 200, "application/json", { ...res.body, email_verified: "yes" })).not.toEqual([]);
    expect(await nonConformance("GET", "/v1/me", 200, "application/json", { id: res.body.id })).not.toEqual([]);
    expect(await nonConformance("GET", "/v1/me", 418, "application/json", {})).not.toEqual([]);
    expect(await nonConformance("GET", "/v1/me", 200, "text/html", "<p>")).not.toEqual([]);
  });

  it.each(ops.map((o) => [`${o.method} ${o.path}`, o] as const))("%s accepts what its document allows", async (_, o) => {
    const user = await createUser();
    const org = await createOrg(user);
    const path = fillPath(o.path, org.id);
    const bodySchema = o.op.requestBody?.content?.["application/json"]?.schema;
    const failures: string[] = [];
    for (const full of [false, true]) {
      let body: unknown;
      let query: string;
      try {
        body = bodySchema ? sample(bodySchema, 0, full) : undefined;
        query = queryOf(o, full);
      } catch (err) {
        if (err instanceof Unsampleable) failures.push(err.message);
        else throw err;
        continue;
      }
      const res = await api(o.method, `${path}${query}`, { token: user.accessToken, body });
      if (
        res.status === 400 &&
        res.body?.code === "validation_failed" &&
        !(res.body.errors as { path: string; message: string }[]).every((e) => outsideSchema(o, e))
      ) {
        failures.push(`${full ? "all fields" : "required fields"}: ${JSON.stringify(res.body.errors)} for ${query} ${JSON.stringify(body)?.slice(0, 400)}`);
      }
      if (res.status >= 500) failures.push(`${res.status}: ${res.text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
  });
});
