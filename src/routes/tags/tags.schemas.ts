import { refuseRepeats, z } from "../../lib/openapi";
import { orderByParam, PageQuery } from "../../lib/pagination";
import { iso } from "../../lib/time";
import { TagNameInput } from "../projects/projects.schemas";

export const TagSchema = z
  .object({
    id: z.string().openapi({ example: "tag_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    name: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Tag");

export const TagInfoSchema = z
  .object({
    tag: TagSchema,
    counts: z
      .object({ projects: z.number().int().openapi({ description: "Projects carrying the tag, private ones included." }) })
      .optional()
      .openapi({ description: "Only with include_counts=true." }),
  })
  .openapi("TagInfo");

const TagFilter = z
  .string()
  .max(1024)
  .optional()
  .openapi({
    param: { name: "filter", in: "query" },
    description: '`name = "smoke"` / `name != "smoke"` (exact, case-sensitive) or `name:"sm"` (case-insensitive prefix).',
  });

const TagOrder = orderByParam({
  fields: ["name"],
  default: "name",
  only: true,
  note: "Case-insensitive, then case-sensitive for names that differ in case only.",
});

export const TagListQuery = PageQuery.extend({ filter: TagFilter, order_by: TagOrder });

export const TagInfoQuery = PageQuery.extend({
  filter: TagFilter,
  order_by: TagOrder,
  include_counts: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .openapi({ param: { name: "include_counts", in: "query" }, description: "Add `counts: {projects}` to each item (default false)." }),
});

const TagId = z.string().max(64);

export const TagBatchDeleteInput = z
  .object({
    ids: refuseRepeats(z.array(TagId).max(100), "must not repeat an id").default([]),
    names: refuseRepeats(z.array(TagNameInput).max(100), "must not repeat a name").default([]),
  })
  .refine((b) => b.ids.length + b.names.length >= 1, { message: "name at least one tag in ids or names", path: ["ids"] })
  .refine((b) => b.ids.length + b.names.length <= 100, { message: "name at most 100 tags in ids and names together", path: ["ids"] })
  .openapi("TagBatchDelete", { description: "Name at least one tag and at most 100, in `ids` and `names` together." });

export const TagBatchDeleteResultSchema = z
  .object({
    results: z.array(
      z.object({
        id: z.string().optional(),
        name: z.string().optional(),
        status: z.enum(["deleted", "not_found"]),
      }),
    ),
  })
  .openapi("TagBatchDeleteResult");

export interface TagRow {
  id: string;
  name: string;
  nameKey: string;
  projectCount: number;
  createdAt: number;
  updatedAt: number;
}

export const serializeTag = (t: TagRow) => ({ id: t.id, name: t.name, created_at: iso(t.createdAt), updated_at: iso(t.updatedAt) });
