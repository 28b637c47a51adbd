import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { patch, post } from "../helpers/client";
import { unique } from "../helpers/factories";

export const domainsPath = (orgId: string) => `/v1/organizations/${orgId}/domains`;
export const domainPath = (orgId: string, id: string) => `/v1/organizations/${orgId}/domains/${id}`;
export const verifyPath = (orgId: string, id: string) => `/v1/organizations/${orgId}/domains/${id}/verify`;

/** The resolver the tests run against: DOH_RESOLVER_URL is unset, so the default. */
export const RESOLVER = "https://cloudflare-dns.com/dns-query";

/** A domain no other test uses: the verified-domain index is shared by every test. */
export const uniqueDomain = (label = "acme") => `${unique(label).toLowerCase()}.test`;

/** Quotes a TXT string the way DoH JSON answers carry it (zone-file form). */
export const quoted = (value: string) => `"${value.replace(/[\\"]/g, (m) => `\\${m}`)}"`;

export const dnsJson = (body: unknown, status = 200) =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), { status, headers: { "Content-Type": "application/dns-json" } });

/** A DoH JSON answer holding these TXT data strings (already in zone-file form). */
export const txtAnswer = (name: string, data: string[]) => ({
  Status: 0,
  TC: false,
  RD: true,
  RA: true,
  AD: false,
  CD: false,
  Question: [{ name: `${name}.`, type: 16 }],
  Answer: data.map((d) => ({ name: `${name}.`, type: 16, TTL: 300, data: d })),
});

export const NXDOMAIN = { Status: 3, TC: false, RD: true, RA: true, AD: false, CD: false, Question: [] };

/**
 * Stubs the one outside system, the DNS-over-HTTPS resolver, at the fetch boundary. `answer`
 * gets the asked name; anything but a well-formed TXT question to the resolver fails the test.
 * Restore with vi.restoreAllMocks() (afterEach).
 */
export function stubResolver(answer: (name: string) => Response | Promise<Response>) {
  const asked: string[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input as RequestInfo, init as RequestInit);
    const url = new URL(req.url);
    if (`${url.origin}${url.pathname}` !== RESOLVER) throw new Error(`unexpected fetch to ${req.url}`);
    expect(req.method).toBe("GET");
    expect(req.headers.get("accept")).toBe("application/dns-json");
    expect(url.searchParams.get("type")).toBe("TXT");
    expect(init?.signal, "the lookup must have a timeout").toBeInstanceOf(AbortSignal);
    const name = url.searchParams.get("name")!;
    asked.push(name);
    return answer(name);
  });
  return { asked, spy };
}

/** A resolver that publishes `records` (name → TXT values) and answers NXDOMAIN for anything else. */
export function publish(records: Record<string, string[]>) {
  return stubResolver((name) => (records[name] ? dnsJson(txtAnswer(name, records[name]!.map(quoted))) : dnsJson(NXDOMAIN)));
}

export interface Domain {
  id: string;
  domain: string;
  verification: { type: "TXT"; name: string; value: string };
  verified_at: string | null;
  jit_provisioning_enabled: boolean;
  sso_enforcement: "optional" | "required";
  scim_enabled: boolean;
  identity_provider_config_id: string | null;
  created_at: string;
  updated_at: string;
}

export async function claimDomain(token: string, orgId: string, domain = uniqueDomain()): Promise<Domain> {
  const res = await post(domainsPath(orgId), { domain }, { token });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** Claims and verifies a domain through the API, against a stubbed resolver publishing its record. */
export async function verifiedDomain(token: string, orgId: string, domain = uniqueDomain(), settings: Record<string, unknown> = {}): Promise<Domain> {
  const d = await claimDomain(token, orgId, domain);
  const { spy } = publish({ [d.verification.name]: [d.verification.value] });
  const res = await post(verifyPath(orgId, d.id), undefined, { token });
  spy.mockRestore();
  expect(res.status, res.text).toBe(200);
  if (Object.keys(settings).length === 0) return res.body;
  const patched = await patch(domainPath(orgId, d.id), settings, { token });
  expect(patched.status, patched.text).toBe(200);
  return patched.body;
}

export async function domainRow(id: string) {
  return env.DB.prepare("select * from domains where id = ?").bind(id).first<Record<string, any>>();
}

/** An identity provider config, seeded directly (its routes are tested on their own). */
export async function seedIdpConfig(orgId: string, opts: { isDefault?: boolean } = {}) {
  const id = newId("identityProvider");
  const now = Date.now();
  await env.DB.prepare(
    "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, saml_sso_url, is_default, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
  )
    .bind(id, orgId, `IdP ${unique("")}`, `https://idp.example/${id}`, "https://idp.example/sso", opts.isDefault ? 1 : 0, now, now)
    .run();
  return id;
}

/** A verification token for the user's current address, as the emailed link would carry it. */
export async function seedVerifyToken(user: { id: string; email: string }) {
  const token = `vfy_${unique("tok").replace(/[^A-Za-z0-9]/g, "x")}${"A".repeat(20)}`;
  const now = Date.now();
  await env.DB.prepare("insert into email_tokens (token_hash, user_id, email, purpose, created_at, expires_at) values (?, ?, ?, 'verify_email', ?, ?)")
    .bind(await sha256Hex(token), user.id, user.email, now, now + 3_600_000)
    .run();
  return token;
}

export async function membership(orgId: string, userId: string) {
  return env.DB.prepare("select role, type, email from members where organization_id = ? and member_id = ?").bind(orgId, userId).first<Record<string, any>>();
}
