import { and, desc, eq, lt, type SQL } from "drizzle-orm";
import { mailbox } from "../../db/schema";
import { notFound } from "../../lib/errors";
import { jsonResponse, z } from "../../lib/openapi";
import { decodePageToken, finishPage, noFilterParam, orderByParam, pageOf, PageQuery } from "../../lib/pagination";
import { iso } from "../../lib/time";
import { createRouter, publicRoute } from "../../middleware/route";
import { openMailboxEmail } from "../../queue/providers";

export const devRoutes = createRouter();

const DevEmailSchema = z
  .object({ id: z.string(), to: z.string(), subject: z.string(), text: z.string(), html: z.string(), created_at: z.string() })
  .openapi("DevEmail");

publicRoute(devRoutes, {
  method: "get",
  path: "/v1/dev/emails",
  tags: ["Development"],
  summary: "Emails delivered by the outbox provider (development only)",
  description: "Newest first. Exists only when `ENVIRONMENT=development`; 404 everywhere else.",
  request: {
    query: PageQuery.extend({
      to: z
        .string()
        .max(254)
        .optional()
        .openapi({ param: { name: "to", in: "query" }, description: "Only emails to this address." }),
      filter: noFilterParam(),
      order_by: orderByParam({ fields: ["created_at"], default: "created_at desc", only: true }),
    }),
  },
  responses: { 200: jsonResponse(pageOf(DevEmailSchema), "A page of emails.") },
  errors: ["not_found", "invalid_page_token"],
  handle: async ({ ctx, input: { query: q } }, c) => {
    if (ctx.config.environment !== "development") throw notFound("route");
    const to = q.to?.trim().toLowerCase();
    const fingerprint = `dev-emails|${to ?? ""}`;
    const conds: (SQL | undefined)[] = [to ? eq(mailbox.recipient, to) : undefined];
    if (q.page_token) {
      const [after] = await decodePageToken(ctx.config.hmacSecret, fingerprint, q.page_token, 1);
      conds.push(lt(mailbox.id, String(after)));
    }
    const rows = await ctx.db
      .select()
      .from(mailbox)
      .where(and(...conds))
      .orderBy(desc(mailbox.id))
      .limit(q.page_size + 1);
    const page = await finishPage(ctx.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
    const items = await Promise.all(
      page.rows.map(async (r) => ({ id: r.id, to: r.recipient, ...(await openMailboxEmail(ctx.config, r)), created_at: iso(r.createdAt) })),
    );
    return c.json({ items, next_page_token: page.nextPageToken }, 200);
  },
});
