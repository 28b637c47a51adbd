import { createRouter, defineRoute, jsonBody, jsonResponse, pathParam, z } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { OrgParams } from "../organizations/organizations.routes";
import { acceptInvitation, previewInvitation } from "./accept.service";
import {
  AcceptInput,
  AcceptResultSchema,
  BatchResultSchema,
  InvitationBatchInput,
  InvitationCreateInput,
  InvitationListQuery,
  InvitationSchema,
  PreviewSchema,
  ResendInput,
} from "./invitations.schemas";
import { cancelInvitation, createInvitations, getInvitation, listInvitations, resendInvitation, serializeBatchResults } from "./invitations.service";

export const invitationRoutes = createRouter();

const InvitationParams = OrgParams.extend({ invitation_id: pathParam("invitation_id") });
const TokenParams = z.object({ token: pathParam("token") });

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:write" }, {
    method: "post",
    path: "/v1/organizations/{org_id}/invitations",
    tags: ["Invitations"],
    summary: "Invite someone by email",
    description:
      "201 with the new invitation; 200 when `combine_pending` refreshed an existing pending one (new token and expiry, the new role, project ids united). Already a member: 409 `already_member`; a pending invitation exists: 409 `invitation_pending`. Members plus pending invitations may not exceed the seats: 409 `seat_limit_reached`. The email goes out through the queue; with `send_email: false` the response carries `accept_url` once.",
    request: { params: OrgParams, body: jsonBody(InvitationCreateInput) },
    responses: { 201: jsonResponse(InvitationSchema, "The new invitation."), 200: jsonResponse(InvitationSchema, "The refreshed pending invitation.") },
    errors: ["already_member", "invitation_pending", "seat_limit_reached"],
  }),
  async (c) => {
    const [result] = await createInvitations(c, c.var.access, [c.req.valid("json")]);
    if (result!.status === "error") throw result!.error;
    return c.json(result!.invitation, result!.status === "created" ? 201 : 200);
  },
);

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:write" }, {
    method: "post",
    path: "/v1/organizations/{org_id}/invitations/batch",
    tags: ["Invitations"],
    summary: "Invite up to 100 people at once",
    description: "Each row succeeds or fails on its own (`created`, `combined` or `error` with a problem code); the seat limit counts the whole batch, in row order.",
    request: { params: OrgParams, body: jsonBody(InvitationBatchInput) },
    responses: { 200: jsonResponse(BatchResultSchema, "One result per row, in order.") },
  }),
  async (c) => c.json({ results: serializeBatchResults(await createInvitations(c, c.var.access, c.req.valid("json").invitations)) }, 200),
);

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/invitations",
    tags: ["Invitations"],
    summary: "List invitations",
    description: "Newest first. A pending invitation past its expiry is listed as `expired`.",
    request: { params: OrgParams, query: InvitationListQuery },
    responses: { 200: jsonResponse(pageOf(InvitationSchema), "A page of invitations.") },
    errors: ["invalid_page_token"],
  }),
  async (c) => c.json(await listInvitations(c, c.req.valid("param").org_id, c.req.valid("query")), 200),
);

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:read", readInHandler: true }, {
    method: "get",
    path: "/v1/organizations/{org_id}/invitations/{invitation_id}",
    tags: ["Invitations"],
    summary: "Get an invitation",
    request: { params: InvitationParams },
    responses: { 200: jsonResponse(InvitationSchema, "The invitation.") },
    errors: ["not_found"],
  }),
  async (c) => c.json(await getInvitation(c, c.req.valid("param").org_id, c.req.valid("param").invitation_id), 200),
);

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:write", readInHandler: true }, {
    method: "post",
    path: "/v1/organizations/{org_id}/invitations/{invitation_id}/cancel",
    tags: ["Invitations"],
    summary: "Cancel a pending invitation",
    description: "Its link stops working at once and its seat is freed. Not pending: 409 `conflict`.",
    request: { params: InvitationParams },
    responses: { 200: jsonResponse(InvitationSchema, "The canceled invitation.") },
    errors: ["not_found", "conflict"],
  }),
  async (c) => c.json(await cancelInvitation(c, c.req.valid("param").org_id, c.req.valid("param").invitation_id), 200),
);

invitationRoutes.openapi(
  defineRoute({ kind: "org", permission: "invitations:write", readInHandler: true }, {
    method: "post",
    path: "/v1/organizations/{org_id}/invitations/{invitation_id}/resend",
    tags: ["Invitations"],
    summary: "Resend a pending invitation",
    description: "A new token, a new expiry (`expires_in_days`, default 7) and a new email; the previous link stops working at once. Not pending: 409 `conflict`.",
    request: { params: InvitationParams, body: { ...jsonBody(ResendInput), required: false } },
    responses: { 200: jsonResponse(InvitationSchema, "The refreshed invitation.") },
    errors: ["not_found", "conflict"],
  }),
  async (c) => {
    const input = ResendInput.parse(c.req.valid("json") ?? {});
    return c.json(await resendInvitation(c, c.req.valid("param").org_id, c.req.valid("param").invitation_id, input), 200);
  },
);

invitationRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "get",
    path: "/v1/invitations/{token}",
    tags: ["Invitations"],
    summary: "Preview an invitation by its token",
    description: "No authentication: the token is the credential. Unknown, used, canceled or expired tokens: 404.",
    request: { params: TokenParams },
    responses: { 200: jsonResponse(PreviewSchema, "What the invitation is for.") },
    errors: ["not_found"],
  }),
  async (c) => c.json(await previewInvitation(c, c.req.valid("param").token), 200),
);

invitationRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "post",
    path: "/v1/invitations/{token}/accept",
    tags: ["Invitations"],
    summary: "Accept an invitation",
    description:
      "Signed in (access token) as the invited email: 200, you become a member with the invited role. Not signed in, with `{display_name, password}`: 201, the account is created (its email counts as verified), joins, and gets a token pair. Another user's session: 403 `invitation_email_mismatch`. Used, canceled or expired: 410 `invitation_not_pending`. An inactive organization: 409 `organization_inactive`. Single use: of two concurrent accepts exactly one wins.",
    request: { params: TokenParams, body: { ...jsonBody(AcceptInput), required: false } },
    responses: {
      200: jsonResponse(AcceptResultSchema, "Joined as the signed-in user."),
      201: jsonResponse(AcceptResultSchema, "Account created and joined, with a token pair."),
    },
    errors: ["not_found", "invitation_not_pending", "invitation_email_mismatch", "email_taken", "unauthenticated", "forbidden", "organization_inactive"],
  }),
  async (c) => {
    const result = await acceptInvitation(c, c.req.valid("param").token, c.req.valid("json") ?? {});
    return result.status === 201 ? c.json(result.body, 201) : c.json(result.body, 200);
  },
);
