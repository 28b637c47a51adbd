import { z } from "../../lib/openapi";
import { DisplayNameInput, EmailInput, PasswordInput, UserSchema } from "../users/users.schemas";

export const SignupInput = z.object({ email: EmailInput, password: PasswordInput, display_name: DisplayNameInput }).openapi("SignupInput");

export const LoginInput = z.object({ email: EmailInput, password: z.string().min(1, "is required").max(256) }).openapi("LoginInput");

export const RefreshInput = z.object({ refresh_token: z.string().min(1, "is required").max(256) }).openapi("RefreshInput");

export const VerifyEmailInput = z.object({ token: z.string().min(1, "is required").max(256) }).openapi("VerifyEmailInput");

export const TokenPairSchema = z
  .object({
    user: UserSchema,
    access_token: z.string().openapi({ description: "ES256 JWT, valid for `expires_in` seconds." }),
    refresh_token: z.string().openapi({ description: "Opaque, single use: each refresh returns a new one." }),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int(),
  })
  .openapi("TokenPair");
