#!/usr/bin/env node
/**
 * `npm run test:browser`: the hosted pages (src/pages) in a real headless Chromium. Starts its own
 * `wrangler dev` (port 8797 unless PORT is set, fresh secrets, its own throwaway state, APP_BASE_URL
 * = the worker itself, domain verification asking the tests' resolver on the next port), runs test/browser/*.browser.mjs with node's test runner, and stops the
 * worker by its process id. The browser is CHROMIUM_PATH, else the first of the usual Debian and
 * Chrome paths; with none, this fails and says how to get one.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const wrangler = path.join(root, "node_modules", ".bin", "wrangler");
const port = process.env.PORT ?? "8797";
const base = `http://127.0.0.1:${port}`;
// The tests serve domain-verification TXT records on the next port (test/browser/helpers.mjs).
const dohPort = String(Number(port) + 1);

const browsers = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter(Boolean);
const chromium = browsers.find((p) => existsSync(p));
if (!chromium) {
  console.error(
    `test:browser: no Chromium found (looked at ${browsers.join(", ")}).\n` +
      "Install Debian's (`apt-get install -y chromium`) or point CHROMIUM_PATH at a Chromium or Chrome binary.",
  );
  process.exit(1);
}

const state = mkdtempSync(path.join(tmpdir(), "tenancy-browser-"));
const envFile = path.join(state, "browser.env");
const { privateKey } = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
const jwk = await webcrypto.subtle.exportKey("jwk", privateKey);
const random = (n) => Buffer.from(webcrypto.getRandomValues(new Uint8Array(n))).toString("base64");
// Passed with --env-file, so a developer's .dev.vars plays no part.
writeFileSync(
  envFile,
  [
    "ENVIRONMENT=development",
    `APP_BASE_URL=${base}`,
    `API_BASE_URL=${base}`,
    "EMAIL_PROVIDER=outbox",
    `DOH_RESOLVER_URL=http://127.0.0.1:${dohPort}/dns-query`,
    "PASSWORD_HASH_ITERATIONS=1000",
    "AUTH_RATE_LIMIT_PER_MINUTE=100000",
    "CREDENTIAL_RATE_LIMIT_PER_MINUTE=100000",
    "LOGIN_RATE_LIMIT_PER_EMAIL=100000",
    "LOGIN_FAILURES_PER_CLIENT=100000",
    `JWT_SIGNING_KEYS=${JSON.stringify([{ ...jwk, kid: "browser-test" }])}`,
    `ENCRYPTION_KEY=${random(32)}`,
    `HMAC_SECRET=${random(32)}`,
    "",
  ].join("\n"),
  { mode: 0o600 },
);

const quiet = { ...process.env, CI: "1", WRANGLER_SEND_METRICS: "false" };
const migrate = spawnSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], { cwd: root, env: quiet, encoding: "utf8" });
if (migrate.status !== 0) {
  console.error(migrate.stdout, migrate.stderr);
  process.exit(1);
}

// Its own process group, so stopping it by id also stops the workerd it starts.
const worker = spawn(
  wrangler,
  ["dev", "--ip", "127.0.0.1", "--port", port, "--persist-to", state, "--env-file", envFile, "--show-interactive-dev-session=false"],
  {
    cwd: root,
    env: quiet,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  },
);
let log = "";
worker.stdout.on("data", (d) => (log += d));
worker.stderr.on("data", (d) => (log += d));
console.log(`test:browser: wrangler dev pid ${worker.pid} on ${base}, browser ${chromium}`);

function stop() {
  try {
    process.kill(-worker.pid, "SIGTERM");
  } catch {
    // Already gone.
  }
}
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => (stop(), process.exit(1)));

let code = 1;
try {
  await ready();
  const files = readdirSync(path.join(root, "test/browser"))
    .filter((f) => f.endsWith(".browser.mjs"))
    .map((f) => path.join("test/browser", f));
  const run = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...files], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, BROWSER_TEST_BASE_URL: base, BROWSER_TEST_DOH_PORT: dohPort, CHROMIUM_PATH: chromium },
  });
  code = run.status ?? 1;
} catch (err) {
  console.error(`test:browser: ${err.message}\n--- wrangler dev ---\n${log}`);
} finally {
  stop();
  await new Promise((r) => setTimeout(r, 500));
  rmSync(state, { recursive: true, force: true });
}
process.exit(code);

async function ready() {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (worker.exitCode !== null) throw new Error(`wrangler dev exited with ${worker.exitCode}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`wrangler dev did not answer on ${base} within 90 s`);
}
