import { z } from "../lib/openapi";
import { ScimError } from "./errors";

export const USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
export const PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/** What one user may store beyond its columns (name, emails, enterprise extension…), serialized. */
export const MAX_ATTRIBUTES_BYTES = 16_384;
export const MAX_PATCH_OPERATIONS = 100;
const MAX_STRING = 1024;

/**
 * The attributes of RFC 7643 §4.1 (core User) and §4.3 (enterprise extension) this server keeps.
 * Names are case-insensitive on input (§2.1) and stored under their canonical spelling.
 * Anything else a directory sends (other extensions such as Entra's
 * `urn:…:Microsoft:Entra:2.0:User`, attributes no schema defines) is ignored, as are `password`
 * (accounts' passwords are never set through SCIM) and the read-only `id`, `meta` and `groups`.
 */
type Def =
  | { name: string; type: "string" | "boolean" }
  | { name: string; type: "complex"; sub: Record<string, Def> }
  | { name: string; type: "multi"; sub: Record<string, Def> };

const str = (name: string): Def => ({ name, type: "string" });
const bool = (name: string): Def => ({ name, type: "boolean" });
const keyed = (defs: Def[]) => Object.fromEntries(defs.map((d) => [d.name.toLowerCase(), d]));
const plural = (name: string, extra: Def[] = []): Def => ({
  name,
  type: "multi",
  sub: keyed([str("value"), str("display"), str("type"), bool("primary"), ...extra]),
});

export const CORE_ATTRS: Record<string, Def> = keyed([
  { name: "name", type: "complex", sub: keyed(["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"].map(str)) },
  ...["nickName", "profileUrl", "title", "userType", "preferredLanguage", "locale", "timezone"].map(str),
  plural("emails"),
  plural("phoneNumbers"),
  plural("ims"),
  plural("photos"),
  {
    name: "addresses",
    type: "multi",
    sub: keyed(["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type"].map(str).concat([bool("primary")])),
  },
  plural("entitlements"),
  plural("roles"),
  plural("x509Certificates"),
]);

export const ENTERPRISE_ATTRS: Record<string, Def> = keyed([
  ...["employeeNumber", "costCenter", "organization", "division", "department"].map(str),
  { name: "manager", type: "complex", sub: keyed([str("value"), str("$ref"), str("displayName")]) },
]);

/** Attributes kept in columns, and those a client may not write. */
export const COLUMN_ATTRS = new Set(["username", "externalid", "displayname", "active"]);
export const READ_ONLY_ATTRS = new Set(["id", "meta", "groups"]);
export const IGNORED_ATTRS = new Set(["password", "schemas"]);

export type AttrDef = Def;

/** `true`, `"True"`, `"false"`…: Entra ID sends booleans as strings in PATCH. */
export function toBool(value: unknown, path: string): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "string" && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === "true";
  throw new ScimError(400, `${path} must be a boolean.`, "invalidValue");
}

/** A value checked against its definition; null / undefined / "" mean "no value" and come back undefined. */
export function coerce(def: Def, value: unknown, path: string): unknown {
  if (value === null || value === undefined) return undefined;
  switch (def.type) {
    case "string": {
      if (typeof value === "number") value = String(value);
      if (typeof value !== "string") throw new ScimError(400, `${path} must be a string.`, "invalidValue");
      if (value.length > MAX_STRING) throw new ScimError(400, `${path} is longer than ${MAX_STRING} characters.`, "invalidValue");
      return value === "" ? undefined : value;
    }
    case "boolean":
      return toBool(value, path);
    case "complex": {
      // Entra ID sends the enterprise manager as the manager's id alone.
      if (typeof value === "string" && def.sub.value) value = { value };
      if (typeof value !== "object" || Array.isArray(value)) throw new ScimError(400, `${path} must be an object.`, "invalidValue");
      const out = complexOf(def.sub, value as Record<string, unknown>, path);
      return Object.keys(out).length ? out : undefined;
    }
    case "multi": {
      const list = Array.isArray(value) ? value : [value];
      const out = list.map((el, i) => {
        if (typeof el === "string" && def.sub.value) el = { value: el };
        if (!el || typeof el !== "object" || Array.isArray(el)) throw new ScimError(400, `${path}[${i}] must be an object.`, "invalidValue");
        return complexOf(def.sub, el as Record<string, unknown>, `${path}[${i}]`);
      });
      const kept = out.filter((el) => Object.keys(el).length > 0);
      return kept.length ? kept : undefined;
    }
  }
}

function complexOf(sub: Record<string, Def>, value: Record<string, unknown>, path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const d = sub[k.toLowerCase()];
    if (!d) continue;
    const c = coerce(d, v, `${path}.${d.name}`);
    if (c !== undefined) out[d.name] = c;
  }
  return out;
}

// ---- OpenAPI --------------------------------------------------------------------------------

const MultiValue = z.object({ value: z.string(), type: z.string().optional(), primary: z.boolean().optional(), display: z.string().optional() });

export const ScimUserSchema = z
  .object({
    schemas: z.array(z.string()),
    id: z.string().openapi({ example: "scu_01J9Z3V8W1Y4Q2X6T5R7N0M3KA" }),
    externalId: z.string().optional(),
    userName: z.string().optional(),
    name: z.object({ givenName: z.string().optional(), familyName: z.string().optional(), formatted: z.string().optional() }).passthrough().optional(),
    displayName: z.string().optional(),
    emails: z.array(MultiValue).optional(),
    title: z.string().optional(),
    active: z.boolean().optional(),
    [ENTERPRISE_SCHEMA]: z.record(z.string(), z.unknown()).optional(),
    meta: z.object({ resourceType: z.literal("User"), created: z.string(), lastModified: z.string(), location: z.string(), version: z.string() }).optional(),
  })
  .passthrough()
  .openapi("ScimUser", {
    description:
      "`schemas` and `id` are always returned (RFC 7643 §7 `returned: always`); the rest are returned by default and left out when `attributes` does not name them or `excludedAttributes` does.",
  });

/**
 * The body is judged attribute by attribute in users.service (case-insensitive names, string
 * booleans, unknown attributes ignored), so each problem gets its SCIM scimType; this schema only
 * insists on an object.
 */
export const ScimUserInput = z.record(z.string(), z.unknown()).openapi("ScimUserInput", {
  description:
    "RFC 7643 User: `userName` (required; an email address, or else `emails` must hold one), `externalId`, `name`, `displayName`, `emails`, `active` (default true), `title`, … and the enterprise extension. `password`, unknown attributes and other extensions are ignored.",
  example: {
    schemas: [USER_SCHEMA],
    userName: "bjensen@example.com",
    name: { givenName: "Barbara", familyName: "Jensen" },
    emails: [{ value: "bjensen@example.com", type: "work", primary: true }],
    active: true,
  },
});

export const ScimPatchInput = z.record(z.string(), z.unknown()).openapi("ScimPatchOp", {
  description: `RFC 7644 §3.5.2 PatchOp: \`{schemas: ["${PATCH_SCHEMA}"], Operations: [{op: "add"|"replace"|"remove" (any case), path?, value?}]}\`, at most ${MAX_PATCH_OPERATIONS} operations.`,
  example: { schemas: [PATCH_SCHEMA], Operations: [{ op: "replace", path: "active", value: false }] },
});

export const ScimUserParams = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });
