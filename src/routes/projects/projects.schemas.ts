import { refuseRepeats, z } from "../../lib/openapi";
import { PageQuery } from "../../lib/pagination";
import { multiLine, singleLine } from "../../lib/text";
import { iso } from "../../lib/time";

export const MAX_TAGS_PER_PROJECT = 20;
export const MAX_TAG_NAME = 64;

/** A tag as written: one trimmed line, case-sensitive (`Prod` and `prod` are two tags). */
export const TagNameInput = singleLine(MAX_TAG_NAME).openapi({ example: "smoke", description: "1–64 characters, one line, trimmed; case-sensitive." });

const TagList = refuseRepeats(
  z.array(TagNameInput).max(MAX_TAGS_PER_PROJECT, `must hold at most ${MAX_TAGS_PER_PROJECT} tags`),
  "must not repeat a tag",
).openapi({ description: `Tag names (at most ${MAX_TAGS_PER_PROJECT}, each once); unknown names are created.` });

export const ProjectCreateInput = z
  .object({
    name: singleLine(200),
    description: multiLine(2000).nullable().optional(),
    private: z.boolean().default(false).openapi({ description: "Visible only to holders of `projects:admin` and to members granted access." }),
    tags: TagList.default([]),
  })
  .openapi("ProjectCreate");

export const ProjectUpdateInput = z
  .object({
    name: singleLine(200).optional(),
    description: multiLine(2000).nullable().optional().openapi({ description: "null clears it." }),
    private: z.boolean().optional().openapi({ description: "Making a project private grants the caller access, so nobody locks themself out." }),
    tags: TagList.optional().openapi({ description: "Replaces the project's tags (unknown names are created); omitted: unchanged." }),
  })
  .openapi("ProjectUpdate");

export const ProjectSchema = z
  .object({
    id: z.string().openapi({ example: "prj_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    name: z.string(),
    description: z.string().nullable(),
    private: z.boolean(),
    tags: z.array(z.string()).openapi({ description: "Tag names, in code-point order." }),
    created_by: z.string().nullable().openapi({ description: "The member id (`usr_…` or `sa_…`) that created it." }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Project");

export const ProjectListQuery = PageQuery.extend({
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description:
        'AIP-160 subset joined with AND: `name` (`=`, `!=` exact; `name:"ab"` case-insensitive prefix), `tag = "smoke"` (exact tag name), `private = true|false`. A name prefix lists in name order; a tag lists in created_at order.',
    }),
  order_by: z
    .string()
    .max(200)
    .optional()
    .openapi({
      param: { name: "order_by", in: "query" },
      description:
        'One of `created_at` (default `created_at desc`), `name` (case-insensitive), `updated_at`, optionally ` desc`. With `name:"…"` only `name` is allowed (and is the default); with `tag` only `created_at`.',
    }),
});

export const ProjectMemberSchema = z
  .object({
    project_id: z.string(),
    member: z.object({
      id: z.string().openapi({ description: "`usr_…` or `sa_…`." }),
      display_name: z.string(),
      email: z.string().nullable().openapi({ description: "Null for service accounts." }),
      type: z.enum(["user", "service_account"]),
    }),
    granted_at: z.string(),
  })
  .openapi("ProjectMember");

export interface ProjectRow {
  id: string;
  name: string;
  nameKey: string;
  description: string | null;
  private: boolean | number;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
  /** JSON array of tag names. */
  tags: string | string[] | null;
}

const tagNames = (tags: ProjectRow["tags"]): string[] => {
  const list = typeof tags === "string" ? (JSON.parse(tags) as string[]) : (tags ?? []);
  return [...list].sort(compareText);
};

export const serializeProject = (p: ProjectRow) => ({
  id: p.id,
  name: p.name,
  description: p.description,
  private: Boolean(p.private),
  tags: tagNames(p.tags),
  created_by: p.createdBy,
  created_at: iso(p.createdAt),
  updated_at: iso(p.updatedAt),
});

export interface ProjectMemberRow {
  projectId: string;
  memberId: string;
  displayName: string;
  email: string;
  type: "user" | "service_account";
  grantedAt: number;
}

export const serializeProjectMember = (r: ProjectMemberRow) => ({
  project_id: r.projectId,
  member: { id: r.memberId, display_name: r.displayName, email: r.type === "service_account" || r.email === "" ? null : r.email, type: r.type },
  granted_at: iso(r.grantedAt),
});

/**
 * SQLite's text order (memcmp of UTF-8), which is code-point order. JavaScript's `<` compares
 * UTF-16 units and puts U+10000 and above before U+E000–U+FFFF; a page merged in JavaScript from
 * several SQL streams must agree with SQL's order, or a page token would skip or repeat rows.
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}
