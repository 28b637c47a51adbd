import type { Config } from "../env";
import { z } from "../lib/openapi";
import { scimContent, scimJson, ScimError } from "./errors";
import { LIST_RESPONSE_SCHEMA, SCIM_MAX_COUNT } from "./resource";
import { scimRoute } from "./route";
import { scimRoutes } from "./router";

/**
 * RFC 7644 §4 discovery: ServiceProviderConfig, ResourceTypes, Schemas. Static documents (no
 * load: the seam's token check is the only read), stating exactly what /scim/v2 does — what it
 * does not do is declared unsupported rather than faked. The schemas list the attributes the
 * Users and Groups routes keep and return (users.schemas.ts, groups.schemas.ts).
 */

const TAGS = ["SCIM discovery"];
const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
/** groups.schemas.ts: the organization role a group maps to. */
const GROUP_ROLE = "urn:tenancy:params:scim:schemas:extension:2.0:Group";
const SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema";

const base = (config: Pick<Config, "apiBaseUrl">) => `${config.apiBaseUrl.replace(/\/+$/, "")}/scim/v2`;

// ---- attribute definitions (RFC 7643 §7) -----------------------------------------------------

type Mutability = "readOnly" | "readWrite" | "immutable" | "writeOnly";
interface Attr {
  name: string;
  type: "string" | "boolean" | "complex" | "reference" | "dateTime" | "integer" | "decimal" | "binary";
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact: boolean;
  mutability: Mutability;
  returned: "always" | "never" | "default" | "request";
  uniqueness: "none" | "server" | "global";
  subAttributes?: Attr[];
  canonicalValues?: string[];
  referenceTypes?: string[];
}

type Opts = Partial<Omit<Attr, "name" | "type" | "description">>;
const attr = (name: string, type: Attr["type"], description: string, o: Opts = {}): Attr => ({
  name,
  type,
  multiValued: false,
  description,
  required: false,
  caseExact: false,
  mutability: "readWrite",
  returned: "default",
  uniqueness: "none",
  ...o,
});
const str = (name: string, description: string, o: Opts = {}) => attr(name, "string", description, o);
const complex = (name: string, description: string, subAttributes: Attr[], o: Opts = {}) => attr(name, "complex", description, { subAttributes, ...o });

/** value/display/type/primary, the shape of RFC 7643's plural attributes. */
const plural = (name: string, description: string, types: string[], valueType: Attr["type"] = "string", extra: Attr[] = []) =>
  complex(
    name,
    description,
    [
      attr("value", valueType, `The ${name} value.`),
      str("display", "A human-readable name, primarily used for display purposes."),
      str("type", "A label indicating the attribute's function.", types.length ? { canonicalValues: types } : {}),
      attr("primary", "boolean", "Whether this is the primary value of the attribute; at most one primary."),
      ...extra,
    ],
    { multiValued: true },
  );

const USER_ATTRS: Attr[] = [
  str("userName", "Unique identifier for the User, typically their email address; unique in this directory, case-insensitively. Required.", {
    required: true,
    uniqueness: "server",
  }),
  complex("name", "The components of the user's real name.", [
    str("formatted", "The full name, formatted for display."),
    str("familyName", "The family name of the User."),
    str("givenName", "The given name of the User."),
    str("middleName", "The middle name(s) of the User."),
    str("honorificPrefix", "The honorific prefix(es) of the User."),
    str("honorificSuffix", "The honorific suffix(es) of the User."),
  ]),
  str("displayName", "The name of the User, suitable for display."),
  str("nickName", "The casual way to address the user."),
  attr("profileUrl", "reference", "A fully qualified URL pointing to the User's online profile.", { referenceTypes: ["external"] }),
  str("title", 'The user\'s title, such as "Vice President".'),
  str("userType", "The relationship between the organization and the user, such as Employee or Contractor."),
  str("preferredLanguage", "The User's preferred written or spoken language (RFC 7231 Accept-Language syntax)."),
  str("locale", "The User's default location for localization (e.g. en-US)."),
  str("timezone", 'The User\'s time zone in the IANA "Olson" format (e.g. America/Los_Angeles).'),
  attr(
    "active",
    "boolean",
    "Whether the User has access: false (or DELETE) removes their membership of the organization and ends their access at once; true restores it.",
  ),
  plural("emails", "Email addresses for the user.", ["work", "home", "other"]),
  plural("phoneNumbers", "Phone numbers for the User.", ["work", "home", "mobile", "fax", "pager", "other"]),
  plural("ims", "Instant messaging addresses for the User.", []),
  plural("photos", "URLs of images of the User.", ["photo", "thumbnail"], "reference"),
  complex(
    "addresses",
    "A physical mailing address for this User.",
    [
      str("formatted", "The full mailing address, formatted for display."),
      str("streetAddress", "The full street address component."),
      str("locality", "The city or locality component."),
      str("region", "The state or region component."),
      str("postalCode", "The zip code or postal code component."),
      str("country", "The country name component (ISO 3166-1 alpha-2)."),
      str("type", "A label indicating the attribute's function.", { canonicalValues: ["work", "home", "other"] }),
      attr("primary", "boolean", "Whether this is the primary address."),
    ],
    { multiValued: true },
  ),
  plural("entitlements", "A list of entitlements for the User.", []),
  plural("roles", "A list of roles for the User, as the directory names them (the organization role comes from group mappings).", []),
  plural("x509Certificates", "A list of certificates issued to the User.", [], "binary"),
];

const ENTERPRISE_ATTRS: Attr[] = [
  str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person by the organization."),
  str("costCenter", "Identifies the name of a cost center."),
  str("organization", "Identifies the name of an organization."),
  str("division", "Identifies the name of a division."),
  str("department", "Identifies the name of a department."),
  complex("manager", "The User's manager.", [
    str("value", "The id of the SCIM resource representing the User's manager.", { caseExact: true }),
    attr("$ref", "reference", "The URI of the SCIM resource representing the User's manager.", { referenceTypes: ["User"] }),
    str("displayName", "The displayName of the User's manager.", { mutability: "readOnly" }),
  ]),
];

const GROUP_ATTRS: Attr[] = [
  str("displayName", "A human-readable name for the Group; unique in this directory, case-insensitively. Required.", { required: true, uniqueness: "server" }),
  complex(
    "members",
    "The members of the Group: users of this directory.",
    [
      str("value", "The id (scu_…) of a User of this directory.", { caseExact: true, mutability: "immutable" }),
      attr("$ref", "reference", "The URI of the member's User resource.", { referenceTypes: ["User"], mutability: "immutable" }),
      str("display", "The member's display name.", { mutability: "readOnly" }),
      str("type", "The type of member: always User (nested groups are not supported).", { canonicalValues: ["User"], mutability: "immutable" }),
    ],
    { multiValued: true },
  ),
];

const GROUP_ROLE_ATTRS: Attr[] = [
  str("role", "The name of a role of the organization (admin, user or a custom role) that members of this group get; null for none.", { caseExact: true }),
];

const SCHEMAS: { id: string; name: string; description: string; attributes: Attr[] }[] = [
  { id: USER, name: "User", description: "User Account", attributes: USER_ATTRS },
  { id: ENTERPRISE, name: "EnterpriseUser", description: "Enterprise User", attributes: ENTERPRISE_ATTRS },
  { id: GROUP, name: "Group", description: "Group", attributes: GROUP_ATTRS },
  { id: GROUP_ROLE, name: "GroupRole", description: "The organization role a Group's members get.", attributes: GROUP_ROLE_ATTRS },
];

const schemaDoc = (config: Pick<Config, "apiBaseUrl">, s: (typeof SCHEMAS)[number]) => ({
  schemas: [SCHEMA_SCHEMA],
  id: s.id,
  name: s.name,
  description: s.description,
  attributes: s.attributes,
  meta: { resourceType: "Schema", location: `${base(config)}/Schemas/${s.id}` },
});

const RESOURCE_TYPES = [
  { id: "User", name: "User", endpoint: "/Users", description: "User Account", schema: USER, schemaExtensions: [{ schema: ENTERPRISE, required: false }] },
  { id: "Group", name: "Group", endpoint: "/Groups", description: "Group", schema: GROUP, schemaExtensions: [{ schema: GROUP_ROLE, required: false }] },
];

const resourceTypeDoc = (config: Pick<Config, "apiBaseUrl">, r: (typeof RESOURCE_TYPES)[number]) => ({
  schemas: [RT_SCHEMA],
  ...r,
  meta: { resourceType: "ResourceType", location: `${base(config)}/ResourceTypes/${r.id}` },
});

export function serviceProviderConfig(config: Pick<Config, "apiBaseUrl">) {
  return {
    schemas: [SPC_SCHEMA],
    documentationUri: `${config.apiBaseUrl.replace(/\/+$/, "")}/docs`,
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: SCIM_MAX_COUNT },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: "oauthbearertoken",
        name: "OAuth Bearer Token",
        description:
          "Authentication with the identity provider config's SCIM token (scim_…), minted by POST /v1/organizations/{org_id}/identity-provider-configs/{id}/scim-token: `Authorization: Bearer scim_…`.",
        specUri: "https://www.rfc-editor.org/info/rfc6750",
        primary: true,
      },
    ],
    meta: { resourceType: "ServiceProviderConfig", location: `${base(config)}/ServiceProviderConfig` },
  };
}

// ---- routes ---------------------------------------------------------------------------------

const discoveryContent = (description: string) => scimContent(z.record(z.string(), z.unknown()), description);

/** RFC 7644 §4: these endpoints do not filter, and say so rather than ignore the filter. */
const DiscoveryQuery = z.object({ filter: z.string().max(4096).optional().openapi({ description: "Not supported here: any filter is answered 403." }) });
const noFilter = (q: { filter?: string }) => {
  if (q.filter !== undefined) throw new ScimError(403, "Filtering is not supported on discovery endpoints (RFC 7644 §4).");
};

const list = <T>(items: T[]) => ({ schemas: [LIST_RESPONSE_SCHEMA], totalResults: items.length, startIndex: 1, itemsPerPage: items.length, Resources: items });

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/ServiceProviderConfig",
  tags: TAGS,
  summary: "Service provider configuration",
  description:
    "What this SCIM server supports: PATCH yes; bulk no; filter yes (at most 200 results a page); changePassword no; sort no; ETags yes (meta.version, If-Match → 412 on mismatch); authentication by the config's SCIM bearer token.",
  request: { query: DiscoveryQuery },
  responses: { 200: discoveryContent("The ServiceProviderConfig resource.") },
  handle: ({ ctx, input }) => {
    noFilter(input.query);
    ctx.note("read ServiceProviderConfig");
    return scimJson(serviceProviderConfig(ctx.config));
  },
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/ResourceTypes",
  tags: TAGS,
  summary: "Resource types",
  description: "User (`/Users`, with the enterprise extension) and Group (`/Groups`, with the organization-role extension), as a ListResponse.",
  request: { query: DiscoveryQuery },
  responses: { 200: discoveryContent("A ListResponse of ResourceType resources.") },
  handle: ({ ctx, input }) => {
    noFilter(input.query);
    ctx.note("listed ResourceTypes");
    return scimJson(list(RESOURCE_TYPES.map((r) => resourceTypeDoc(ctx.config, r))));
  },
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/ResourceTypes/{name}",
  tags: TAGS,
  summary: "A resource type",
  description: "`User` or `Group`; anything else is 404.",
  request: {
    params: z.object({
      name: z
        .string()
        .max(200)
        .openapi({ param: { name: "name", in: "path" } }),
    }),
  },
  responses: { 200: discoveryContent("The ResourceType resource.") },
  handle: ({ ctx, input }) => {
    const r = RESOURCE_TYPES.find((t) => t.id.toLowerCase() === input.param.name.toLowerCase());
    if (!r) throw new ScimError(404, `No resource type ${JSON.stringify(input.param.name.slice(0, 100))}; there are User and Group.`);
    ctx.note(`read ResourceType ${r.id}`);
    return scimJson(resourceTypeDoc(ctx.config, r));
  },
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/Schemas",
  tags: TAGS,
  summary: "Schemas",
  description:
    "The core User and Group schemas, the enterprise User extension and the organization-role Group extension, listing the attributes this server keeps.",
  request: { query: DiscoveryQuery },
  responses: { 200: discoveryContent("A ListResponse of Schema resources.") },
  handle: ({ ctx, input }) => {
    noFilter(input.query);
    ctx.note("listed Schemas");
    return scimJson(list(SCHEMAS.map((s) => schemaDoc(ctx.config, s))));
  },
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/Schemas/{id}",
  tags: TAGS,
  summary: "A schema",
  description: "By its URN, e.g. `urn:ietf:params:scim:schemas:core:2.0:User` (case-insensitive); an unknown URN is 404.",
  request: {
    params: z.object({
      id: z
        .string()
        .max(300)
        .openapi({ param: { name: "id", in: "path" } }),
    }),
  },
  responses: { 200: discoveryContent("The Schema resource.") },
  handle: ({ ctx, input }) => {
    const s = SCHEMAS.find((x) => x.id.toLowerCase() === input.param.id.toLowerCase());
    if (!s) throw new ScimError(404, `No schema ${JSON.stringify(input.param.id.slice(0, 200))}.`);
    ctx.note(`read Schema ${s.name}`);
    return scimJson(schemaDoc(ctx.config, s));
  },
});
