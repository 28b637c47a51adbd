import { z } from "@hono/zod-openapi";
import { singleLine } from "../lib/text";

export const GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
/** Our extension: the organization role a group's members get (see groups.service). */
export const GROUP_ROLE_SCHEMA = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
export const PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/**
 * Members one request may name (POST, PUT, or all operations of a PATCH together). A 1 MiB body
 * holds about 25,000 `{"value":"scu_…"}`; 10,000 keeps one request's write batch and its role
 * recomputation a bounded amount of work. Bigger groups are built with several PATCH `add`s.
 */
export const MAX_MEMBERS_PER_REQUEST = 10_000;
export const MAX_PATCH_OPERATIONS = 100;

/** SCIM attribute names are case-insensitive (RFC 7643 §2.1): the keys a client may spell its own way. */
const CANONICAL_KEYS: Record<string, string> = Object.fromEntries(
  [
    "schemas",
    "id",
    "externalId",
    "displayName",
    "members",
    "meta",
    "Operations",
    "op",
    "path",
    "value",
    "display",
    "$ref",
    "type",
    GROUP_ROLE_SCHEMA,
    "role",
  ].map((k) => [k.toLowerCase(), k]),
);

/** Renames the known keys of an object to their canonical spelling; other keys are kept as sent. */
export function canonicalKeys(value: unknown): unknown {
  if (!value || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [CANONICAL_KEYS[k.toLowerCase()] ?? k, v]));
}

const canonical = <T extends z.ZodType>(schema: T) => z.preprocess(canonicalKeys, schema);

export const MemberRef = canonical(
  z.object({
    value: z.string().trim().min(1, "must not be empty").max(100),
    display: z.string().optional(),
    $ref: z.string().optional(),
    type: z.string().optional(),
  }),
).openapi("ScimMemberRef", { description: "A member: `value` is the SCIM id of a user of this directory (`scu_…`)." });

export const RoleExtension = canonical(
  z.object({
    role: z
      .string()
      .trim()
      .max(100)
      .nullable()
      .optional()
      .transform((v) => (v === "" ? null : v))
      .openapi({ description: 'Name of a role of this organization (built-in `admin` or `user`, or a custom role); null or "" for no mapping.' }),
  }),
);

export const GroupInput = canonical(
  z.object({
    schemas: z.array(z.string()).optional(),
    displayName: singleLine(256),
    externalId: singleLine(256).nullable().optional(),
    members: z.array(MemberRef).max(MAX_MEMBERS_PER_REQUEST).optional(),
    [GROUP_ROLE_SCHEMA]: RoleExtension.optional(),
  }),
).openapi("ScimGroupInput", {
  description:
    "RFC 7643 §4.2 Group. On PUT an omitted `externalId`, `members` or role extension is left as it is (not asserted, RFC 7644 §3.5.1); send `null` / `[]` to clear it.",
});
export type GroupInput = z.output<typeof GroupInput>;

export const PatchOperation = canonical(
  z.object({
    op: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(["add", "remove", "replace"])),
    path: z.string().trim().max(1000).optional(),
    value: z.unknown().optional(),
  }),
);
export type PatchOperation = z.output<typeof PatchOperation>;

export const GroupPatchInput = canonical(
  z.object({
    schemas: z.array(z.string()).optional(),
    Operations: z.array(PatchOperation).min(1).max(MAX_PATCH_OPERATIONS),
  }),
).openapi("ScimGroupPatch", {
  description: `RFC 7644 §3.5.2 PatchOp (\`${PATCH_OP_SCHEMA}\`); \`op\` in any case; up to ${MAX_PATCH_OPERATIONS} operations and ${MAX_MEMBERS_PER_REQUEST} member values in one request.`,
});

export const GroupParams = z.object({ id: z.string().openapi({ param: { name: "id", in: "path" } }) });

const MemberOut = z.object({ value: z.string(), display: z.string().optional(), $ref: z.string(), type: z.literal("User") });

export const GroupResource = z
  .object({
    schemas: z.array(z.string()),
    id: z.string(),
    displayName: z.string().optional(),
    externalId: z.string().optional(),
    members: z.array(MemberOut).optional(),
    [GROUP_ROLE_SCHEMA]: z.object({ role: z.string().nullable() }).optional(),
    meta: z.object({ resourceType: z.literal("Group"), created: z.string(), lastModified: z.string(), location: z.string(), version: z.string() }).optional(),
  })
  .openapi("ScimGroup", {
    description:
      "`schemas` and `id` are always returned (RFC 7643 §7 `returned: always`); the rest are returned by default and left out when `attributes` does not name them or `excludedAttributes` does.",
  });

export const GroupListResponse = z
  .object({
    schemas: z.array(z.string()),
    totalResults: z.number().int(),
    startIndex: z.number().int(),
    itemsPerPage: z.number().int(),
    Resources: z.array(GroupResource),
  })
  .openapi("ScimGroupList");
