import { describe, expect, it } from "vitest";
import { api, type RequestOptions } from "../helpers/client";
import { createOrg, createUser } from "../helpers/factories";
import { scimSetup } from "../helpers/scim";
import { fillPath, operations, type Operation } from "../helpers/openapi";

const HOSTILE_STRINGS = [
  "' OR '1'='1' --",
  '"; DROP TABLE users; --',
  "<script>alert(1)</script>",
  "\u0000\u0001\u0002",
  "🙂".repeat(300),
  "%s%s%n",
  "../../../../etc/passwd",
  "x".repeat(100_000),
];

const BAD_IDS = ["nope", "org_00000000000000000000000000", "usr_' OR 1=1 --", "%00", "..%2F..%2F", "a".repeat(3000), "ﬁ"];

const BAD_QUERIES = [
  "page_size=abc",
  "page_size=0",
  "page_size=-1",
  "page_size=99999999999999999999999",
  "page_size=1e3",
  "page_token=garbage",
  `page_token=${"A".repeat(3000)}`,
  "page_token=eyJxIjoiIiwiayI6W119.AAAA",
  `filter=${encodeURIComponent(`name = "x" OR 1=1`)}`,
  `filter=${encodeURIComponent(`name = "' ; drop table organizations; --"`)}`,
  `filter=${encodeURIComponent("((((((")}`,
  `order_by=${encodeURIComponent("name; drop table users")}`,
  "active_only=maybe",
  `to=${encodeURIComponent("' OR 1=1 --")}`,
];

/** RFC 7644 §3.4.2 parameters, malformed: each must be a SCIM 400 (or ignored), never a 5xx. */
const BAD_SCIM_QUERIES = [
  "startIndex=abc",
  "startIndex=-5",
  "count=-1",
  "count=99999999999999999999",
  "count=1.5",
  "filter=" + encodeURIComponent("userName eq"),
  "filter=" + encodeURIComponent('userName eq "a" and'),
  "filter=" + encodeURIComponent('emails[type eq "work" and value co "@"].value eq "x"'),
  "filter=" + encodeURIComponent('members[value eq "x"]'),
  "filter=" + encodeURIComponent(`userName sw "${"(".repeat(500)}"`),
  "filter=" + encodeURIComponent("not (userName pr)"),
  "filter=" + encodeURIComponent('meta.lastModified gt "not a date"'),
  "filter=" + encodeURIComponent('active eq "maybe"'),
  "attributes=" + encodeURIComponent("urn:unknown:schema:attr,,,"),
  "excludedAttributes=" + encodeURIComponent("members[bad"),
  "sortBy=" + encodeURIComponent("nonexistent"),
  "sortOrder=sideways",
];

/** A value of the wrong JSON type for each declared property type. */
function wrongType(schema: any): unknown {
  const type = Array.isArray(schema?.type) ? schema.type[0] : schema?.type;
  switch (type) {
    case "string":
      return 12345;
    case "number":
    case "integer":
      return "not a number";
    case "boolean":
      return "yes";
    case "array":
      return { not: "an array" };
    case "object":
      return "not an object";
    default:
      return [[[]]];
  }
}

function bodyCases(op: Operation): RequestOptions[] {
  const schema = op.op.requestBody?.content?.["application/json"]?.schema;
  if (!schema) return [];
  const json = { "Content-Type": "application/json" };
  const props: Record<string, any> = schema.properties ?? {};
  const names = Object.keys(props);
  const cases: RequestOptions[] = [
    { raw: "{", headers: json },
    { raw: "", headers: json },
    { raw: "[]", headers: json },
    { raw: "null", headers: json },
    { raw: '"a string"', headers: json },
    { raw: "1e309", headers: json },
    { raw: `{"a":${"[".repeat(2000)}${"]".repeat(2000)}}`, headers: json },
    { raw: "not json", headers: { "Content-Type": "text/plain" } },
    { raw: '{"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}}}', headers: json },
    { body: Object.fromEntries(names.map((n) => [n, wrongType(props[n])])) },
    { body: Object.fromEntries(names.map((n) => [n, null])) },
  ];
  for (const s of HOSTILE_STRINGS) cases.push({ body: Object.fromEntries(names.map((n) => [n, s])) });
  return cases;
}

describe("errors", async () => {
  const ops = await operations();

  it.each(ops.map((o) => [`${o.method} ${o.path}`, o] as const))("%s never answers 5xx to bad input", async (_, o) => {
    // A fresh account and organization per route: destructive routes cannot starve the others.
    // SCIM routes get a directory's own token, so bad input reaches their validation, not a 401.
    const directory = o.auth.kind === "scim" ? await scimSetup() : null;
    const user = directory?.admin ?? (await createUser());
    const org = directory?.org ?? (await createOrg(user));
    const token = directory?.token ?? user.accessToken;
    // /scim/v2 answers every error in the SCIM error schema (RFC 7644 §3.12), never problem+json.
    const errorType = o.auth.kind === "scim" ? "application/scim+json" : "application/problem+json";
    const failures: string[] = [];
    const check = async (label: string, path: string, opts: RequestOptions) => {
      const res = await api(o.method, path, { token, ...opts });
      if (res.status >= 500) failures.push(`${label}: ${res.status} ${res.text.slice(0, 200)}`);
      else if (res.status >= 400 && !(res.headers.get("content-type") ?? "").includes(errorType)) {
        failures.push(`${label}: ${res.status} without ${errorType}`);
      }
      // Status, media type and body against the document: api() checks every response.
    };
    const path = fillPath(o.path, org.id);
    for (const [i, opts] of bodyCases(o).entries()) await check(`body #${i}`, path, opts);
    if (o.path.includes("{")) {
      for (const bad of BAD_IDS) {
        const p = o.path.replace(/\{([a-z_]+)\}/g, () => encodeURIComponent(bad));
        await check(`id ${bad.slice(0, 20)}`, p, o.op.requestBody ? { body: {} } : {});
      }
    }
    if (o.method === "GET") for (const q of BAD_QUERIES) await check(`query ${q.slice(0, 40)}`, `${path}?${q}`, {});
    if (o.method === "GET" && directory) for (const q of BAD_SCIM_QUERIES) await check(`SCIM query ${q.slice(0, 40)}`, `${path}?${q}`, {});
    expect(failures).toEqual([]);
  });
});
