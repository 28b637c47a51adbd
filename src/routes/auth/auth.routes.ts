import { createRouter, defineRoute, jsonBody, jsonResponse, noContent } from "../../lib/openapi";
import { hmacHex } from "../../lib/crypto";
import { authRateLimit, enforceRateLimit } from "../../middleware/rate-limit";
import { LoginInput, RefreshInput, SignupInput, TokenPairSchema, VerifyEmailInput } from "./auth.schemas";
import { login, refresh, revokeSessions, signup, verifyEmail } from "./auth.service";

export const authRoutes = createRouter();

// Every /v1/auth/* route is limited per client IP before anything else runs.
authRoutes.use("/v1/auth/*", authRateLimit);

authRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "post",
    path: "/v1/auth/signup",
    tags: ["Auth"],
    summary: "Create an account",
    description: "Creates the user, opens a session and sends a verification email through the queue.",
    request: { body: jsonBody(SignupInput) },
    responses: { 201: jsonResponse(TokenPairSchema, "The new user with a token pair.") },
    errors: ["email_taken"],
  }),
  async (c) => c.json(await signup(c, c.req.valid("json")), 201),
);

authRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "post",
    path: "/v1/auth/login",
    tags: ["Auth"],
    summary: "Sign in with email and password",
    description: "Wrong password and unknown email give the same 401 and cost the same time. Limited per IP and per email.",
    request: { body: jsonBody(LoginInput) },
    responses: { 200: jsonResponse(TokenPairSchema, "A token pair for a new session.") },
    errors: ["invalid_credentials", "sso_required"],
  }),
  async (c) => {
    const input = c.req.valid("json");
    // Per email as well as per IP: a distributed guess at one account is still slowed down.
    const emailKey = await hmacHex(c.var.config.hmacSecret, input.email);
    await enforceRateLimit(c, "login-email", emailKey, c.var.config.loginRateLimitPerEmail);
    return c.json(await login(c, input), 200);
  },
);

authRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "post",
    path: "/v1/auth/refresh",
    tags: ["Auth"],
    summary: "Exchange a refresh token for a new pair",
    description: "Refresh tokens rotate: each is single use. Presenting a used one is treated as theft: 401 `refresh_token_reused` and the whole session ends.",
    request: { body: jsonBody(RefreshInput) },
    responses: { 200: jsonResponse(TokenPairSchema, "A new token pair for the same session.") },
    errors: ["refresh_token_reused"],
  }),
  async (c) => c.json(await refresh(c, c.req.valid("json").refresh_token), 200),
);

authRoutes.openapi(
  defineRoute({ kind: "session" }, {
    method: "post",
    path: "/v1/auth/logout",
    tags: ["Auth"],
    summary: "End the current session",
    description: "The session's access tokens stop working on the very next request, and its refresh token with them.",
    responses: { 204: noContent },
  }),
  async (c) => {
    const actor = c.var.actor!;
    if (actor.kind === "session") await revokeSessions(c, [actor.sessionId]);
    return c.body(null, 204);
  },
);

authRoutes.openapi(
  defineRoute({ kind: "public" }, {
    method: "post",
    path: "/v1/auth/verify-email",
    tags: ["Auth"],
    summary: "Confirm an email address",
    description: "The token comes from the verification email (`${APP_BASE_URL}/verify-email?token=…`).",
    request: { body: jsonBody(VerifyEmailInput) },
    responses: { 204: noContent },
    errors: ["invalid_token"],
  }),
  async (c) => {
    await verifyEmail(c, c.req.valid("json").token);
    return c.body(null, 204);
  },
);
