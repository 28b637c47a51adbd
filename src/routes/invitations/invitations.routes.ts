import { jsonBody, jsonResponse, pathParam, z } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { createRouter, orgRoute, publicRoute } from "../../middleware/route";
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
import {
  cancelInvitation,
  createContextQueries,
  createInvitations,
  getInvitation,
  invitationListQueries,
  invitationPage,
  invitationQuery,
  resendInvitation,
  serializeBatchResults,
} from "./invitations.service";

export const invitationRoutes = createRouter();

const InvitationParams = OrgParams.extend({ invitation_id: pathParam("invitation_id") });
const TokenParams = z.object({ token: pathParam("token") });
const ESCALATION =
  "Every link handed out is for a role within the caller's own permissions, and for projects the caller can see (403 otherwise; for a new invitation's own `project_ids`, 422 `unprocessable`).";

orgRoute(invitationRoutes, {
  permission: "invitations:write",
  method: "post",
  path: "/v1/organizations/{org_id}/invitations",
  audit: ["invitation.created", "invitation.updated"],
  tags: ["Invitations"],
  summary: "Invite someone by email",
  description: `201 with the new invitation; 200 when \`combine_pending\` refreshed an existing pending one (new token and expiry, the new role, project ids united). Already a member: 409 \`already_member\`; a pending invitation exists: 409 \`invitation_pending\`. Members plus pending invitations may not exceed the seats: 409 \`seat_limit_reached\`. The email goes out through the queue; with \`send_email: false\` the response carries \`accept_url\` once (and accepting that link does not verify the address). ${ESCALATION} Combining also needs the replaced invitation's role within them.`,
  request: { params: OrgParams, body: jsonBody(InvitationCreateInput) },
  responses: { 201: jsonResponse(InvitationSchema, "The new invitation."), 200: jsonResponse(InvitationSchema, "The refreshed pending invitation.") },
  errors: ["already_member", "invitation_pending", "seat_limit_reached", "unprocessable"],
  load: ({ db, org, input }) => createContextQueries(db, org, [input.json]),
  handle: async ({ ctx, input, loaded }, c) => {
    const [result] = await createInvitations(ctx, [input.json], loaded);
    if (result!.status === "error") throw result!.error;
    return c.json(result!.invitation, result!.status === "created" ? 201 : 200);
  },
});

orgRoute(invitationRoutes, {
  permission: "invitations:write",
  method: "post",
  path: "/v1/organizations/{org_id}/invitations/batch",
  audit: ["invitation.created", "invitation.updated"],
  tags: ["Invitations"],
  summary: "Invite up to 100 people at once",
  description: `Each row succeeds or fails on its own (\`created\`, \`combined\` or \`error\` with a problem code); the seat limit counts the whole batch, in row order. ${ESCALATION}`,
  request: { params: OrgParams, body: jsonBody(InvitationBatchInput) },
  responses: { 200: jsonResponse(BatchResultSchema, "One result per row, in order.") },
  load: ({ db, org, input }) => createContextQueries(db, org, input.json.invitations),
  handle: async ({ ctx, input, loaded }, c) => c.json({ results: serializeBatchResults(await createInvitations(ctx, input.json.invitations, loaded)) }, 200),
});

orgRoute(invitationRoutes, {
  permission: "invitations:read",
  method: "get",
  path: "/v1/organizations/{org_id}/invitations",
  tags: ["Invitations"],
  summary: "List invitations",
  description: "Newest first. A pending invitation past its expiry is listed as `expired`.",
  request: { params: OrgParams, query: InvitationListQuery },
  responses: { 200: jsonResponse(pageOf(InvitationSchema), "A page of invitations.") },
  errors: ["invalid_page_token"],
  load: ({ db, org, config, input }) => invitationListQueries(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await invitationPage(ctx, input.query, loaded), 200),
});

orgRoute(invitationRoutes, {
  permission: "invitations:read",
  method: "get",
  path: "/v1/organizations/{org_id}/invitations/{invitation_id}",
  tags: ["Invitations"],
  summary: "Get an invitation",
  request: { params: InvitationParams },
  responses: { 200: jsonResponse(InvitationSchema, "The invitation.") },
  errors: ["not_found"],
  load: ({ db, org, input }) => invitationQuery(db, org, input.param.invitation_id),
  handle: ({ loaded }, c) => c.json(getInvitation(loaded), 200),
});

orgRoute(invitationRoutes, {
  permission: "invitations:write",
  method: "post",
  path: "/v1/organizations/{org_id}/invitations/{invitation_id}/cancel",
  audit: ["invitation.canceled"],
  tags: ["Invitations"],
  summary: "Cancel a pending invitation",
  description: "Its link stops working at once and its seat is freed. Not pending: 409 `conflict`.",
  request: { params: InvitationParams },
  responses: { 200: jsonResponse(InvitationSchema, "The canceled invitation.") },
  errors: ["not_found", "conflict"],
  load: ({ db, org, input }) => invitationQuery(db, org, input.param.invitation_id),
  handle: async ({ ctx, loaded }, c) => c.json(await cancelInvitation(ctx, loaded), 200),
});

orgRoute(invitationRoutes, {
  permission: "invitations:write",
  method: "post",
  path: "/v1/organizations/{org_id}/invitations/{invitation_id}/resend",
  audit: ["invitation.resent"],
  tags: ["Invitations"],
  summary: "Resend a pending invitation",
  description: `A new token, a new expiry (\`expires_in_days\`, default 7) and a new email; the previous link stops working at once. Not pending: 409 \`conflict\`. ${ESCALATION}`,
  request: { params: InvitationParams, body: { ...jsonBody(ResendInput), required: false } },
  responses: { 200: jsonResponse(InvitationSchema, "The refreshed invitation.") },
  errors: ["not_found", "conflict"],
  load: ({ db, org, input }) => invitationQuery(db, org, input.param.invitation_id),
  handle: async ({ ctx, input, loaded }, c) => c.json(await resendInvitation(ctx, loaded, input.json), 200),
});

publicRoute(invitationRoutes, {
  method: "get",
  path: "/v1/invitations/{token}",
  tags: ["Invitations"],
  summary: "Preview an invitation by its token",
  description:
    "No authentication: the token (`ivt_…`, from the email or `accept_url`; not the invitation id `inv_…`) is the credential. Unknown, used, canceled or expired tokens: 404; an invitation id: 404 saying so. Limited per client.",
  request: { params: TokenParams },
  responses: { 200: jsonResponse(PreviewSchema, "What the invitation is for.") },
  errors: ["not_found"],
  handle: async ({ ctx, input }, c) => c.json(await previewInvitation(ctx, input.param.token), 200),
});

publicRoute(invitationRoutes, {
  caller: "optional",
  method: "post",
  path: "/v1/invitations/{token}/accept",
  audit: ["invitation.accepted", "member.added"],
  tags: ["Invitations"],
  summary: "Accept an invitation",
  description:
    "Signed in (access token) as the invited email: 200, you become a member with the invited role. Not signed in, with `{display_name, password}`: 201, the account is created, joins, and gets a token pair; its email counts as verified only if this link arrived by email (otherwise a verification email is sent). Another user's session: 403 `invitation_email_mismatch`. Used, canceled or expired: 410 `invitation_not_pending`. An inactive organization: 409 `organization_inactive`. The invitation already holds its seat, but an organization over its seat limit (after a license downgrade or expiry) admits nobody: 409 `seat_limit_reached`. Single use: of two concurrent accepts exactly one wins. Limited per client.",
  request: { params: TokenParams, body: { ...jsonBody(AcceptInput), required: false } },
  responses: {
    200: jsonResponse(AcceptResultSchema, "Joined as the signed-in user."),
    201: jsonResponse(AcceptResultSchema, "Account created and joined, with a token pair."),
  },
  errors: [
    "not_found",
    "invitation_not_pending",
    "invitation_email_mismatch",
    "email_taken",
    "unauthenticated",
    "forbidden",
    "organization_inactive",
    "seat_limit_reached",
  ],
  handle: async ({ ctx, actor, input }, c) => {
    const result = await acceptInvitation(ctx, actor, input.param.token, input.json);
    return result.status === 201 ? c.json(result.body, 201) : c.json(result.body, 200);
  },
});
