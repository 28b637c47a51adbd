import { jsonResponse } from "../../lib/openapi";
import { pageOf } from "../../lib/pagination";
import { createRouter, orgRoute } from "../../middleware/route";
import { OrgParams } from "../organizations/organizations.routes";
import { AuditLogListQuery, AuditLogSchema } from "./audit-logs.schemas";
import { auditLogListQuery, auditLogPage } from "./audit-logs.service";

export const auditLogRoutes = createRouter();

orgRoute(auditLogRoutes, {
  permission: "audit_log:read",
  method: "get",
  path: "/v1/organizations/{org_id}/audit-logs",
  tags: ["Audit log"],
  summary: "List audit log entries",
  description:
    "Every change to the organization, newest first: who (actor and credential kind), what (action, target, the names of the changed fields — never their values), from where (IP, user agent, request id) and when. Each page is one index range read in the authorization's D1 round trip, so it costs about page_size rows however large the log. Entries older than `AUDIT_LOG_RETENTION_DAYS` (default 365) are pruned.",
  request: { params: OrgParams, query: AuditLogListQuery },
  responses: { 200: jsonResponse(pageOf(AuditLogSchema), "A page of audit log entries.") },
  errors: ["invalid_filter", "invalid_page_token"],
  load: ({ db, org, config, input }) => auditLogListQuery(db, org, config, input.query),
  handle: async ({ ctx, input, loaded }, c) => c.json(await auditLogPage(ctx, input.query, loaded.page), 200),
});
