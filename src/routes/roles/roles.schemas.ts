import { refuseRepeats, z } from "../../lib/openapi";
import { PERMISSIONS } from "../../lib/permissions";
import { multiLine } from "../../lib/text";

export const CUSTOM_ROLE_NAME = /^[a-z][a-z0-9_-]{1,39}$/;

const PermissionList = refuseRepeats(z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length), "must not repeat a permission");

export const RoleCreateInput = z
  .object({
    name: z.string().regex(CUSTOM_ROLE_NAME, "must match ^[a-z][a-z0-9_-]{1,39}$"),
    description: multiLine(500).optional(),
    permissions: PermissionList,
  })
  .openapi("RoleCreate");

export const RoleUpdateInput = z
  .object({
    name: z.string().regex(CUSTOM_ROLE_NAME, "must match ^[a-z][a-z0-9_-]{1,39}$").optional(),
    description: multiLine(500).nullable().optional(),
    permissions: PermissionList.optional(),
  })
  .openapi("RoleUpdate");

export const RoleSchema = z
  .object({
    id: z.string().openapi({ description: "`rol_…` for custom roles; the name itself for built-in ones." }),
    name: z.string(),
    description: z.string().nullable(),
    permissions: z.array(z.string()),
    built_in: z.boolean(),
    created_at: z.string().nullable(),
    updated_at: z.string().nullable(),
  })
  .openapi("Role");
