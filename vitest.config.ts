import path from "node:path";
import { webcrypto } from "node:crypto";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** Fresh, test-only secrets for every run: nothing secret is committed. */
async function testSecrets() {
  const { privateKey } = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const jwk = await webcrypto.subtle.exportKey("jwk", privateKey);
  const random = (n: number) => Buffer.from(webcrypto.getRandomValues(new Uint8Array(n))).toString("base64");
  return {
    JWT_SIGNING_KEYS: JSON.stringify([{ ...jwk, kid: "test-1" }]),
    ENCRYPTION_KEY: random(32),
    HMAC_SECRET: random(32),
  };
}

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          // Cloudflare's simulated send_email binding, for the `cloudflare` email provider's tests.
          email: { send_email: [{ name: "SEND_EMAIL" }] },
          bindings: {
            TEST_MIGRATIONS: migrations,
            ...(await testSecrets()),
            ENVIRONMENT: "development",
            APP_BASE_URL: "http://app.test",
            API_BASE_URL: "http://api.test",
            PLATFORM_ADMIN_EMAILS: "root@platform.test",
            EMAIL_PROVIDER: "outbox",
            // Set here because the pool also reads `.dev.vars`, which `npm run dev` points at the
            // local resolver: tests stub the public resolver's URL at the fetch boundary.
            DOH_RESOLVER_URL: "https://cloudflare-dns.com/dns-query",
            // The iteration count is stored with each hash; tests use a low one to stay fast.
            PASSWORD_HASH_ITERATIONS: "1000",
            // Tests that exercise the limits lower them per request (see helpers/client.ts).
            AUTH_RATE_LIMIT_PER_MINUTE: "100000",
            CREDENTIAL_RATE_LIMIT_PER_MINUTE: "100000",
            LOGIN_RATE_LIMIT_PER_EMAIL: "100000",
            LOGIN_FAILURES_PER_CLIENT: "100000",
          },
        },
      }),
    ],
    test: {
      setupFiles: ["./test/setup/apply-migrations.ts"],
      testTimeout: 60_000,
      hookTimeout: 120_000,
    },
  };
});
