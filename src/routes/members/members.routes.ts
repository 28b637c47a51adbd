import { createRouter, defineRoute, jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { OrgParams } from "../organizations/organizations.routes";
import { MemberAddInput, MemberListQuery, MemberSchema, MemberUpdateInput } from "./members.schemas";
import { addMember, changeMemberRole, getMember, listMembers, removeMember } from "./members.service";

export const memberRoutes = createRouter();

const MemberParams = OrgParams.extend({ user_id: pathParam("user_id") });

memberRoutes.openapi(
  defineRoute({ kind: "org", permission: "members:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/members",
    tags: ["Members"],
    summary: "List members",
    description:
      "People and service accounts. Every page reads about page_size rows, whatever the organization's size: each order and filter runs on one index of the members table.",
    request: { params: OrgParams, query: MemberListQuery },
    responses: { 200: jsonResponse(pageOf(MemberSchema), "A page of members.") },
    errors: ["invalid_filter", "invalid_order_by", "invalid_page_token"],
  }),
  async (c) => c.json(await listMembers(c, c.req.valid("param").org_id, c.req.valid("query")), 200),
);

memberRoutes.openapi(
  defineRoute({ kind: "org", permission: "members:write" }, {
    method: "post",
    path: "/v1/organizations/{org_id}/members",
    tags: ["Members"],
    summary: "Add an existing user",
    description: "Adds the account with this email at once. No such account: 404 `user_not_found` (invite them instead). Counts against the seat limit.",
    request: { params: OrgParams, body: jsonBody(MemberAddInput) },
    responses: { 201: jsonResponse(MemberSchema, "The new member.") },
    errors: ["user_not_found", "already_member", "seat_limit_reached"],
  }),
  async (c) => c.json(await addMember(c, c.var.access, c.req.valid("json")), 201),
);

memberRoutes.openapi(
  defineRoute({ kind: "org", permission: "members:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/members/{user_id}",
    tags: ["Members"],
    summary: "Get a member",
    request: { params: MemberParams },
    responses: { 200: jsonResponse(MemberSchema, "The member.") },
    errors: ["not_found"],
  }),
  async (c) => c.json(await getMember(c, c.req.valid("param").org_id, c.req.valid("param").user_id), 200),
);

memberRoutes.openapi(
  defineRoute({ kind: "org", permission: "members:write", readInHandler: true }, {
    method: "patch",
    path: "/v1/organizations/{org_id}/members/{user_id}",
    tags: ["Members"],
    summary: "Change a member's role",
    description: "The last admin cannot be demoted (409 `last_admin`). A caller can only manage members and assign roles within its own permissions.",
    request: { params: MemberParams, body: jsonBody(MemberUpdateInput) },
    responses: { 200: jsonResponse(MemberSchema, "The member with the new role.") },
    errors: ["not_found", "last_admin"],
  }),
  async (c) => c.json(await changeMemberRole(c, c.req.valid("param").org_id, c.req.valid("param").user_id, c.req.valid("json").role), 200),
);

memberRoutes.openapi(
  defineRoute({ kind: "org", permission: "members:write", selfParam: "user_id", readInHandler: true }, {
    method: "delete",
    path: "/v1/organizations/{org_id}/members/{user_id}",
    tags: ["Members"],
    summary: "Remove a member, or leave",
    description:
      "Any member may remove themself (leave) without `members:write`. The last admin cannot leave or be removed (409 `last_admin`). The removed member's credentials lose access to the organization on their very next request.",
    request: { params: MemberParams },
    responses: { 204: noContent },
    errors: ["not_found", "last_admin"],
  }),
  async (c) => {
    const { org_id, user_id } = c.req.valid("param");
    await removeMember(c, org_id, user_id);
    return c.body(null, 204);
  },
);
