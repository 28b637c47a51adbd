import { z } from "../../lib/openapi";
import { PageQuery } from "../../lib/pagination";
import { iso } from "../../lib/time";
import { EmailInput } from "../users/users.schemas";

export const RoleNameInput = z
  .string()
  .min(1, "must not be empty")
  .max(40)
  .openapi({ example: "user", description: "A built-in role (`admin`, `user`, `service_account`) or a custom role's name." });

export const MemberSchema = z
  .object({
    user: z.object({
      id: z.string().openapi({ description: "`usr_…` for people, `sa_…` for service accounts." }),
      display_name: z.string(),
      email: z.string().nullable().openapi({ description: "Null for service accounts." }),
    }),
    role: z.string(),
    type: z.enum(["user", "service_account"]),
    joined_at: z.string(),
  })
  .openapi("Member");

export type MemberRow = {
  memberId: string;
  type: "user" | "service_account";
  role: string;
  displayName: string;
  email: string;
  joinedAt: number;
};

export function serializeMember(m: MemberRow) {
  return {
    user: { id: m.memberId, display_name: m.displayName, email: m.type === "service_account" || m.email === "" ? null : m.email },
    role: m.role,
    type: m.type,
    joined_at: iso(m.joinedAt),
  };
}

export const MemberListQuery = PageQuery.extend({
  filter: z
    .string()
    .max(1024)
    .optional()
    .openapi({
      param: { name: "filter", in: "query" },
      description:
        'AIP-160 subset over `role` (=, !=), `type` (=, != `user`|`service_account`) and `search` (`search:"jo"`: case-insensitive prefix of display name or email), joined with AND.',
    }),
  order_by: z
    .string()
    .max(200)
    .optional()
    .openapi({
      param: { name: "order_by", in: "query" },
      description:
        "`display_name`, `email`, `joined_at`, each optionally ` desc`; default `joined_at desc`. With `search` and no order_by, results come in match order (by the matched name or email), which keeps a page's cost at one index range.",
    }),
});

export const MemberAddInput = z.object({ email: EmailInput, role: RoleNameInput.default("user") }).openapi("MemberAdd");
export const MemberUpdateInput = z.object({ role: RoleNameInput }).openapi("MemberUpdate");
