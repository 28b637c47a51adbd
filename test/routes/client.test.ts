import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, expectTypeOf, it } from "vitest";
import { createClient } from "../../client";
import worker from "../../src/index";
import { get, testEnv } from "../helpers/client";
import { PASSWORD, unique, uniqueEmail } from "../helpers/factories";

const BASE_URL = "http://api.test";
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;

/** The worker's own fetch handler in place of the network, recording the bookmark each request sent. */
function viaWorker() {
  const sent: (string | null)[] = [];
  const fetch = async (request: Request) => {
    sent.push(request.headers.get("x-d1-bookmark"));
    const ctx = createExecutionContext();
    const res = await worker.fetch(request, testEnv(), ctx);
    await waitOnExecutionContext(ctx);
    return res;
  };
  return { fetch, sent };
}

describe("the typed client's document", () => {
  it("client/openapi.json is the document the worker serves (npm run client:generate refreshes it)", async () => {
    const res = await get("/openapi.json", { env: { API_BASE_URL: "https://api.example.com" } });
    expect(res.status).toBe(200);
    await expect(`${JSON.stringify(res.body, null, 2)}\n`).toMatchFileSnapshot("../../client/openapi.json");
  });
});

describe("createClient against the worker", () => {
  it("signs up, then creates and reads an organization with typed bodies and responses", async () => {
    const { fetch } = viaWorker();
    const anonymous = createClient(BASE_URL, null, { fetch });
    const signup = await anonymous.POST("/v1/auth/signup", { body: { email: uniqueEmail(), password: PASSWORD, display_name: "Client User" } });
    expect(signup.response.status, JSON.stringify(signup.error)).toBe(201);
    const accessToken = signup.data!.access_token;
    expectTypeOf(accessToken).toEqualTypeOf<string>();

    const client = createClient(`${BASE_URL}/`, () => accessToken, { fetch });
    const name = `Client Org ${unique()}`;
    const created = await client.POST("/v1/organizations", { body: { name } });
    expect(created.response.status, JSON.stringify(created.error)).toBe(201);
    const read = await client.GET("/v1/organizations/{org_id}", { params: { path: { org_id: created.data!.id } } });
    expect(read.data?.name).toBe(name);

    // @ts-expect-error: a path the API does not serve is a type error, not a runtime 404.
    void (() => client.GET("/v1/no-such-route"));
  });

  it("errors arrive as typed problems", async () => {
    const client = createClient(BASE_URL, "not-a-token", viaWorker());
    const res = await client.GET("/v1/me");
    expect(res.response.status).toBe(401);
    expect(res.data).toBeUndefined();
    expect(res.error?.code).toBe("unauthenticated");
  });

  it("carries the latest X-D1-Bookmark to the next request, starting from one it is given", async () => {
    const { fetch, sent } = viaWorker();
    const anonymous = createClient(BASE_URL, null, { fetch });
    const signup = await anonymous.POST("/v1/auth/signup", { body: { email: uniqueEmail(), password: PASSWORD, display_name: "Bookmark User" } });
    const first = anonymous.bookmark();
    expect(first).toMatch(BOOKMARK);

    const client = createClient(BASE_URL, signup.data!.access_token, { fetch, bookmark: first! });
    const created = await client.POST("/v1/organizations", { body: { name: `Bookmarked ${unique()}` } });
    expect(created.response.status).toBe(201);
    const afterWrite = client.bookmark();
    expect(afterWrite).toMatch(BOOKMARK);
    await client.GET("/v1/organizations/{org_id}", { params: { path: { org_id: created.data!.id } } });

    expect(sent).toEqual([null, first, afterWrite]);
    expect(created.response.headers.get("x-d1-bookmark")).toBe(afterWrite);
  });
});
