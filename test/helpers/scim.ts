import { env } from "cloudflare:workers";
import { sha256Hex } from "../../src/lib/crypto";
import { newId } from "../../src/lib/ids";
import { api, type ApiResponse } from "./client";
import { createOrg, createUser, unique, type TestUser } from "./factories";

/** A domain no other test uses (the verified-domain index is global). */
export const scimDomain = (label = "scim") => `${unique(label).toLowerCase()}.test`;

export interface ScimSetup {
  admin: TestUser;
  org: { id: string };
  configId: string;
  token: string;
  /** The organization's verified domain (absent with `verifiedDomain: false`). */
  domain: string;
}

/** A verified domain of an organization, seeded directly (the verification flow is tested on its own). */
export async function seedVerifiedDomain(orgId: string, domain = scimDomain()) {
  const now = Date.now();
  await env.DB.prepare(
    "insert into domains (id, organization_id, domain, verification_token, verified_at, scim_enabled, created_at, updated_at) values (?, ?, ?, ?, ?, 1, ?, ?)",
  )
    .bind(newId("domain"), orgId, domain, unique("v"), now, now, now)
    .run();
  return domain;
}

/** A SCIM token for the config, minted directly as the scim-token route stores it: the old one stops. */
export async function mintScimToken(configId: string) {
  const token = `scim_${unique("tok").replace(/[^A-Za-z0-9]/g, "x")}${"Q".repeat(24)}`;
  await env.DB.prepare("update identity_provider_configs set scim_token_hash = ?, scim_token_prefix = ?, scim_token_created_at = ? where id = ?")
    .bind(await sha256Hex(token), token.slice(0, 12), Date.now(), configId)
    .run();
  return token;
}

export async function seedScimConfig(orgId: string, opts: { scimEnabled?: boolean } = {}) {
  const id = newId("identityProvider");
  const now = Date.now();
  await env.DB.prepare(
    "insert into identity_provider_configs (id, organization_id, name, saml_entity_id, saml_sso_url, scim_enabled, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
  )
    .bind(id, orgId, `IdP ${unique("")}`, `https://idp.example/${id}`, "https://idp.example/sso", opts.scimEnabled === false ? 0 : 1, now, now)
    .run();
  return { configId: id, token: await mintScimToken(id) };
}

/** An organization (its admin signed up), a verified domain, an identity provider config with SCIM on, and its token. */
export async function scimSetup(opts: { verifiedDomain?: boolean; admin?: TestUser } = {}): Promise<ScimSetup> {
  const admin = opts.admin ?? (await createUser());
  const org = await createOrg(admin);
  const domain = opts.verifiedDomain === false ? scimDomain("unverified") : await seedVerifiedDomain(org.id);
  const { configId, token } = await seedScimConfig(org.id);
  return { admin, org, configId, token, domain };
}

/** A /scim/v2 request with a SCIM token and the SCIM media type. */
export function scim<T = any>(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse<T>> {
  return api<T>(method, `/scim/v2${path}`, {
    token,
    body,
    headers: { ...(body !== undefined ? { "Content-Type": "application/scim+json" } : {}), ...headers },
  });
}

export const scimUserRow = (id: string) => env.DB.prepare("select * from scim_users where id = ?").bind(id).first<Record<string, any>>();
export const accountByEmail = (email: string) => env.DB.prepare("select * from users where email = ?").bind(email.toLowerCase()).first<Record<string, any>>();
export const memberRow = (orgId: string, userId: string) =>
  env.DB.prepare("select * from members where organization_id = ? and member_id = ?").bind(orgId, userId).first<Record<string, any>>();
export const orgCounters = (orgId: string) =>
  env.DB.prepare("select member_count, user_member_count from organizations where id = ?")
    .bind(orgId)
    .first<{ member_count: number; user_member_count: number }>();

/**
 * `n` users of a directory seeded straight into D1 (accounts and scim_users rows), for paging
 * tests: ids in creation order. Not members (paging does not read memberships).
 */
export async function seedScimUsers(setup: { org: { id: string }; configId: string }, n: number, prefix = unique("bulk").toLowerCase()) {
  const ids: string[] = [];
  const stmts: D1PreparedStatement[] = [];
  const base = Date.now() - n;
  for (let i = 0; i < n; i++) {
    const now = base + i;
    const userId = newId("user", now);
    const id = newId("scimUser", now);
    ids.push(id);
    const email = `${prefix}.${String(i).padStart(5, "0")}@bulk.test`;
    stmts.push(
      env.DB.prepare(
        "insert into users (id, email, display_name, password_hash, email_verified_at, created_at, updated_at) values (?, ?, ?, null, null, ?, ?)",
      ).bind(userId, email, `Bulk ${i}`, now, now),
      env.DB.prepare(
        "insert into scim_users (id, config_id, organization_id, user_id, user_name, user_name_key, external_id, display_name, active, attributes, version, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 1, ?, ?)",
      ).bind(
        id,
        setup.configId,
        setup.org.id,
        userId,
        email,
        email,
        `ext-${prefix}-${i}`,
        `Bulk ${i}`,
        JSON.stringify({ emails: [{ value: email, type: "work", primary: true }] }),
        now,
        now,
      ),
    );
  }
  // The directory's maintained count, as the SCIM writes keep it.
  stmts.push(env.DB.prepare("update identity_provider_configs set scim_user_count = scim_user_count + ? where id = ?").bind(n, setup.configId));
  for (let i = 0; i < stmts.length; i += 500) await env.DB.batch(stmts.slice(i, i + 500));
  return ids;
}

/**
 * `count` SCIM users of `s`'s directory, each with an account and a SCIM-managed membership,
 * written straight into D1 in one batch (recursive CTEs), counters included. Ids are well formed
 * and unique to this call; emails are `<mailPrefix><i>@<domain>`.
 */
export async function seedScimMembers(s: ScimSetup, count: number, mailPrefix: string) {
  const tag = newId("scimUser").slice(4, 20);
  const id = (prefix: string, i: number) => `${prefix}_${tag}${String(i).padStart(10, "0")}`;
  const now = Date.now();
  const seq = `with recursive seq(i) as (select 0 union all select i + 1 from seq where i < ${count - 1})`;
  const sqlId = (prefix: string) => `'${prefix}_${tag}' || printf('%010d', i)`;
  const mail = `'${mailPrefix}' || i || '@${s.domain}'`;
  await env.DB.batch([
    env.DB.prepare(
      `${seq} insert into users (id, email, display_name, created_at, updated_at) select ${sqlId("usr")}, ${mail}, 'Bulk ' || i, ?, ? from seq`,
    ).bind(now, now),
    env.DB.prepare(
      `${seq} insert into scim_users (id, config_id, organization_id, user_id, user_name, user_name_key, display_name, active, attributes, version, created_at, updated_at)
       select ${sqlId("scu")}, ?, ?, ${sqlId("usr")}, ${mail}, ${mail}, 'Bulk ' || i, 1, '{}', 1, ?, ? from seq`,
    ).bind(s.configId, s.org.id, now, now),
    env.DB.prepare(
      `${seq} insert into members (organization_id, member_id, type, role, display_name, name_key, email, joined_at, scim_config_id)
       select ?, ${sqlId("usr")}, 'user', 'user', 'Bulk ' || i, 'bulk ' || i, ${mail}, ?, ? from seq`,
    ).bind(s.org.id, now, s.configId),
    env.DB.prepare("update organizations set member_count = member_count + ?, user_member_count = user_member_count + ? where id = ?").bind(
      count,
      count,
      s.org.id,
    ),
    env.DB.prepare("update identity_provider_configs set scim_user_count = scim_user_count + ? where id = ?").bind(count, s.configId),
  ]);
  return { scu: Array.from({ length: count }, (_, i) => id("scu", i)), usr: Array.from({ length: count }, (_, i) => id("usr", i)) };
}
