/** Shared by the browser tests: the worker's base URL, JSON calls to it, the dev mailbox, a browser. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

const root = path.resolve(import.meta.dirname, "../..");

export const BASE = process.env.BROWSER_TEST_BASE_URL ?? "http://127.0.0.1:8797";
export const PASSWORD = "correct horse battery staple";

let n = 0;
export const uniqueEmail = (label) => `${label}-${Date.now().toString(36)}-${++n}@browser.test`;

export async function api(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export async function signup(label) {
  const email = uniqueEmail(label);
  const res = await api("POST", "/v1/auth/signup", { body: { email, password: PASSWORD, display_name: `${label} person` } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { email, id: res.body.user.id, token: res.body.access_token };
}

/** The link in the newest email to `to` whose subject matches; the queue delivers within a few seconds. */
export async function emailedLink(to, subject) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const res = await api("GET", `/v1/dev/emails?to=${encodeURIComponent(to)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const email = res.body.items.find((e) => subject.test(e.subject));
    if (email) return /https?:\/\/\S+/.exec(email.text)[0];
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no email "${subject}" to ${to} within 20 s`);
}

/**
 * A headless Chromium. Every page it opens fails its test on a CSP violation or a script error,
 * so a policy that blocks the page's own code cannot pass unnoticed.
 */
export async function openBrowser() {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox"] });
  const problems = [];
  return {
    browser,
    problems,
    async page() {
      const page = await browser.newPage();
      page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
      page.on("console", (msg) => {
        if (msg.type() === "error" && /Content Security Policy|Refused to/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
      });
      return page;
    },
  };
}

/**
 * A DNS-over-HTTPS (JSON) resolver the worker asks during domain verification
 * (DOH_RESOLVER_URL, set by scripts/test-browser.mjs): TXT records the test publishes, NXDOMAIN
 * for the rest.
 */
export async function startResolver() {
  const records = new Map();
  const server = createServer((req, res) => {
    const name = new URL(req.url ?? "/", "http://x").searchParams.get("name")?.toLowerCase().replace(/\.$/, "") ?? "";
    const value = records.get(name);
    const body = value
      ? { Status: 0, Answer: [{ name: `${name}.`, type: 16, TTL: 60, data: `"${value.replace(/[\\"]/g, (m) => `\\${m}`)}"` }] }
      : { Status: 3 };
    res.writeHead(200, { "Content-Type": "application/dns-json" });
    res.end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(Number(process.env.BROWSER_TEST_DOH_PORT ?? 8798), "127.0.0.1", resolve));
  return { publish: (name, value) => records.set(name.toLowerCase(), value), close: () => new Promise((r) => server.close(r)) };
}

/** An organization whose verified domain signs in through a config trusting the dev IdP's key (test/fixtures/saml), with JIT on. */
export async function ssoOrganization(resolver) {
  const admin = await signup("sso-admin");
  const org = await api("POST", "/v1/organizations", { token: admin.token, body: { name: `SSO Org ${Date.now()}` } });
  assert.equal(org.status, 201, JSON.stringify(org.body));
  const orgPath = `/v1/organizations/${org.body.id}`;
  const domain = `sso-${Date.now().toString(36)}.test`;
  const claimed = await api("POST", `${orgPath}/domains`, { token: admin.token, body: { domain } });
  assert.equal(claimed.status, 201, JSON.stringify(claimed.body));
  resolver.publish(claimed.body.verification.name, claimed.body.verification.value);
  const verified = await api("POST", `${orgPath}/domains/${claimed.body.id}/verify`, { token: admin.token });
  assert.equal(verified.status, 200, JSON.stringify(verified.body));
  const idp = await api("POST", `${orgPath}/identity-provider-configs`, {
    token: admin.token,
    body: {
      name: "Dev IdP",
      saml_entity_id: "https://idp.dev.test",
      saml_sso_url: "https://idp.dev.test/sso",
      saml_x509_cert: readFileSync(path.join(root, "test/fixtures/saml/idp-cert.pem"), "utf8"),
    },
  });
  assert.equal(idp.status, 201, JSON.stringify(idp.body));
  const linked = await api("PATCH", `${orgPath}/domains/${claimed.body.id}`, {
    token: admin.token,
    body: { identity_provider_config_id: idp.body.id, jit_provisioning_enabled: true },
  });
  assert.equal(linked.status, 200, JSON.stringify(linked.body));
  return { domain, idpId: idp.body.id };
}

/** The dev IdP (scripts/dev-idp.mjs) signs the user in up to the ACS's redirect: the callback URL with an unspent code. */
export function ssoCallbackUrl(idpId, email) {
  const run = spawnSync(process.execPath, ["scripts/dev-idp.mjs", "--api", BASE, "--idp", idpId, "--email", email, "--callback-only"], {
    cwd: root,
    encoding: "utf8",
  });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim().split("\n").at(-1);
}
