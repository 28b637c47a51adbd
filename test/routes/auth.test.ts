import { env } from "cloudflare:workers";
import { decodeJwt, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { get, post } from "../helpers/client";
import { createPat, createUser, PASSWORD, unique, uniqueEmail } from "../helpers/factories";
import { expectProblem, sortedErrorPaths as errorPaths } from "../helpers/problems";

// ---------------------------------------------------------------------------------------------
// Local helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the dev mailbox (the queue consumer fills it asynchronously) for an email to `to`. */
async function waitForEmail(to: string): Promise<{ id: string; to: string; subject: string; text: string; html: string; created_at: string }> {
  for (let i = 0; i < 40; i++) {
    const res = await get(`/v1/dev/emails?to=${encodeURIComponent(to)}`);
    expect(res.status, res.text).toBe(200);
    if (res.body.items.length > 0) return res.body.items[0];
    await sleep(200);
  }
  throw new Error(`no email to ${to} arrived within ~8 s`);
}

function verifyTokenFrom(email: { text: string }): string {
  const m = /http:\/\/app\.test\/verify-email\?token=(vfy_[A-Za-z0-9_-]+)/.exec(email.text);
  expect(m, email.text).not.toBeNull();
  return decodeURIComponent(m![1]!);
}

/**
 * Rate limits count per fixed wall-clock minute: start a limit test only when at least 3 s of
 * the current minute remain, so its requests cannot straddle two windows.
 */
async function awaitFreshWindow() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 3_000) await sleep(left + 100);
}

const uniqueIp = () => `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}-${unique("ip")}`;

function signingJwk(): JWK {
  const keys = JSON.parse(env.JWT_SIGNING_KEYS as string) as JWK[];
  const jwk = Array.isArray(keys) ? keys[0]! : (keys as JWK);
  return jwk;
}

/** The test worker's API_BASE_URL: access tokens' issuer and, JWT_AUDIENCE being unset, audience. */
const ISSUER = "http://api.test";

/** The claims of a token the worker minted, minus the registered ones `signToken` sets itself. */
const PROFILE_CLAIMS = {
  auth_time: 0,
  email: "someone@example.com",
  email_verified: false,
  name: "Someone",
  created_at: 1_700_000_000,
  updated_at: 1_700_000_000,
};

/** Signs an access token with the worker's own private key (or another), claims overridable. */
async function signToken(opts: {
  sub: string;
  sid: string;
  exp: number;
  kid?: string;
  key?: CryptoKey;
  iss?: string;
  aud?: string;
  claims?: Record<string, unknown>;
}) {
  const jwk = signingJwk();
  const { key_ops: _ops, ...importable } = jwk;
  const key = opts.key ?? ((await importJWK({ ...importable, alg: "ES256" }, "ES256")) as CryptoKey);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(opts.claims ?? { sid: opts.sid, ...PROFILE_CLAIMS })
    .setProtectedHeader({ alg: "ES256", kid: opts.kid ?? jwk.kid!, typ: "JWT" })
    .setSubject(opts.sub)
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? ISSUER)
    .setIssuedAt(Math.min(now, opts.exp - 60))
    .setExpirationTime(opts.exp)
    .setJti(unique("jti"))
    .sign(key);
}

const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// ---------------------------------------------------------------------------------------------

describe("happy", () => {
  it("signup returns the user and a token pair, and queues a verification email", async () => {
    const local = unique("Mixed");
    const email = `${local}@Example.COM`;
    const res = await post("/v1/auth/signup", { email, password: PASSWORD, display_name: "Ada Lovelace" });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = res.body;
    expect(Object.keys(body).sort()).toEqual(["access_token", "expires_in", "refresh_token", "token_type", "user"]);
    expect(body.user).toEqual({
      id: expect.stringMatching(/^usr_[0-9A-Z]{26}$/),
      email: email.toLowerCase(),
      display_name: "Ada Lovelace",
      email_verified: false,
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    expect(new Date(body.user.created_at).toISOString()).toBe(body.user.created_at);
    expect(new Date(body.user.updated_at).toISOString()).toBe(body.user.updated_at);
    expect(body.refresh_token).toMatch(/^rt_/);
    expect(body.token_type).toBe("Bearer");
    expect(body.expires_in).toBe(900);
    const claims = decodeJwt(body.access_token);
    expect(claims.sub).toBe(body.user.id);
    expect(claims.iss).toBe(ISSUER);
    expect(claims.aud).toBe(ISSUER);
    expect(typeof claims.sid).toBe("string");
    expect(typeof claims.jti).toBe("string");
    expect(claims.exp! - claims.iat!).toBe(900);
    // The account rides in the standard OIDC claims (times in seconds, to the millisecond): GET /v1/me reads no database.
    expect(claims).toMatchObject({ email: email.toLowerCase(), name: "Ada Lovelace", email_verified: false });
    expect(Math.round((claims.updated_at as number) * 1000)).toBe(Date.parse(body.user.updated_at));
    expect(Math.round((claims.created_at as number) * 1000)).toBe(Date.parse(body.user.created_at));
    expect(claims.iat! - (claims.auth_time as number)).toBeGreaterThanOrEqual(0);

    const mail = await waitForEmail(email.toLowerCase());
    expect(mail.to).toBe(email.toLowerCase());
    expect(mail.text).toContain("http://app.test/verify-email?token=vfy_");
    // The secret never comes back in an API response, only in the email.
    expect(res.text).not.toContain(verifyTokenFrom(mail));
  });

  it("verify-email marks the address verified and the token is single use", async () => {
    const user = await createUser();
    const token = verifyTokenFrom(await waitForEmail(user.email));

    const ok = await post("/v1/auth/verify-email", { token });
    expect(ok.status, ok.text).toBe(204);
    expect(ok.text).toBe("");

    const me = await get("/v1/me", { token: user.accessToken });
    expect(me.status, me.text).toBe(200);
    expect(me.body.email_verified).toBe(true);

    expectProblem(await post("/v1/auth/verify-email", { token }), 400, "invalid_token");
  });

  it("login returns a token pair for a new session; the email is case-insensitive", async () => {
    const user = await createUser();
    const res = await post("/v1/auth/login", { email: user.email.toUpperCase(), password: user.password });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user).toMatchObject({ id: user.id, email: user.email, display_name: user.displayName, email_verified: false });
    expect(res.body.refresh_token).toMatch(/^rt_/);
    expect(res.body.token_type).toBe("Bearer");
    expect(res.body.expires_in).toBe(900);
    expect(decodeJwt(res.body.access_token).sid).not.toBe(decodeJwt(user.accessToken).sid);

    const me = await get("/v1/me", { token: res.body.access_token });
    expect(me.status, me.text).toBe(200);
    expect(me.body.id).toBe(user.id);
  });

  it("refresh returns a new pair for the same session", async () => {
    const user = await createUser();
    const res = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user.id).toBe(user.id);
    expect(res.body.refresh_token).toMatch(/^rt_/);
    expect(res.body.refresh_token).not.toBe(user.refreshToken);
    expect(res.body.token_type).toBe("Bearer");
    expect(res.body.expires_in).toBe(900);
    expect(decodeJwt(res.body.access_token).sid).toBe(decodeJwt(user.accessToken).sid);
    expect((await get("/v1/me", { token: res.body.access_token })).status).toBe(200);

    // The new refresh token rotates again.
    const again = await post("/v1/auth/refresh", { refresh_token: res.body.refresh_token });
    expect(again.status, again.text).toBe(200);
  });

  it("logout ends the session at once: its access and refresh tokens stop working", async () => {
    const user = await createUser();
    const out = await post("/v1/auth/logout", undefined, { token: user.accessToken });
    expect(out.status, out.text).toBe(204);
    expect(out.text).toBe("");

    expectProblem(await get("/v1/me", { token: user.accessToken }), 401, "unauthenticated");
    const refreshed = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(refreshed.status, refreshed.text).toBe(401);
  });

  it("logout leaves the user's other sessions alone", async () => {
    const user = await createUser();
    const second = await post("/v1/auth/login", { email: user.email, password: user.password });
    expect(second.status).toBe(200);
    expect((await post("/v1/auth/logout", undefined, { token: user.accessToken })).status).toBe(204);
    expect((await get("/v1/me", { token: second.body.access_token })).status).toBe(200);
  });

  it("an access token signed with the current key is accepted (control for the forged-token tests)", async () => {
    const user = await createUser();
    const { sid } = decodeJwt(user.accessToken) as { sid: string };
    const token = await signToken({ sub: user.id, sid, exp: Math.floor(Date.now() / 1000) + 300 });
    const me = await get("/v1/me", { token });
    expect(me.status, me.text).toBe(200);
    expect(me.body.id).toBe(user.id);
  });

  it("allowed auth requests report RateLimit-* headers", async () => {
    await awaitFreshWindow();
    const user = await createUser();
    const ip = uniqueIp();
    const res = await post(
      "/v1/auth/login",
      { email: user.email, password: user.password },
      { headers: { "CF-Connecting-IP": ip }, env: { AUTH_RATE_LIMIT_PER_MINUTE: "3" } },
    );
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("ratelimit-limit")).toBe("3");
    expect(res.headers.get("ratelimit-remaining")).toBe("2");
    const reset = Number(res.headers.get("ratelimit-reset"));
    expect(Number.isInteger(reset)).toBe(true);
    expect(reset).toBeGreaterThan(0);
    expect(reset).toBeLessThanOrEqual(60);
  });
});

describe("errors", () => {
  describe("signup validation", () => {
    const valid = () => ({ email: uniqueEmail(), password: PASSWORD, display_name: "Valid Name" });

    it.each([
      ["a bad email", { email: "not-an-email" }, "email"],
      ["a missing email", { email: undefined }, "email"],
      ["a short password", { password: "short1!" }, "password"],
      ["a common password", { password: "password123" }, "password"],
      ["a common password in another case", { password: "PassWord123" }, "password"],
      ["an empty display_name", { display_name: "" }, "display_name"],
      ["a blank display_name", { display_name: "   " }, "display_name"],
      ["a 101-character display_name", { display_name: "x".repeat(101) }, "display_name"],
      ["a display_name of the wrong type", { display_name: 42 }, "display_name"],
    ])("%s → 400 naming that field", async (_label, override, path) => {
      const res = await post("/v1/auth/signup", { ...valid(), ...override });
      const body = expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual([path]);
      expect(body.errors[0].message).toEqual(expect.any(String));
    });

    it("a 100-character display_name is accepted", async () => {
      const res = await post("/v1/auth/signup", { ...valid(), display_name: "y".repeat(100) });
      expect(res.status, res.text).toBe(201);
      expect(res.body.user.display_name).toBe("y".repeat(100));
    });

    it("every bad field is listed at once", async () => {
      const res = await post("/v1/auth/signup", { email: "nope", password: "short", display_name: "" });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["display_name", "email", "password"]);
    });

    it("an email taken in another case → 409 email_taken", async () => {
      const user = await createUser();
      const res = await post("/v1/auth/signup", { email: user.email.toUpperCase(), password: PASSWORD, display_name: "Copycat" });
      expectProblem(res, 409, "email_taken");
    });

    it("malformed JSON → 400 malformed_json", async () => {
      const res = await post("/v1/auth/signup", undefined, { raw: '{"email": "a@b.c",', headers: { "Content-Type": "application/json" } });
      expectProblem(res, 400, "malformed_json");
    });

    it("a non-JSON content type → 415", async () => {
      const res = await post("/v1/auth/signup", undefined, {
        raw: `email=${uniqueEmail()}&password=${encodeURIComponent(PASSWORD)}&display_name=x`,
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
      });
      expectProblem(res, 415, "unsupported_media_type");
    });

    it("a JSON array body → 400, never 500", async () => {
      const res = await post("/v1/auth/signup", [1, 2, 3]);
      expectProblem(res, 400, "validation_failed");
    });
  });

  describe("login", () => {
    it("wrong password and unknown email give the same 401 invalid_credentials", async () => {
      const user = await createUser();
      const wrong = await post("/v1/auth/login", { email: user.email, password: "not the right password" });
      const unknown = await post("/v1/auth/login", { email: uniqueEmail("ghost"), password: "not the right password" });
      const a = expectProblem(wrong, 401, "invalid_credentials");
      const b = expectProblem(unknown, 401, "invalid_credentials");
      expect(a.detail).toBe(b.detail);
      expect(a.title).toBe(b.title);
      expect(a.errors).toEqual(b.errors);
    });

    it("a missing password → 400 naming it", async () => {
      const res = await post("/v1/auth/login", { email: uniqueEmail() });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["password"]);
    });
  });

  describe("verify-email", () => {
    it.each([
      ["a garbage token", "garbage"],
      ["a well-prefixed unknown token", "vfy_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ])("%s → 400 invalid_token", async (_label, token) => {
      expectProblem(await post("/v1/auth/verify-email", { token }), 400, "invalid_token");
    });

    it("an empty token → 400 naming it", async () => {
      const res = await post("/v1/auth/verify-email", { token: "" });
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["token"]);
    });
  });

  describe("refresh", () => {
    it.each([
      ["a garbage token", "garbage"],
      ["a well-prefixed unknown token", "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ])("%s → 401", async (_label, token) => {
      const res = await post("/v1/auth/refresh", { refresh_token: token });
      expect(res.status, res.text).toBe(401);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    });

    it("an access token is not a refresh token → 401", async () => {
      const user = await createUser();
      const res = await post("/v1/auth/refresh", { refresh_token: user.accessToken.slice(0, 256) });
      expect(res.status, res.text).toBe(401);
    });
  });

  describe("logout", () => {
    it("anonymous → 401", async () => {
      expectProblem(await post("/v1/auth/logout"), 401, "unauthenticated");
    });

    it("with a PAT → 403, and the PAT keeps working", async () => {
      const user = await createUser();
      const pat = await createPat(user, ["organization:read"]);
      expectProblem(await post("/v1/auth/logout", undefined, { token: pat.token }), 403, "forbidden");
      expect((await get("/v1/me", { token: pat.token })).status).toBe(200);
      expect((await get("/v1/me", { token: user.accessToken })).status).toBe(200);
    });
  });

  describe("rate limits", () => {
    it("per IP: the 4th auth request in a minute → 429 with Retry-After and RateLimit-*", async () => {
      await awaitFreshWindow();
      const user = await createUser();
      const opts = { headers: { "CF-Connecting-IP": uniqueIp() }, env: { AUTH_RATE_LIMIT_PER_MINUTE: "3" } };
      for (const remaining of ["2", "1", "0"]) {
        const ok = await post("/v1/auth/login", { email: user.email, password: user.password }, opts);
        expect(ok.status, ok.text).toBe(200);
        expect(ok.headers.get("ratelimit-limit")).toBe("3");
        expect(ok.headers.get("ratelimit-remaining")).toBe(remaining);
      }
      // Any /v1/auth/* route counts against the same per-IP budget.
      const limited = await post("/v1/auth/signup", { email: uniqueEmail(), password: PASSWORD, display_name: "Limited" }, opts);
      expectProblem(limited, 429, "rate_limited");
      const retryAfter = Number(limited.headers.get("retry-after"));
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect(limited.headers.get("ratelimit-limit")).toBe("3");
      expect(limited.headers.get("ratelimit-remaining")).toBe("0");
      const reset = Number(limited.headers.get("ratelimit-reset"));
      expect(reset).toBeGreaterThan(0);
      expect(reset).toBeLessThanOrEqual(60);

      // Another IP is not affected.
      const other = await post("/v1/auth/login", { email: user.email, password: user.password }, { ...opts, headers: { "CF-Connecting-IP": uniqueIp() } });
      expect(other.status, other.text).toBe(200);
    });

    it("per email: once an email has failed too often, a client that failed for it gets 429, a fresh client is still heard", async () => {
      const user = await createUser();
      const limits = { LOGIN_RATE_LIMIT_PER_EMAIL: "2" };
      const guesser = uniqueIp();
      const at = (ip: string) => ({ headers: { "CF-Connecting-IP": ip }, env: limits });
      // A success does not count; failures do, whatever the client.
      expect((await post("/v1/auth/login", { email: user.email, password: user.password }, at(uniqueIp()))).status).toBe(200);
      expect((await post("/v1/auth/login", { email: user.email, password: "wrong password here" }, at(guesser))).status).toBe(401);
      // The email is normalised before it is counted: another case is the same account.
      expect((await post("/v1/auth/login", { email: user.email.toUpperCase(), password: "wrong password again" }, at(uniqueIp()))).status).toBe(401);
      const limited = await post("/v1/auth/login", { email: user.email, password: user.password }, at(guesser));
      expectProblem(limited, 429, "rate_limited");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(limited.headers.get("ratelimit-limit")).toBe("2");
      expect(limited.headers.get("ratelimit-remaining")).toBe("0");
      // A client with no failure of its own still gets in with the right password.
      expect((await post("/v1/auth/login", { email: user.email, password: user.password }, at(uniqueIp()))).status).toBe(200);
      // Another account is unaffected.
      const other = await createUser();
      expect((await post("/v1/auth/login", { email: other.email, password: other.password }, at(guesser))).status).toBe(200);
    });

    it("per client and email: a client that keeps failing for one email is stopped, even with the right password", async () => {
      const user = await createUser();
      const at = { headers: { "CF-Connecting-IP": uniqueIp() }, env: { LOGIN_FAILURES_PER_CLIENT: "2" } };
      for (let i = 0; i < 2; i++) expect((await post("/v1/auth/login", { email: user.email, password: `wrong password ${i}` }, at)).status).toBe(401);
      expectProblem(await post("/v1/auth/login", { email: user.email, password: user.password }, at), 429, "rate_limited");
    });
  });
});

describe("security", () => {
  it("reusing a rotated refresh token → 401 refresh_token_reused and the whole session ends", async () => {
    const user = await createUser();
    const first = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(first.status, first.text).toBe(200);
    const second = await post("/v1/auth/refresh", { refresh_token: first.body.refresh_token });
    expect(second.status, second.text).toBe(200);

    expectProblem(await post("/v1/auth/refresh", { refresh_token: user.refreshToken }), 401, "refresh_token_reused");

    // The newest refresh token of the family is dead too …
    const newest = await post("/v1/auth/refresh", { refresh_token: second.body.refresh_token });
    expect(newest.status, newest.text).toBe(401);
    // … and so are the session's access tokens, old and new.
    expectProblem(await get("/v1/me", { token: second.body.access_token }), 401, "unauthenticated");
    expectProblem(await get("/v1/me", { token: user.accessToken }), 401, "unauthenticated");
  });

  it("reuse revokes only that family: the user's other session keeps working", async () => {
    const user = await createUser();
    const other = await post("/v1/auth/login", { email: user.email, password: user.password });
    expect(other.status).toBe(200);
    expect((await post("/v1/auth/refresh", { refresh_token: user.refreshToken })).status).toBe(200);
    expect((await post("/v1/auth/refresh", { refresh_token: user.refreshToken })).status).toBe(401);
    expect((await get("/v1/me", { token: other.body.access_token })).status).toBe(200);
    expect((await post("/v1/auth/refresh", { refresh_token: other.body.refresh_token })).status).toBe(200);
  });

  it("two concurrent refreshes of one token: exactly one succeeds", async () => {
    const user = await createUser();
    const results = await Promise.all([
      post("/v1/auth/refresh", { refresh_token: user.refreshToken }),
      post("/v1/auth/refresh", { refresh_token: user.refreshToken }),
    ]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([200, 401]);
  });

  it("two concurrent signups with one email: exactly one account", async () => {
    const email = uniqueEmail("race");
    const results = await Promise.all([
      post("/v1/auth/signup", { email, password: PASSWORD, display_name: "First" }),
      post("/v1/auth/signup", { email: email.toUpperCase(), password: PASSWORD, display_name: "Second" }),
    ]);
    const statuses = results.map((r) => r.status).sort();
    expect(statuses, results.map((r) => r.text).join("\n")).toEqual([201, 409]);
    expect(results.find((r) => r.status === 409)!.body.code).toBe("email_taken");
  });

  it("the refresh token of an expired session → 401", async () => {
    const user = await createUser();
    const { sid } = decodeJwt(user.accessToken) as { sid: string };
    await env.DB.prepare("update sessions set expires_at = ? where id = ?")
      .bind(Date.now() - 1_000, sid)
      .run();
    const res = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(res.status, res.text).toBe(401);
  });

  describe("forged or foreign credentials → 401 unauthenticated", () => {
    it("a tampered signature", async () => {
      const user = await createUser();
      const [h, p, s] = user.accessToken.split(".") as [string, string, string];
      const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
      expectProblem(await get("/v1/me", { token: `${h}.${p}.${flipped}` }), 401, "unauthenticated");
    });

    it("a payload swapped under a valid signature (another user's sub)", async () => {
      const victim = await createUser();
      const attacker = await createUser();
      const [h, p, s] = attacker.accessToken.split(".") as [string, string, string];
      const claims = JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/")));
      const forged = b64url(JSON.stringify({ ...claims, sub: victim.id }));
      expectProblem(await get("/v1/me", { token: `${h}.${forged}.${s}` }), 401, "unauthenticated");
    });

    it("an expired token signed with the real key", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const token = await signToken({ sub: user.id, sid, exp: Math.floor(Date.now() / 1000) - 600 });
      const res = await get("/v1/me", { token });
      expectProblem(res, 401, "unauthenticated");
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    });

    it("an unknown kid (real key)", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const token = await signToken({ sub: user.id, sid, exp: Math.floor(Date.now() / 1000) + 300, kid: "not-a-key" });
      expectProblem(await get("/v1/me", { token }), 401, "unauthenticated");
    });

    it("a foreign key presenting the real kid", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const { privateKey } = await generateKeyPair("ES256", { extractable: true });
      expect((await exportJWK(privateKey)).kty).toBe("EC");
      const token = await signToken({ sub: user.id, sid, exp: Math.floor(Date.now() / 1000) + 300, key: privateKey });
      expectProblem(await get("/v1/me", { token }), 401, "unauthenticated");
    });

    it("a wrong issuer or audience", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const exp = Math.floor(Date.now() / 1000) + 300;
      expectProblem(await get("/v1/me", { token: await signToken({ sub: user.id, sid, exp, iss: "someone-else" }) }), 401, "unauthenticated");
      expectProblem(await get("/v1/me", { token: await signToken({ sub: user.id, sid, exp, aud: "someone-else" }) }), 401, "unauthenticated");
    });

    it("a token minted before iss became the API's URL (iss and aud `tenancy-api`, no profile claims)", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const exp = Math.floor(Date.now() / 1000) + 300;
      const old = await signToken({ sub: user.id, sid, exp, iss: "tenancy-api", aud: "tenancy-api", claims: { sid, auth_time: 0 } });
      expectProblem(await get("/v1/me", { token: old }), 401, "unauthenticated");
      // The client's way out is the usual one: its refresh token still works.
      const refreshed = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
      expect(refreshed.status, refreshed.text).toBe(200);
      expect((await get("/v1/me", { token: refreshed.body.access_token })).status).toBe(200);
    });

    it("a token of ours lacking a profile claim", async () => {
      const user = await createUser();
      const { sid } = decodeJwt(user.accessToken) as { sid: string };
      const exp = Math.floor(Date.now() / 1000) + 300;
      const { email: _email, ...withoutEmail } = PROFILE_CLAIMS;
      expectProblem(await get("/v1/me", { token: await signToken({ sub: user.id, sid, exp, claims: { sid, ...withoutEmail } }) }), 401, "unauthenticated");
      const wrongType = { sid, ...PROFILE_CLAIMS, email_verified: "yes" };
      expectProblem(await get("/v1/me", { token: await signToken({ sub: user.id, sid, exp, claims: wrongType }) }), 401, "unauthenticated");
    });

    it('alg "none"', async () => {
      const user = await createUser();
      const [, p] = user.accessToken.split(".") as [string, string];
      const header = b64url(JSON.stringify({ alg: "none", typ: "JWT", kid: signingJwk().kid }));
      expectProblem(await get("/v1/me", { token: `${header}.${p}.` }), 401, "unauthenticated");
    });

    it("a Basic authorization header", async () => {
      expectProblem(await get("/v1/me", { headers: { Authorization: "Basic xyz" } }), 401, "unauthenticated");
    });

    it("a SCIM token on /v1", async () => {
      expectProblem(await get("/v1/me", { token: `scim_${unique("x")}` }), 401, "unauthenticated");
    });

    it("garbage bearer tokens", async () => {
      expectProblem(await get("/v1/me", { token: "garbage" }), 401, "unauthenticated");
      expectProblem(await get("/v1/me", { token: `pat_${unique("x")}` }), 401, "unauthenticated");
      expectProblem(await get("/v1/me", { headers: { Authorization: "Bearer " } }), 401, "unauthenticated");
    });

    it("a refresh token used as a bearer token", async () => {
      const user = await createUser();
      expectProblem(await get("/v1/me", { token: user.refreshToken }), 401, "unauthenticated");
    });
  });

  it("login and refresh responses never echo the password", async () => {
    const user = await createUser();
    const res = await post("/v1/auth/login", { email: user.email, password: user.password });
    expect(res.text).not.toContain(user.password);
    expect(JSON.stringify(res.body.user)).not.toMatch(/password/);
  });
});
