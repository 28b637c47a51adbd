import createFetchClient, { type Client, type Middleware } from "openapi-fetch";
import type { paths } from "./api";

/**
 * A typed client for the API, for browsers, Node and Workers alike. Paths, parameters, bodies
 * and responses are typed from the OpenAPI document the worker serves (client/openapi.json,
 * checked against the worker by test/routes/client.test.ts; client/api.d.ts is generated from it
 * by `npm run client:generate`).
 *
 * Not `hono/client`: the route seam registers each route with `router.on(method, path, handler)`
 * after documenting it, so the app's type carries no routes and `hc<App>` types every call as
 * unknown. The OpenAPI document is where the routes' types live.
 */

export type { paths, components } from "./api";

/** A bearer credential: an access token, a personal access token `pat_…` or a service account key `sak_…`. */
export type Credential = string | null | (() => string | null | Promise<string | null>);

export interface ClientOptions {
  /** Where requests go instead of the global fetch: a service binding's fetch, or a test's worker. */
  fetch?: (request: Request) => Promise<Response>;
  /** An X-D1-Bookmark from an earlier client, to read no older data than it saw. */
  bookmark?: string;
}

export type TenancyClient = Client<paths> & {
  /** The latest X-D1-Bookmark the API answered with; the client sends it on every request. */
  bookmark(): string | null;
};

const BOOKMARK_HEADER = "X-D1-Bookmark";

/**
 * `credential` is sent as `Authorization: Bearer …` when not null; pass a function to supply
 * a refreshed access token. The client keeps the API's latest D1 bookmark and sends it back, so
 * a read after a write sees the write even when it lands on a read replica.
 */
export function createClient(baseUrl: string, credential: Credential, options: ClientOptions = {}): TenancyClient {
  let bookmark: string | null = options.bookmark ?? null;
  const client = createFetchClient<paths>({ baseUrl: baseUrl.replace(/\/+$/, ""), ...(options.fetch ? { fetch: options.fetch } : {}) });
  const session: Middleware = {
    async onRequest({ request }) {
      const token = typeof credential === "function" ? await credential() : credential;
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      if (bookmark) request.headers.set(BOOKMARK_HEADER, bookmark);
      return request;
    },
    onResponse({ response }) {
      bookmark = response.headers.get(BOOKMARK_HEADER) ?? bookmark;
      return response;
    },
  };
  client.use(session);
  return Object.assign(client, { bookmark: () => bookmark });
}
