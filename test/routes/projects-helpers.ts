import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { newId } from "../../src/lib/ids";
import { post, put } from "../helpers/client";

export const projectsPath = (orgId: string) => `/v1/organizations/${orgId}/projects`;
export const projectPath = (orgId: string, id: string) => `/v1/organizations/${orgId}/projects/${id}`;
export const accessPath = (orgId: string, projectId: string, memberId = "") =>
  `/v1/organizations/${orgId}/projects/${projectId}/members${memberId ? `/${memberId}` : ""}`;
export const tagsPath = (orgId: string) => `/v1/organizations/${orgId}/tags`;
export const tagInfoPath = (orgId: string) => `/v1/organizations/${orgId}/tag-info`;

export interface Project {
  id: string;
  name: string;
  description: string | null;
  private: boolean;
  tags: string[];
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

export async function createProject(token: string, orgId: string, body: Record<string, unknown> = {}) {
  const res = await post(projectsPath(orgId), { name: `Project ${Math.random().toString(36).slice(2, 8)}`, ...body }, { token });
  expect(res.status, res.text).toBe(201);
  return res.body as Project;
}

export async function grant(token: string, orgId: string, projectId: string, memberId: string) {
  const res = await put(accessPath(orgId, projectId, memberId), undefined, { token });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** Walks a list to its end, returning every item and the cost of each page. */
export async function walk(get: (pageToken: string) => Promise<{ status: number; text: string; body: any; cost: any }>, maxPages = 100) {
  const items: any[] = [];
  const costs: any[] = [];
  let token = "";
  for (let i = 0; i < maxPages; i++) {
    const res = await get(token);
    expect(res.status, res.text).toBe(200);
    items.push(...res.body.items);
    costs.push(res.cost);
    token = res.body.next_page_token;
    if (!token) return { items, costs, pages: i + 1 };
  }
  throw new Error("too many pages");
}

/**
 * Seeds projects straight into D1 (ids and timestamps increasing from `base`), with their tag
 * rows and counters, as the API would write them.
 */
export async function seedProjects(
  orgId: string,
  specs: { name: string; private?: boolean; tags?: string[]; updatedAt?: number }[],
  opts: { base?: number } = {},
) {
  const base = opts.base ?? Date.now() - 10_000_000;
  const tagIds = new Map<string, string>();
  const existing = await env.DB.prepare("select id, name from tags where organization_id = ?").bind(orgId).all<{ id: string; name: string }>();
  for (const t of existing.results) tagIds.set(t.name, t.id);
  const stmts: D1PreparedStatement[] = [];
  const ids: string[] = [];
  const counts = new Map<string, number>();
  specs.forEach((s, i) => {
    const now = base + i;
    const id = newId("project", now);
    ids.push(id);
    stmts.push(
      env.DB.prepare(
        "insert into projects (id, organization_id, name, name_key, description, private, created_by, created_at, updated_at) values (?, ?, ?, ?, null, ?, null, ?, ?)",
      ).bind(id, orgId, s.name, s.name.toLowerCase(), s.private ? 1 : 0, now, s.updatedAt ?? now),
    );
    for (const tag of s.tags ?? []) {
      if (!tagIds.has(tag)) {
        const tagId = newId("tag", now);
        tagIds.set(tag, tagId);
        stmts.unshift(
          env.DB.prepare("insert into tags (id, organization_id, name, name_key, project_count, created_at, updated_at) values (?, ?, ?, ?, 0, ?, ?)").bind(
            tagId,
            orgId,
            tag,
            tag.toLowerCase(),
            now,
            now,
          ),
        );
      }
      stmts.push(
        env.DB.prepare("insert into project_tags (project_id, tag_id, organization_id, private) values (?, ?, ?, ?)").bind(
          id,
          tagIds.get(tag)!,
          orgId,
          s.private ? 1 : 0,
        ),
      );
      counts.set(tag, (counts.get(tag) ?? 0) + 1);
    }
  });
  for (const [tag, n] of counts) stmts.push(env.DB.prepare("update tags set project_count = project_count + ? where id = ?").bind(n, tagIds.get(tag)!));
  for (let i = 0; i < stmts.length; i += 500) await env.DB.batch(stmts.slice(i, i + 500));
  return ids;
}

/** The stored counters next to what project_tags actually holds, per tag of the organization. */
export async function tagCounts(orgId: string) {
  const rows = await env.DB.prepare(
    "select t.name, t.project_count as counter, (select count(*) from project_tags pt where pt.tag_id = t.id) as actual from tags t where t.organization_id = ? order by t.name",
  )
    .bind(orgId)
    .all<{ name: string; counter: number; actual: number }>();
  return rows.results;
}
