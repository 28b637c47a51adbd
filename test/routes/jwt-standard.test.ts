import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import type { Bindings } from "../../src/env";
import { get, post, testEnv } from "../helpers/client";
import { createUser, PASSWORD, uniqueEmail } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

/**
 * Issue 13, item 3: an access token is verifiable by any standard JWT library from its `iss`
 * alone. jose's own remote key set and verifier stand in for the independent verifier; the
 * network they reach is the worker itself.
 */

/** The test worker's API_BASE_URL. */
const API = "http://api.test";

/** Routes every outbound fetch to `origin` into the worker (configured by `env`); anything else fails the test. */
function serveWorkerAt(origin: string, env?: Partial<Bindings>) {
  return vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    if (new URL(request.url).origin !== origin) throw new Error(`unexpected fetch: ${request.url}`);
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, testEnv(env), ctx);
    await waitOnExecutionContext(ctx);
    return res;
  });
}

/** What a relying party does knowing nothing but the token: discovery from `iss`, then keys from `jwks_uri`. */
async function verifyFromIssuer(token: string, audience: string) {
  const iss = decodeJwt(token).iss!;
  const discovery = (await (await fetch(`${iss}/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
  expect(discovery.issuer).toBe(iss);
  const keys = createRemoteJWKSet(new URL(discovery.jwks_uri));
  return jwtVerify(token, keys, { issuer: iss, audience, algorithms: ["ES256"] });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("happy", () => {
  it("iss is the API's base URL and aud defaults to it", async () => {
    const user = await createUser();
    const claims = decodeJwt(user.accessToken);
    expect(claims.iss).toBe(API);
    expect(claims.aud).toBe(API);
  });

  it("jose's remote key set at {iss}/.well-known/jwks.json verifies the token with issuer and audience", async () => {
    serveWorkerAt(API);
    const user = await createUser();
    const keys = createRemoteJWKSet(new URL(`${API}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(user.accessToken, keys, { issuer: API, audience: API });
    expect(protectedHeader.alg).toBe("ES256");
    expect(payload).toMatchObject({ sub: user.id, email: user.email, name: user.displayName, email_verified: false });
  });

  it("discovery from iss alone, for a fresh token and a refreshed one", async () => {
    serveWorkerAt(API);
    const user = await createUser();
    expect((await verifyFromIssuer(user.accessToken, API)).payload.sub).toBe(user.id);
    const refreshed = await post("/v1/auth/refresh", { refresh_token: user.refreshToken });
    expect(refreshed.status, refreshed.text).toBe(200);
    expect((await verifyFromIssuer(refreshed.body.access_token, API)).payload.sub).toBe(user.id);
  });

  it("the discovery document states only what is true: issuer, keys, algorithm, the claims a token carries", async () => {
    const res = await get("/.well-known/openid-configuration");
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(res.body).toEqual({
      issuer: API,
      jwks_uri: `${API}/.well-known/jwks.json`,
      id_token_signing_alg_values_supported: ["ES256"],
      subject_types_supported: ["public"],
      claims_supported: expect.any(Array),
      service_documentation: `${API}/docs`,
    });
    const user = await createUser();
    expect([...res.body.claims_supported].sort()).toEqual(Object.keys(decodeJwt(user.accessToken)).sort());
    // The documented links resolve.
    expect((await get("/.well-known/jwks.json")).status).toBe(200);
    expect((await get("/docs")).status).toBe(200);
  });

  it("a trailing slash on API_BASE_URL does not reach iss or the discovery URLs", async () => {
    const env = { API_BASE_URL: `${API}/` };
    const res = await get("/.well-known/openid-configuration", { env });
    expect(res.body.issuer).toBe(API);
    expect(res.body.jwks_uri).toBe(`${API}/.well-known/jwks.json`);
    const signup = await post("/v1/auth/signup", { email: uniqueEmail("slash"), password: PASSWORD, display_name: "Slash" }, { env });
    expect(signup.status, signup.text).toBe(201);
    expect(decodeJwt(signup.body.access_token)).toMatchObject({ iss: API, aud: API });
  });

  it("JWT_AUDIENCE sets aud; the worker and a standard verifier both hold tokens to it", async () => {
    const audience = "https://app.example.com";
    const env = { JWT_AUDIENCE: audience };
    serveWorkerAt(API, env);
    const res = await post("/v1/auth/signup", { email: uniqueEmail("aud"), password: PASSWORD, display_name: "Aud" }, { env });
    expect(res.status, res.text).toBe(201);
    const token = res.body.access_token as string;
    expect(decodeJwt(token)).toMatchObject({ iss: API, aud: audience });
    expect((await verifyFromIssuer(token, audience)).payload.sub).toBe(res.body.user.id);
    expect((await get("/v1/me", { token, env })).status).toBe(200);
    // A deployment expecting another audience refuses it.
    expectProblem(await get("/v1/me", { token }), 401, "unauthenticated");
  });
});

describe("security", () => {
  it("a standard verifier refuses our token for another issuer or audience", async () => {
    serveWorkerAt(API);
    const user = await createUser();
    const keys = createRemoteJWKSet(new URL(`${API}/.well-known/jwks.json`));
    await expect(jwtVerify(user.accessToken, keys, { issuer: "https://other.example", audience: API })).rejects.toThrow(/iss/);
    await expect(jwtVerify(user.accessToken, keys, { issuer: API, audience: "https://other.example" })).rejects.toThrow(/aud/);
  });

  it("a token minted for another deployment (another API_BASE_URL) is refused here", async () => {
    const other = { API_BASE_URL: "https://staging.example.com" };
    const res = await post("/v1/auth/signup", { email: uniqueEmail("staging"), password: PASSWORD, display_name: "Staging" }, { env: other });
    expect(res.status, res.text).toBe(201);
    expect((await get("/v1/me", { token: res.body.access_token, env: other })).status).toBe(200);
    expectProblem(await get("/v1/me", { token: res.body.access_token }), 401, "unauthenticated");
  });

  it("the discovery document is public, outside /v1's client budget, and carries no secret", async () => {
    const res = await get("/.well-known/openid-configuration", { env: { AUTH_RATE_LIMIT_PER_MINUTE: "1" } });
    expect(res.status).toBe(200);
    expect(res.cost.queries).toBe(0);
    expect(res.cost.kvReads).toBe(0);
    expect(res.text).not.toMatch(/"d"|private/i);
  });
});
