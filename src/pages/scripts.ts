/**
 * The pages' browser code, as plain JavaScript strings. Nothing from the server is interpolated:
 * a script reads its token or code from the page's own URL and everything else from the JSON
 * API, and writes text only through `textContent`, so no value can become markup or code.
 * Tokens the API hands back live in a variable of the script, never in storage, a cookie or a URL.
 */

/** Shared by every page: element access, one API call helper, problem+json to a sentence. */
export const PAGE_RUNTIME = `
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const show = (id, on = true) => { $(id).hidden = !on; };
const say = (id, text) => { $(id).textContent = text; };

async function call(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store", credentials: "omit" });
  } catch {
    return { ok: false, status: 0, data: { detail: "The API could not be reached. Check the connection and try again." } };
  }
  const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
  return { ok: res.ok, status: res.status, data };
}

function problemText(p) {
  const fields = Array.isArray(p.errors) ? p.errors.map((e) => (e.path ? e.path + ": " : "") + e.message).join("; ") : "";
  return [p.detail || p.title || "Something went wrong.", fields].filter(Boolean).join(" ");
}

function fail(text) {
  show("loading", false);
  say("error", text);
  show("error");
}

async function submitting(form, work) {
  for (const el of form.elements) el.disabled = true;
  try { await work(); } finally { for (const el of form.elements) el.disabled = false; }
}
`;

export const INVITATION_SCRIPT = `
const token = params.get("token");
const acceptPath = "/v1/invitations/" + encodeURIComponent(token || "") + "/accept";
const GONE = "This invitation link no longer works: it was already used, canceled, or has expired. Ask the person who invited you for a new one.";
let invitation;

async function joined(result, accessToken) {
  say("done-org", result.organization.name);
  say("done-role", result.member.role);
  say("done-user", result.user.display_name + " <" + result.user.email + ">");
  show("invitation", false);
  show("done");
  // This page has nowhere safe to keep a session, so it ends the one it opened.
  await call("POST", "/v1/auth/logout", { token: accessToken });
}

function refused(target, p) {
  if (p.code === "invitation_not_pending") {
    show("invitation", false);
    return fail(GONE);
  }
  say(target, problemText(p));
}

$("create").addEventListener("submit", (ev) => {
  ev.preventDefault();
  say("create-error", "");
  return submitting(ev.currentTarget, async () => {
    const res = await call("POST", acceptPath, { body: { display_name: $("create-name").value, password: $("create-password").value } });
    if (res.ok) return joined(res.data, res.data.access_token);
    if (res.data.code === "email_taken") return say("create-error", "An account with " + invitation.email + " already exists: sign in below to accept.");
    refused("create-error", res.data);
  });
});

$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  say("signin-error", "");
  return submitting(ev.currentTarget, async () => {
    const login = await call("POST", "/v1/auth/login", { body: { email: $("signin-email").value, password: $("signin-password").value } });
    if (!login.ok) return say("signin-error", login.data.code === "invalid_credentials" ? "Wrong email or password." : problemText(login.data));
    const accessToken = login.data.access_token;
    const res = await call("POST", acceptPath, { token: accessToken });
    if (res.ok) return joined(res.data, accessToken);
    await call("POST", "/v1/auth/logout", { token: accessToken });
    if (res.data.code === "invitation_email_mismatch") {
      return say("signin-error", "You signed in as " + login.data.user.email + ", but this invitation was sent to " + invitation.email + ". Sign in with that address, or create its account above.");
    }
    refused("signin-error", res.data);
  });
});

(async () => {
  if (!token) return fail("This link is incomplete: open the whole link from the invitation email.");
  const res = await call("GET", "/v1/invitations/" + encodeURIComponent(token));
  if (!res.ok) return fail(res.status === 404 ? GONE : problemText(res.data));
  invitation = res.data;
  const logo = invitation.organization.logo_data_uri;
  if (logo && logo.startsWith("data:image/")) {
    $("logo").src = logo;
    show("logo");
  }
  say("inviter", invitation.inviter_display_name);
  say("org", invitation.organization.name);
  say("role", invitation.role);
  say("email", invitation.email);
  say("expires", new Date(invitation.expires_at).toLocaleString());
  $("signin-email").value = invitation.email;
  show("loading", false);
  show("invitation");
})();
`;

export const VERIFY_EMAIL_SCRIPT = `
(async () => {
  const token = params.get("token");
  if (!token) return fail("This link is incomplete: open the whole link from the verification email.");
  const res = await call("POST", "/v1/auth/verify-email", { body: { token } });
  if (!res.ok) {
    return fail(res.status === 400 ? "This verification link is invalid, already used, or expired. If you opened it before, your address is verified already." : problemText(res.data));
  }
  show("loading", false);
  show("verified");
})();
`;

export const SSO_CALLBACK_SCRIPT = `
let session;

$("reveal").addEventListener("click", () => {
  $("access-token").value = session.access_token;
  say("token-expiry", "Valid for " + Math.round(session.expires_in / 60) + " minutes from sign-in.");
  show("reveal", false);
  show("token-box");
});

$("signout").addEventListener("click", async () => {
  await call("POST", "/v1/auth/logout", { token: session.access_token });
  session = undefined;
  show("signed-in", false);
  show("signed-out");
});

(async () => {
  const code = params.get("code");
  if (!code) return fail("This page is where single sign-on lands, with a code from the identity provider; this visit has none. Sign in again.");
  const res = await call("POST", "/v1/auth/sso/exchange", { body: { code } });
  if (!res.ok) {
    return fail(res.status === 400 ? "This sign-in link is invalid, already used, or expired (it lasts about a minute). Sign in again." : problemText(res.data));
  }
  // The refresh token is dropped here: the page shows who signed in and can hand over the
  // short-lived access token; a long-lived credential has no business in a page.
  session = { user: res.data.user, access_token: res.data.access_token, expires_in: res.data.expires_in };
  say("user", session.user.display_name + " <" + session.user.email + ">");
  show("loading", false);
  show("signed-in");
})();
`;
