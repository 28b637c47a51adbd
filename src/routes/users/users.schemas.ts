import { z } from "../../lib/openapi";
import { passwordProblem } from "../../lib/password-policy";
import { iso } from "../../lib/time";
import { singleLine } from "../../lib/text";

export const EmailInput = z
  .string()
  .trim()
  .max(254)
  .pipe(z.email({ message: "must be a valid email address" }))
  .transform((e) => e.toLowerCase())
  .openapi({ type: "string", format: "email", example: "ada@example.com" });

export const DisplayNameInput = singleLine(100).openapi({ example: "Ada Lovelace" });

export const PasswordInput = z
  .string()
  .superRefine((p, ctx) => {
    const problem = passwordProblem(p);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({ type: "string", minLength: 10, maxLength: 256, description: "At least 10 characters; common passwords are refused." });

export const UserSchema = z
  .object({
    id: z.string().openapi({ example: "usr_01JD6Q5W8ZK3H0V8N6C2Y4T1RB" }),
    email: z.string(),
    display_name: z.string(),
    email_verified: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("User");

export type UserJson = z.infer<typeof UserSchema>;

export function serializeUser(u: {
  id: string;
  email: string;
  displayName: string;
  emailVerifiedAt: number | null;
  createdAt: number;
  updatedAt: number;
}): UserJson {
  return {
    id: u.id,
    email: u.email,
    display_name: u.displayName,
    email_verified: u.emailVerifiedAt !== null,
    created_at: iso(u.createdAt),
    updated_at: iso(u.updatedAt),
  };
}

export const UserUpdateInput = z
  .object({
    display_name: DisplayNameInput.optional(),
    email: EmailInput.optional(),
    old_password: z.string().max(256).optional().openapi({
      description:
        "The current password: required to change `new_password` or `email` (for a user who has a password), and refused as `is incorrect` when it is not.",
    }),
    new_password: PasswordInput.optional(),
  })
  .openapi("UserUpdate");
