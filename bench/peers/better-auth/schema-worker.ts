/**
 * Bundled only by generate-schema.ts: answers with the SQL that Better Auth's own migration planner
 * (`getMigrations`, what `auth generate` prints) would run against an empty D1 for the peer's options.
 */
import { getMigrations } from "better-auth/db/migration";
import { authOptions, type PeerEnv } from "./auth";

export default {
  async fetch(_request: Request, env: PeerEnv): Promise<Response> {
    const { compileMigrations } = await getMigrations(authOptions(env.DB, env));
    return new Response(await compileMigrations(), { headers: { "Content-Type": "application/sql" } });
  },
};
