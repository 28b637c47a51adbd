import { z } from "../lib/openapi";
import { scimContent } from "./errors";
import { ScimListQuery, ScimReadQuery } from "./resource";
import { scimRoute } from "./route";
import { scimRoutes } from "./router";
import { ScimPatchInput, ScimUserInput, ScimUserParams, ScimUserSchema } from "./users.schemas";
import {
  createQuery,
  createUser,
  deleteUser,
  getUser,
  patchUser,
  replaceUser,
  userForWriteQuery,
  userListQuery,
  userListResponse,
  userQuery,
  type ScimUserRow,
  type WriteRow,
} from "./users.service";

const scimBody = <T extends z.ZodType>(schema: T) => ({ required: true as const, content: { "application/json": { schema } } });

const ListResponse = z
  .object({
    schemas: z.array(z.string()),
    totalResults: z.number().int(),
    startIndex: z.number().int(),
    itemsPerPage: z.number().int(),
    Resources: z.array(ScimUserSchema),
  })
  .openapi("ScimUserList");

const TAGS = ["SCIM"];
const LINKING =
  "Linked by email to the account (`userName` when it is an email address, else the primary email); an existing account is linked, otherwise one is created without a password. " +
  "What the directory sends is written to the account itself (name, email) only when its address is in a verified domain of this organization.";

scimRoute(scimRoutes, {
  method: "post",
  path: "/scim/v2/Users",
  audit: ["scim.user.created", "member.added"],
  tags: TAGS,
  summary: "Provision a user",
  description: `${LINKING} An active user becomes a member of the organization (role from group mappings, else \`user\`), within the seat limit (409 without scimType when full). 409 \`uniqueness\` when the userName or the account is already in this directory.`,
  request: { body: scimBody(ScimUserInput) },
  responses: { 201: scimContent(ScimUserSchema, "The user; `ETag` and `Location` headers.") },
  load: ({ db, dir, input }) => createQuery(db, dir, input.json),
  handle: ({ ctx, input, loaded }) => createUser(ctx, input.json, loaded),
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/Users",
  tags: TAGS,
  summary: "List or search users",
  description:
    'RFC 7644 §3.4.2: `filter` (userName is case-insensitive; externalId, id, active, displayName, name.givenName, name.familyName, emails[.value], emails[type eq "work"].value, title, enterprise attributes, meta.created, meta.lastModified), `startIndex`/`count` in id order, `attributes`/`excludedAttributes`. Sequential pages (the next startIndex after a full page, within 10 minutes) read O(count) rows; a first or a jumped-to page reads about startIndex+count index entries. Unfiltered, totalResults is exact.',
  request: { query: ScimListQuery },
  responses: { 200: scimContent(ListResponse, "A ListResponse.") },
  load: ({ db, dir, input, kv, tokenKey }) => userListQuery(db, dir, input.query, { kv, tokenKey }),
  handle: ({ ctx, input, loaded }) => userListResponse(ctx, input.query, loaded),
});

scimRoute(scimRoutes, {
  method: "get",
  path: "/scim/v2/Users/{id}",
  tags: TAGS,
  summary: "Get a user",
  description: "With `ETag`; `If-None-Match` naming the current version answers 304. Another directory's user is 404.",
  request: { params: ScimUserParams, query: ScimReadQuery },
  responses: { 200: scimContent(ScimUserSchema, "The user."), 304: { description: "Not modified." } },
  load: ({ db, dir, input }) => userQuery(db, dir, input.param.id),
  handle: ({ ctx, input, loaded }, c) => getUser(loaded as ScimUserRow[], input.param.id, input.query, c, ctx.config),
});

scimRoute(scimRoutes, {
  method: "put",
  path: "/scim/v2/Users/{id}",
  audit: ["scim.user.updated", "scim.user.deprovisioned", "member.added", "member.removed"],
  tags: TAGS,
  summary: "Replace a user",
  description: `Replaces every writable attribute (absent ones are cleared; \`active\` defaults to true). \`active: false\` removes the membership at once; true restores it. If-Match mismatch → 412. ${LINKING}`,
  request: { params: ScimUserParams, body: scimBody(ScimUserInput) },
  responses: { 200: scimContent(ScimUserSchema, "The user.") },
  load: ({ db, dir, input }) => userForWriteQuery(db, dir.configId, input.param.id),
  handle: ({ ctx, input, loaded }, c) => replaceUser(ctx, c, input.param.id, input.json, loaded as WriteRow[]),
});

scimRoute(scimRoutes, {
  method: "patch",
  path: "/scim/v2/Users/{id}",
  audit: ["scim.user.updated", "scim.user.deprovisioned", "member.added", "member.removed"],
  tags: TAGS,
  summary: "Modify a user",
  description:
    'RFC 7644 §3.5.2 PatchOp as Okta and Entra ID send it: `op` in any case, path-less operations whose value is an object, boolean strings (`"False"`), paths such as `active`, `name.familyName`, `emails[type eq "work"].value`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager`. Unknown path → 400 `invalidPath`; remove without path → 400 `noTarget`; changing `id` → 400 `mutability`. If-Match mismatch → 412.',
  request: { params: ScimUserParams, body: scimBody(ScimPatchInput) },
  responses: { 200: scimContent(ScimUserSchema, "The user after the operations.") },
  load: ({ db, dir, input }) => userForWriteQuery(db, dir.configId, input.param.id),
  handle: ({ ctx, input, loaded }, c) => patchUser(ctx, c, input.param.id, input.json, loaded as WriteRow[]),
});

scimRoute(scimRoutes, {
  method: "delete",
  path: "/scim/v2/Users/{id}",
  audit: ["scim.user.deleted", "member.removed"],
  tags: TAGS,
  summary: "Delete a user",
  description:
    "Removes the membership this directory manages (access ends on the person's next request) and the SCIM record; the account itself stays. If-Match mismatch → 412.",
  request: { params: ScimUserParams },
  responses: { 204: { description: "Deleted." } },
  load: ({ db, dir, input }) => userForWriteQuery(db, dir.configId, input.param.id),
  handle: ({ ctx, input, loaded }, c) => deleteUser(ctx, c, input.param.id, loaded as WriteRow[]),
});
