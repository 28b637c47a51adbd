declare namespace Cloudflare {
  interface Env {
    DB: D1Database;
    KV: KVNamespace;
    EMAIL_QUEUE: Queue;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    // Secrets, set for the tests in vitest.config.ts (wrangler.toml holds no secrets, so the
    // generated types do not name them).
    JWT_SIGNING_KEYS?: string;
    ENCRYPTION_KEY?: string;
    HMAC_SECRET?: string;
    /** Miniflare's simulated send_email binding (vitest.config.ts). */
    SEND_EMAIL?: SendEmail;
  }
}
