import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { TagBatchDeleteInput, TagBatchDeleteResultSchema, TagInfoQuery, TagInfoSchema, TagListQuery, TagSchema } from "./tags.schemas";
import { batchDeleteTags, deleteTagById, deleteTagByName, tagInfoPage, tagListQuery, tagPage, tagsToDeleteQuery } from "./tags.service";

export const tagRoutes = createRouter();

const ORG_WIDE =
  "Tags are organization-wide: every holder of `projects:read` sees all of them, including tags only private projects carry, and counts include private projects.";
const DELETION =
  "Deleting a tag takes it off every project that carries it, private projects the caller cannot see included; that is why deletion needs `projects:admin`.";

orgRoute(tagRoutes, {
  permission: "projects:read",
  method: "get",
  path: "/v1/organizations/{org_id}/tags",
  tags: ["Tags"],
  summary: "List tags",
  description: `In case-insensitive name order (exact name breaks ties). A tag is created when a project first names it and stays until deleted. ${ORG_WIDE}`,
  request: { params: OrgParams, query: TagListQuery },
  responses: { 200: jsonResponse(pageOf(TagSchema), "A page of tags.") },
  errors: ["invalid_filter", "invalid_page_token"],
  load: ({ db, org, config, input }) => tagListQuery(db, org, config, "tags", input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await tagPage(ctx, input.query, loaded.page), 200),
});

orgRoute(tagRoutes, {
  permission: "projects:read",
  method: "get",
  path: "/v1/organizations/{org_id}/tag-info",
  tags: ["Tags"],
  summary: "List tags with project counts",
  description: `Like \`GET …/tags\`, each item \`{tag, counts: {projects}}\`, counts only with \`include_counts=true\`. Counts are maintained with every tagging change (no count is computed per page). ${ORG_WIDE}`,
  request: { params: OrgParams, query: TagInfoQuery },
  responses: { 200: jsonResponse(pageOf(TagInfoSchema), "A page of tags with their counts.") },
  errors: ["invalid_filter", "invalid_page_token"],
  load: ({ db, org, config, input }) => tagListQuery(db, org, config, "tag-info", input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await tagInfoPage(ctx, input.query, loaded.page), 200),
});

orgRoute(tagRoutes, {
  permission: "projects:admin",
  method: "delete",
  path: "/v1/organizations/{org_id}/tags/{tag_id}",
  audit: ["tag.deleted"],
  tags: ["Tags"],
  summary: "Delete a tag",
  description: DELETION,
  request: { params: OrgParams.extend({ tag_id: pathParam("tag_id") }) },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => tagsToDeleteQuery(db, org, { ids: [input.param.tag_id] }),
  handle: async ({ ctx, input, loaded }, c) => {
    await deleteTagById(ctx, input.param.tag_id, loaded);
    return c.body(null, 204);
  },
});

orgRoute(tagRoutes, {
  permission: "projects:admin",
  method: "delete",
  path: "/v1/organizations/{org_id}/tags/by-name/{name}",
  audit: ["tag.deleted"],
  tags: ["Tags"],
  summary: "Delete a tag by its name",
  description: `The name is exact (case-sensitive) and URL-encoded. ${DELETION}`,
  request: { params: OrgParams.extend({ name: pathParam("name") }) },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => tagsToDeleteQuery(db, org, { names: [input.param.name] }),
  handle: async ({ ctx, input, loaded }, c) => {
    await deleteTagByName(ctx, input.param.name, loaded);
    return c.body(null, 204);
  },
});

orgRoute(tagRoutes, {
  permission: "projects:admin",
  method: "post",
  path: "/v1/organizations/{org_id}/tags/batch-delete",
  audit: ["tag.deleted"],
  tags: ["Tags"],
  summary: "Delete several tags",
  description: `\`ids\` and \`names\` together name 1–100 tags; each gets \`deleted\` or \`not_found\`, ids first, in request order. ${DELETION}`,
  request: { params: OrgParams, body: jsonBody(TagBatchDeleteInput) },
  responses: { 200: jsonResponse(TagBatchDeleteResultSchema, "One result per id, then one per name.") },
  load: ({ db, org, input }) => tagsToDeleteQuery(db, org, input.json),
  handle: async ({ ctx, input, loaded }, c) => c.json(await batchDeleteTags(ctx, input.json, loaded), 200),
});
