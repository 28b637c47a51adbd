import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { newId } from "../../src/lib/ids";
import { get, type ApiResponse } from "../helpers/client";

export const auditLogsPath = (orgId: string, query: Record<string, string> = {}) => {
  const qs = new URLSearchParams(query).toString();
  return `/v1/organizations/${orgId}/audit-logs${qs ? `?${qs}` : ""}`;
};

export interface SeededEntry {
  id: string;
  action: string;
  actorId: string | null;
  targetId: string | null;
  createdAt: number;
}

export interface EntrySpec {
  action: string;
  actorId?: string | null;
  targetType?: string;
  targetId?: string | null;
  createdAt: number;
}

/**
 * Inserts entries straight into audit_logs (no route writes arbitrary actors and times), all in
 * one statement through json_each, as the app writes many entries.
 */
export async function seedEntries(orgId: string, specs: EntrySpec[]): Promise<SeededEntry[]> {
  const rows = specs.map((s) => ({
    id: newId("audit", s.createdAt),
    action: s.action,
    actorId: s.actorId === undefined ? "usr_seed" : s.actorId,
    targetType: s.targetType ?? "member",
    targetId: s.targetId === undefined ? "usr_target" : s.targetId,
    createdAt: s.createdAt,
  }));
  for (let i = 0; i < rows.length; i += 500) {
    await env.DB.prepare(
      `insert into audit_logs (id, organization_id, action, actor_type, actor_id, credential, target_type, target_id, changes, ip, user_agent, request_id, created_at)
       select json_extract(value, '$.id'), ?, json_extract(value, '$.action'), 'user', json_extract(value, '$.actorId'), 'session',
              json_extract(value, '$.targetType'), json_extract(value, '$.targetId'), '["role"]', '198.51.100.1', 'seed', 'req_seed', json_extract(value, '$.createdAt')
       from json_each(?)`,
    )
      .bind(orgId, JSON.stringify(rows.slice(i, i + 500)))
      .run();
  }
  return rows.map(({ id, action, actorId, targetId, createdAt }) => ({ id, action, actorId, targetId, createdAt }));
}

/** Newest first, ties by id descending: the order the API promises. */
export const newestFirst = (rows: SeededEntry[]) => [...rows].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

/** Follows next_page_token to the end; every page must be one D1 round trip. */
export async function collectPages(orgId: string, token: string, query: Record<string, string>) {
  const items: any[] = [];
  const pages: ApiResponse[] = [];
  let pageToken = "";
  for (let i = 0; i < 100; i++) {
    const res = await get(auditLogsPath(orgId, { ...query, ...(pageToken ? { page_token: pageToken } : {}) }), { token });
    expect(res.status, res.text).toBe(200);
    expect(res.cost.queries).toBe(1);
    pages.push(res);
    items.push(...res.body.items);
    pageToken = res.body.next_page_token;
    if (!pageToken) return { items, pages };
  }
  throw new Error("paging did not end");
}
