import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf, plainListQuery } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { ProjectCreateInput, ProjectListQuery, ProjectMemberSchema, ProjectSchema, ProjectUpdateInput } from "./projects.schemas";
import {
  accessQueries,
  createProject,
  deleteProject,
  getProject,
  grantQuery,
  grantAccess,
  projectListPage,
  projectListQueries,
  projectMemberListQueries,
  projectMemberPage,
  projectQuery,
  revokeAccess,
  updateProject,
} from "./projects.service";

export const projectRoutes = createRouter();

const ProjectParams = OrgParams.extend({ project_id: pathParam("project_id") });
const AccessParams = ProjectParams.extend({ user_id: pathParam("user_id") });

const VISIBILITY =
  "A private project exists only for holders of `projects:admin` and members granted access (by `PUT …/members/{user_id}` or an invitation's `project_ids`); anyone else gets 404, as for a project that does not exist.";
const MANAGE_ACCESS =
  "Managing a project's access list needs `projects:write` and being able to see the project (404 otherwise); the member must belong to the organization (404 otherwise).";

orgRoute(projectRoutes, {
  permission: "projects:read",
  method: "get",
  path: "/v1/organizations/{org_id}/projects",
  tags: ["Projects"],
  summary: "List projects",
  description: `The projects the caller can see, newest first by default. Visibility is applied inside the query: a page reads about page_size rows per stream (public, all private for \`projects:admin\`, the caller's own grants otherwise), whatever the organization's size. ${VISIBILITY}`,
  request: { params: OrgParams, query: ProjectListQuery },
  responses: { 200: jsonResponse(pageOf(ProjectSchema), "A page of projects.") },
  errors: ["invalid_filter", "invalid_order_by", "invalid_page_token"],
  load: ({ db, org, config, input }) => projectListQueries(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await projectListPage(ctx, input.query, loaded ?? {}), 200),
});

orgRoute(projectRoutes, {
  permission: "projects:write",
  method: "post",
  path: "/v1/organizations/{org_id}/projects",
  audit: ["project.created"],
  tags: ["Projects"],
  summary: "Create a project",
  description:
    "Tags are given by name; unknown names become new tags of the organization. A private project's creator is granted access in the same write. Project names need not be unique.",
  request: { params: OrgParams, body: jsonBody(ProjectCreateInput) },
  responses: { 201: jsonResponse(ProjectSchema, "The new project.") },
  handle: async ({ ctx, input }, c) => c.json(await createProject(ctx, input.json), 201),
});

orgRoute(projectRoutes, {
  permission: "projects:read",
  method: "get",
  path: "/v1/organizations/{org_id}/projects/{project_id}",
  tags: ["Projects"],
  summary: "Get a project",
  description: VISIBILITY,
  request: { params: ProjectParams },
  responses: { 200: jsonResponse(ProjectSchema, "The project.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => projectQuery(db, org, input.param.project_id),
  handle: ({ loaded }, c) => c.json(getProject(loaded), 200),
});

orgRoute(projectRoutes, {
  permission: "projects:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/projects/{project_id}",
  audit: ["project.updated"],
  tags: ["Projects"],
  summary: "Update a project",
  description: `Only the fields sent change; \`tags\` replaces the whole set. Making a project private grants the caller access. ${VISIBILITY}`,
  request: { params: ProjectParams, body: jsonBody(ProjectUpdateInput) },
  responses: { 200: jsonResponse(ProjectSchema, "The updated project.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => projectQuery(db, org, input.param.project_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await updateProject(ctx, loaded, input.json), 200),
});

orgRoute(projectRoutes, {
  permission: "projects:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/projects/{project_id}",
  audit: ["project.deleted"],
  tags: ["Projects"],
  summary: "Delete a project",
  description: `Its tags' counts go down, its access list and integration environment mappings go with it. ${VISIBILITY}`,
  request: { params: ProjectParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => projectQuery(db, org, input.param.project_id),
  handle: async ({ ctx, loaded }, c) => {
    await deleteProject(ctx, loaded);
    return c.body(null, 204);
  },
});

orgRoute(projectRoutes, {
  permission: "projects:read",
  method: "get",
  path: "/v1/organizations/{org_id}/projects/{project_id}/members",
  tags: ["Projects"],
  summary: "List the members granted access",
  description: `In member id order. Grants matter while the project is private; a public project may carry them too (they apply if it becomes private). ${VISIBILITY}`,
  request: { params: ProjectParams, query: plainListQuery("member.id") },
  responses: { 200: jsonResponse(pageOf(ProjectMemberSchema), "A page of grants.") },
  errors: ["not_found", "invalid_page_token"],
  load: ({ db, org, config, input }) => projectMemberListQueries(db, org, config, input.param.project_id, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await projectMemberPage(ctx, input.param.project_id, input.query, loaded ?? {}), 200),
});

orgRoute(projectRoutes, {
  permission: "projects:write",
  method: "put",
  path: "/v1/organizations/{org_id}/projects/{project_id}/members/{user_id}",
  audit: ["project.member_added"],
  tags: ["Projects"],
  summary: "Grant a member access",
  description: `Idempotent: granting again keeps the first grant's time. \`user_id\` is a person (\`usr_…\`) or a service account (\`sa_…\`). ${MANAGE_ACCESS}`,
  request: { params: AccessParams },
  responses: { 200: jsonResponse(ProjectMemberSchema, "The grant.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => accessQueries(db, org, input.param.project_id, input.param.user_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await grantAccess(ctx, input.param.project_id, input.param.user_id, loaded ?? {}), 200),
});

orgRoute(projectRoutes, {
  permission: "projects:write",
  method: "delete",
  path: "/v1/organizations/{org_id}/projects/{project_id}/members/{user_id}",
  audit: ["project.member_removed"],
  tags: ["Projects"],
  summary: "Revoke a member's access",
  description: `404 when the member holds no grant on this project. Holders of \`projects:admin\` still see every private project. ${MANAGE_ACCESS}`,
  request: { params: AccessParams },
  responses: { 204: noContent },
  errors: ["not_found"],
  load: ({ db, org, input }) => ({
    project: accessQueries(db, org, input.param.project_id, input.param.user_id).project,
    grant: grantQuery(db, org, input.param.project_id, input.param.user_id),
  }),
  handle: async ({ ctx, input, loaded }, c) => {
    await revokeAccess(ctx, input.param.project_id, input.param.user_id, loaded ?? {});
    return c.body(null, 204);
  },
});
