import { jsonBody, jsonResponse, noContent, pathParam } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { customRolesQuery } from "../roles/roles.service";
import { MemberAddInput, MemberListQuery, MemberSchema, MemberUpdateInput } from "./members.schemas";
import { addMember, changeMemberRole, getMember, memberListPage, memberListQuery, memberQuery, removeMember, userByEmailQuery } from "./members.service";

export const memberRoutes = createRouter();

const MemberParams = OrgParams.extend({ user_id: pathParam("user_id") });

orgRoute(memberRoutes, {
  permission: "members:read",
  method: "get",
  path: "/v1/organizations/{org_id}/members",
  tags: ["Members"],
  summary: "List members",
  description:
    "People and service accounts. Every page reads about page_size rows, whatever the organization's size: each order and filter runs on one index of the members table.",
  request: { params: OrgParams, query: MemberListQuery },
  responses: { 200: jsonResponse(pageOf(MemberSchema), "A page of members.") },
  errors: ["invalid_filter", "invalid_order_by", "invalid_page_token"],
  load: ({ db, org, config, input }) => memberListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await memberListPage(ctx, input.query, loaded.page), 200),
});

orgRoute(memberRoutes, {
  permission: "members:write",
  method: "post",
  path: "/v1/organizations/{org_id}/members",
  audit: ["member.added"],
  tags: ["Members"],
  summary: "Add an existing user",
  description:
    "Adds the account with this email at once. No such account: 404 `user_not_found`; an account whose email is not verified: 409 `email_not_verified` (invite them instead, in both cases). Counts against the seat limit.",
  request: { params: OrgParams, body: jsonBody(MemberAddInput) },
  responses: { 201: jsonResponse(MemberSchema, "The new member.") },
  errors: ["user_not_found", "email_not_verified", "already_member", "seat_limit_reached"],
  load: ({ db, org, input }) => ({ user: userByEmailQuery(db, org, input.json.email), roles: customRolesQuery(db, org, [input.json.role]) }),
  handle: async ({ ctx, input, loaded }, c) => c.json(await addMember(ctx, input.json, loaded), 201),
});

orgRoute(memberRoutes, {
  permission: "members:read",
  method: "get",
  path: "/v1/organizations/{org_id}/members/{user_id}",
  tags: ["Members"],
  summary: "Get a member",
  request: { params: MemberParams },
  responses: { 200: jsonResponse(MemberSchema, "The member.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => memberQuery(db, org, input.param.user_id),
  handle: ({ loaded }, c) => c.json(getMember(loaded), 200),
});

orgRoute(memberRoutes, {
  permission: "members:write",
  method: "patch",
  path: "/v1/organizations/{org_id}/members/{user_id}",
  audit: ["member.role_changed"],
  tags: ["Members"],
  summary: "Change a member's role",
  description:
    "The last human admin cannot be demoted (409 `last_admin`). A caller can only manage members and assign roles within its own permissions; a service account's role also needs `service_accounts:write`.",
  request: { params: MemberParams, body: jsonBody(MemberUpdateInput) },
  responses: { 200: jsonResponse(MemberSchema, "The member with the new role.") },
  errors: ["not_found", "last_admin"],
  load: ({ db, org, input }) => {
    const member = memberQuery(db, org, input.param.user_id);
    return member ? { member, roles: customRolesQuery(db, org, [input.json.role]) } : undefined;
  },
  handle: async ({ ctx, input, loaded }, c) =>
    c.json(await changeMemberRole(ctx, input.json.role, { member: loaded?.member, roles: loaded?.roles ?? [] }), 200),
});

orgRoute(memberRoutes, {
  permission: "members:write",
  selfParam: "user_id",
  method: "delete",
  path: "/v1/organizations/{org_id}/members/{user_id}",
  audit: ["member.removed", "service_account.deleted"],
  tags: ["Members"],
  summary: "Remove a member, or leave",
  description:
    "Any member may remove themself (leave) without `members:write`. The last human admin cannot leave or be removed (409 `last_admin`); removing a service account also needs `service_accounts:write`. The removed member's credentials lose access to the organization on their very next request.",
  request: { params: MemberParams },
  responses: { 204: noContent },
  errors: ["not_found", "last_admin"],
  load: ({ db, org, input }) => memberQuery(db, org, input.param.user_id),
  handle: async ({ ctx, loaded }, c) => {
    await removeMember(ctx, loaded);
    return c.body(null, 204);
  },
});
