declare namespace Cloudflare {
  interface Env {
    DB: D1Database;
    KV: KVNamespace;
    EMAIL_QUEUE: Queue;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    [key: string]: unknown;
  }
}
