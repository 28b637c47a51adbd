import { ApiError, validationError, zodIssues } from "../../lib/errors";
import { jsonBody, jsonResponse } from "../../lib/openapi";
import { createRouter, publicRoute } from "../../middleware/route";
import { CLOCK_SKEW_MS } from "../../sso/saml-response";
import { TokenPairSchema } from "../auth/auth.schemas";
import { AcsForm, ExchangeInput, IdpParam, LoginQuery, redirectResponse } from "./sso.schemas";
import { consumeAssertion, exchangeCode, safeRelayState, startLogin } from "./sso.service";

export const ssoRoutes = createRouter();

const TAGS = ["SSO"];

publicRoute(ssoRoutes, {
  method: "get",
  path: "/v1/sso/saml/{idp_id}/login",
  tags: TAGS,
  summary: "Start a SAML sign-in (SP-initiated)",
  description:
    "Redirects (302) the browser to the IdP's SSO URL with an AuthnRequest (HTTP-Redirect binding: deflated, base64, `SAMLRequest`) and `RelayState`. The request's ID is kept for ten minutes and answered once: the Response must carry it as `InResponseTo`. 409 `conflict` when the config has no SSO URL or certificate yet; unknown id: 404.",
  request: { params: IdpParam, query: LoginQuery },
  responses: redirectResponse(302, "To the identity provider."),
  errors: ["not_found", "conflict"],
  handle: async ({ ctx, input }, c) => {
    const relayState = input.query.relay_state || undefined;
    if (relayState !== undefined && !safeRelayState(ctx.config, relayState)) {
      throw validationError([{ path: "relay_state", message: "must be a path of the app (starting with one `/`) or a URL on APP_BASE_URL's origin" }]);
    }
    const location = await startLogin(ctx, input.param.idp_id, relayState);
    c.header("Cache-Control", "no-store");
    return c.redirect(location, 302);
  },
});

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;.*)?$/i;

publicRoute(ssoRoutes, {
  method: "post",
  path: "/v1/sso/saml/{idp_id}/acs",
  audit: ["sso.login", "member.added"],
  tags: TAGS,
  summary: "SAML assertion consumer service (HTTP-POST binding)",
  description: [
    "The IdP posts here (`application/x-www-form-urlencoded`, fields `SAMLResponse` (base64) and `RelayState`; at most 1 MiB). The Response or its Assertion must be signed with the config's certificate (or the secondary one, during rollover) using rsa-sha256, rsa-sha512 or ecdsa-sha256 with sha256/sha512 digests (SHA-1 only if the config allows it), exclusive c14n, one Reference to the signed element's own ID; exactly one Assertion, a direct child of the Response; no DOCTYPE, no duplicate IDs, no signature anywhere else (signature-wrapping defences).",
    `Then: Issuer = saml_entity_id, Audience = sp_entity_id, Destination and Recipient = acs_url, NotBefore/NotOnOrAfter with ${CLOCK_SKEW_MS / 1000} s of clock skew, InResponseTo = a request this config issued (single use; without one only when allow_idp_initiated), assertion ID single use, Status Success. Any failure: 401 \`sso_failed\` saying which check failed.`,
    "The email (NameID in emailAddress format, or an `email`/`mail`/claims attribute) must be in a verified domain of the config's organization. A new account is created (email verified, no password); a member signs in; a non-member joins with role `user` if the domain has JIT on (within the seat limit), else 403 `forbidden`.",
    "Success: 303 to `${APP_BASE_URL}/sso/callback?code=…&state=<relay state>`; the code (single use, about a minute) is exchanged at `POST /v1/auth/sso/exchange`. Tokens never travel in a URL.",
  ].join("\n\n"),
  request: { params: IdpParam },
  responses: redirectResponse(303, "To the app's SSO callback with a single-use code."),
  errors: ["not_found", "conflict", "sso_failed", "forbidden", "validation_failed", "unsupported_media_type", "payload_too_large"],
  handle: async ({ ctx, input }, c) => {
    // The seam judges JSON bodies only; the HTTP-POST binding sends a form, read here.
    if (!FORM_TYPE.test(c.req.header("content-type") ?? "")) {
      throw new ApiError("unsupported_media_type", "Post the SAML response as application/x-www-form-urlencoded (HTTP-POST binding).");
    }
    const body = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false }).decode(await c.req.arrayBuffer());
    const fields = Object.fromEntries(new URLSearchParams(body));
    const form = AcsForm.safeParse(fields);
    if (!form.success) throw validationError(zodIssues(form.error));
    const location = await consumeAssertion(ctx, input.param.idp_id, form.data);
    c.header("Cache-Control", "no-store");
    return c.redirect(location, 303);
  },
});

publicRoute(ssoRoutes, {
  method: "post",
  path: "/v1/auth/sso/exchange",
  tags: ["Auth"],
  summary: "Exchange an SSO code for tokens",
  description:
    "Turns the single-use `code` from the SSO callback into the session's tokens: the same body as login. Unknown, used or expired (about a minute) codes: 400 `invalid_token`. Single use holds even for two concurrent calls: it is decided by one conditional D1 write, not by KV.",
  request: { body: jsonBody(ExchangeInput) },
  responses: { 200: jsonResponse(TokenPairSchema, "A token pair for the session the SSO sign-in opened.") },
  errors: ["invalid_token"],
  handle: async ({ ctx, input }, c) => c.json(await exchangeCode(ctx, input.json.code), 200),
});
