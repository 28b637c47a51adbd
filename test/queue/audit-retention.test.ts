import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { systemCtx, type Bindings } from "../../src/env";
import { DAY_MS } from "../../src/lib/time";
import { AUDIT_LOG_PRUNE_BATCH, pruneAuditLogs } from "../../src/routes/audit-logs/audit-logs.service";
import { testEnv } from "../helpers/client";
import { adminAndOrg } from "../routes/members-helpers";
import { seedEntries } from "../routes/audit-logs-helpers";

async function cron(overrides: Partial<Bindings> = {}) {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), { ...testEnv(), ...overrides }, ctx);
  await waitOnExecutionContext(ctx);
}

const entriesOf = async (orgId: string) =>
  (await env.DB.prepare("select id from audit_logs where organization_id = ? order by id").bind(orgId).all<{ id: string }>()).results.map((r) => r.id);

describe("audit log retention", () => {
  it("the cron prunes entries older than AUDIT_LOG_RETENTION_DAYS (default 365) and keeps the rest", async () => {
    const { org } = await adminAndOrg();
    const now = Date.now();
    const [old, edge, recent] = await Promise.all([
      seedEntries(org.id, [{ action: "member.added", createdAt: now - 400 * DAY_MS }]),
      seedEntries(org.id, [{ action: "member.added", createdAt: now - 364 * DAY_MS }]),
      seedEntries(org.id, [{ action: "member.removed", createdAt: now - 40 * DAY_MS }]),
    ]);
    const before = await entriesOf(org.id);
    expect(before).toHaveLength(4); // with organization.created

    await cron();
    const kept = await entriesOf(org.id);
    expect(kept).not.toContain(old[0]!.id);
    expect(kept).toContain(edge[0]!.id);
    expect(kept).toContain(recent[0]!.id);
    expect(kept).toHaveLength(3);

    // A shorter retention, configured: the 40-day and 364-day entries go too.
    await cron({ AUDIT_LOG_RETENTION_DAYS: "30" });
    expect(await entriesOf(org.id)).toHaveLength(1);
  });

  it("a run deletes at most AUDIT_LOG_PRUNE_BATCH entries, oldest first; later runs catch up", async () => {
    const { org } = await adminAndOrg();
    const now = Date.now();
    const backlog = AUDIT_LOG_PRUNE_BATCH + 700;
    await seedEntries(
      org.id,
      Array.from({ length: backlog }, (_, i) => ({ action: "member.added" as const, createdAt: now - 1000 * DAY_MS + i })),
    );
    const ctx = systemCtx(testEnv(), { waitUntil: () => undefined });
    const first = await pruneAuditLogs(ctx);
    expect(first).toBe(AUDIT_LOG_PRUNE_BATCH);
    const left = await env.DB.prepare("select min(created_at) as oldest, count(*) as n from audit_logs where organization_id = ? and created_at < ?")
      .bind(org.id, now - 365 * DAY_MS)
      .first<{ oldest: number; n: number }>();
    // Oldest first: what is left is the youngest part of the backlog.
    expect(left).toEqual({ oldest: now - 1000 * DAY_MS + AUDIT_LOG_PRUNE_BATCH, n: 700 });
    expect(await pruneAuditLogs(ctx)).toBe(700);
    expect(await pruneAuditLogs(ctx)).toBe(0);
    // organization.created, written now, stays.
    expect(await entriesOf(org.id)).toHaveLength(1);
  });
});
