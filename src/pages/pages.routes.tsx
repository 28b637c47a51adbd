import type { Context } from "hono";
import type { Child } from "hono/jsx";
import type { AppEnv, Config } from "../env";
import { notFound } from "../lib/errors";
import { createRouter } from "../middleware/route";
import { Layout, newNonce, pageHeaders } from "./layout";
import { INVITATION_SCRIPT, SSO_CALLBACK_SCRIPT, VERIFY_EMAIL_SCRIPT } from "./scripts";

/**
 * The pages behind every link the API emails or redirects to (`${APP_BASE_URL}/…`), for when
 * APP_BASE_URL is the API itself, as under `npm run dev`. They are documents, like /docs: each is a
 * static shell whose script calls the JSON API, so every read and write still goes through the
 * route seam (its rate limits, audit and errors) and the pages themselves touch no data. When
 * APP_BASE_URL names another origin, a product's front end owns these paths and the API answers 404.
 */
export const pageRoutes = createRouter();

export function hostsPages(config: Config): boolean {
  const app = new URL(config.appBaseUrl);
  return app.origin === new URL(config.apiBaseUrl).origin && app.pathname === "/";
}

function page(title: string, script: string, body: Child) {
  return (c: Context<AppEnv>) => {
    if (!hostsPages(c.var.config)) throw notFound("route");
    const nonce = newNonce();
    return c.html(
      <Layout title={title} nonce={nonce} script={script}>
        {body}
      </Layout>,
      200,
      pageHeaders(nonce),
    );
  };
}

pageRoutes.get(
  "/invitations/accept",
  page(
    "Join an organization",
    INVITATION_SCRIPT,
    <>
      <div id="invitation" hidden>
        <img id="logo" class="logo" alt="" hidden />
        <p>
          <strong id="inviter"></strong> invited you to join <strong id="org"></strong> as <strong id="role"></strong>.
        </p>
        <p class="note">
          The invitation is for <span id="email"></span> and expires <span id="expires"></span>.
        </p>

        <h2>New here? Create your account and join</h2>
        <form id="create" method="post">
          <label for="create-name">Your name</label>
          <input id="create-name" name="display_name" autocomplete="name" required maxlength={100} />
          <label for="create-password">Choose a password</label>
          <input id="create-password" name="password" type="password" autocomplete="new-password" required />
          <button type="submit">Create account and join</button>
          <p id="create-error" class="error" role="alert"></p>
        </form>

        <h2>Have an account? Sign in and accept</h2>
        <form id="signin" method="post">
          <label for="signin-email">Email</label>
          <input id="signin-email" name="email" type="email" autocomplete="username" required />
          <label for="signin-password">Password</label>
          <input id="signin-password" name="password" type="password" autocomplete="current-password" required />
          <button type="submit">Sign in and accept</button>
          <p id="signin-error" class="error" role="alert"></p>
        </form>
      </div>
      <div id="done" hidden>
        <p id="joined">
          You joined <strong id="done-org"></strong> as <strong id="done-role"></strong>.
        </p>
        <p class="note">
          Account: <span id="done-user"></span>. This page does not keep you signed in; sign in to the API with your email and password.
        </p>
      </div>
    </>,
  ),
);

pageRoutes.get(
  "/verify-email",
  page(
    "Verify your email address",
    VERIFY_EMAIL_SCRIPT,
    <p id="verified" hidden>
      Your email address is verified. You can close this page.
    </p>,
  ),
);

pageRoutes.get(
  "/sso/callback",
  page(
    "Single sign-on",
    SSO_CALLBACK_SCRIPT,
    <>
      <div id="signed-in" hidden>
        <p>
          Signed in as <strong id="user"></strong>.
        </p>
        <p class="note">
          This page is the API's stand-in for an app. It keeps the session in memory only and shows its access token on request, for use with curl; the refresh
          token is never shown.
        </p>
        <button id="reveal" type="button">
          Show access token
        </button>
        <div id="token-box" hidden>
          <label for="access-token">Access token</label>
          <textarea id="access-token" rows={6} readonly></textarea>
          <p id="token-expiry" class="note"></p>
        </div>
        <button id="signout" type="button">
          Sign out
        </button>
      </div>
      <p id="signed-out" hidden>
        Signed out: the session has ended.
      </p>
    </>,
  ),
);
