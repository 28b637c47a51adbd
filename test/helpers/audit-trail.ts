import { env } from "cloudflare:workers";
import { newId } from "../../src/lib/ids";

export interface StoredEntry {
  action: string;
  actor_type: string;
  actor_id: string | null;
  credential: string;
  target_type: string;
  target_id: string | null;
  changes: string[] | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
}

/** An organization's audit entries as stored, oldest first, `changes` parsed. */
export async function auditEntries(orgId: string): Promise<StoredEntry[]> {
  const { results } = await env.DB.prepare(
    "select action, actor_type, actor_id, credential, target_type, target_id, changes, ip, user_agent, request_id from audit_logs where organization_id = ? order by created_at, id",
  )
    .bind(orgId)
    .all<Omit<StoredEntry, "changes"> & { changes: string | null }>();
  return results.map((r) => ({ ...r, changes: r.changes === null ? null : (JSON.parse(r.changes) as string[]) }));
}

/**
 * An endpoint of the organization subscribed to `events`, written straight into the table: these
 * tests look at the outbox rows a change writes, not at delivery (the secret is not a real one,
 * so the consumer never sends anything).
 */
export async function subscribe(orgId: string, events: string[]) {
  const id = newId("webhook");
  const now = Date.now();
  await env.DB.prepare("insert into webhooks (id, organization_id, url, events, secret_ciphertext, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?)")
    .bind(id, orgId, "https://receiver.invalid/hook", JSON.stringify(events), "not-a-ciphertext", now, now)
    .run();
  return id;
}

/** The events written to the organization's outbox (one row per subscribed endpoint), in the order they were recorded (event ids are time-ordered), payload parsed. */
export async function outboxEvents(orgId: string) {
  const { results } = await env.DB.prepare("select event_type, payload from webhook_deliveries where organization_id = ? order by created_at, event_id")
    .bind(orgId)
    .all<{ event_type: string; payload: string }>();
  return results.map((r) => JSON.parse(r.payload) as { type: string; timestamp: string; data: Record<string, any> });
}
