import { jsonBody, jsonResponse, noContent } from "../../lib/openapi";
import { clientSubject } from "../../lib/rate-limit";
import { ApiError } from "../../lib/errors";
import { callerRoute, createRouter, publicRoute } from "../../middleware/route";
import { clientIp, countHit, rateLimited, readCounters, report } from "../../middleware/rate-limit";
import { LoginInput, RefreshInput, SignupInput, TokenPairSchema, VerifyEmailInput } from "./auth.schemas";
import { login, refresh, revokeSessions, signup, verifyEmail } from "./auth.service";

export const authRoutes = createRouter();

/** Failed logins are counted over this window, per email and per client and email. */
const LOGIN_WINDOW_SECONDS = 15 * 60;

publicRoute(authRoutes, {
  method: "post",
  path: "/v1/auth/signup",
  tags: ["Auth"],
  summary: "Create an account",
  description: "Creates the user, opens a session and sends a verification email through the queue.",
  request: { body: jsonBody(SignupInput) },
  responses: { 201: jsonResponse(TokenPairSchema, "The new user with a token pair.") },
  errors: ["email_taken"],
  handle: async ({ ctx, input }, c) => c.json(await signup(ctx, input.json), 201),
});

publicRoute(authRoutes, {
  method: "post",
  path: "/v1/auth/login",
  tags: ["Auth"],
  summary: "Sign in with email and password",
  description:
    "Wrong password and unknown email give the same 401, cost the same time and report the same Server-Timing. Failed attempts are counted per email and per client: a client that keeps failing for an email is stopped (429), and once an email has failed too often, only clients that have not failed for it are still heard, so the owner can sign in while someone else guesses.",
  request: { body: jsonBody(LoginInput) },
  responses: { 200: jsonResponse(TokenPairSchema, "A token pair for a new session.") },
  errors: ["invalid_credentials", "sso_required"],
  handle: async ({ ctx, input }, c) => {
    const email = input.json.email;
    const { readings } = await readCounters(c, [
      { bucket: "login-fail-email", subject: email, limit: ctx.config.loginRateLimitPerEmail, windowSeconds: LOGIN_WINDOW_SECONDS },
      {
        bucket: "login-fail-client",
        subject: `${email} ${clientSubject(clientIp(c))}`,
        limit: ctx.config.loginFailuresPerClient,
        windowSeconds: LOGIN_WINDOW_SECONDS,
      },
    ]);
    const [perEmail, perClient] = readings as [(typeof readings)[0], (typeof readings)[0]];
    // A guessing client is stopped; a client with no failure of its own is heard even when the
    // email as a whole is over its budget, so failures cannot lock the owner out.
    if (perClient.exceeded || (perEmail.exceeded && perClient.count > 0)) {
      const limited = perClient.exceeded ? perClient : perEmail;
      report(c, limited);
      throw rateLimited(limited.state);
    }
    try {
      return c.json(await login(ctx, input.json), 200);
    } catch (err) {
      if (err instanceof ApiError && err.code === "invalid_credentials") {
        countHit(c, perEmail);
        countHit(c, perClient);
      }
      throw err;
    }
  },
});

publicRoute(authRoutes, {
  method: "post",
  path: "/v1/auth/refresh",
  tags: ["Auth"],
  summary: "Exchange a refresh token for a new pair",
  description: "Refresh tokens rotate: each is single use. Presenting a used one is treated as theft: 401 `refresh_token_reused` and the whole session ends.",
  request: { body: jsonBody(RefreshInput) },
  responses: { 200: jsonResponse(TokenPairSchema, "A new token pair for the same session.") },
  errors: ["refresh_token_reused"],
  handle: async ({ ctx, input }, c) => c.json(await refresh(ctx, input.json.refresh_token), 200),
});

callerRoute(authRoutes, {
  auth: "session",
  method: "post",
  path: "/v1/auth/logout",
  tags: ["Auth"],
  summary: "End the current session",
  description: "The session's access tokens stop working on the very next request, and its refresh token with them.",
  responses: { 204: noContent },
  handle: async ({ ctx, actor }, c) => {
    await revokeSessions(ctx, [actor.sessionId]);
    return c.body(null, 204);
  },
});

publicRoute(authRoutes, {
  method: "post",
  path: "/v1/auth/verify-email",
  tags: ["Auth"],
  summary: "Confirm an email address",
  description: "The token comes from the verification email (`${APP_BASE_URL}/verify-email?token=…`).",
  request: { body: jsonBody(VerifyEmailInput) },
  responses: { 204: noContent },
  errors: ["invalid_token"],
  handle: async ({ ctx, input }, c) => {
    await verifyEmail(ctx, input.json.token);
    return c.body(null, 204);
  },
});
