import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decryptString } from "../../src/lib/crypto";
import { webhookSecretAad } from "../../src/queue/webhook-signing";
import { api, del, get, patch, post } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, createVerifiedUser } from "../helpers/factories";
import { errorPaths, expectProblem } from "../helpers/problems";
import {
  adminAndOrg,
  attemptsOf,
  auditOf,
  createWebhook,
  deliveriesOf,
  deliveriesPath,
  deliveryRow,
  recordingQueue,
  runWebhookQueue,
  seedDeliveries,
  stubReceiver,
  webhookPath,
  webhookRow,
  webhooksPath,
  type Webhook,
} from "./webhooks-helpers";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const WHK_ID = /^whk_[0-9A-HJKMNP-TV-Z]{26}$/;
/** Standard Webhooks: `whsec_` + base64 of 24–64 bytes; ours are 32 (44 base64 characters). */
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;

/** Every console line the worker writes during a test, to prove no secret is logged. */
let logged: string[] = [];
beforeEach(() => {
  logged = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

describe("happy", () => {
  it("POST creates an endpoint and shows its secret once; it is stored sealed and audited", async () => {
    const { admin, org } = await adminAndOrg();
    const res = await post(
      webhooksPath(org.id),
      { url: "https://hooks.example.com/in?team=7", events: ["member.added", "member.removed"], description: "CRM sync" },
      { token: admin.accessToken },
    );
    expect(res.status, res.text).toBe(201);
    expect(res.body).toEqual({
      id: expect.stringMatching(WHK_ID),
      url: "https://hooks.example.com/in?team=7",
      description: "CRM sync",
      events: ["member.added", "member.removed"],
      enabled: true,
      disabled_reason: null,
      failing_since: null,
      secret_rotation_ends_at: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
      secret: expect.stringMatching(SECRET),
    });
    // The authorization read, then the insert with its audit entry: two round trips.
    expect(res.cost).toMatchObject({ queries: 2, statements: 3 });
    const secret = res.body.secret as string;
    const stored = (await webhookRow(res.body.id))!;
    expect(stored.secret_ciphertext).not.toContain(secret.slice(6));
    expect(await decryptString(env.ENCRYPTION_KEY as string, stored.secret_ciphertext, webhookSecretAad(org.id, res.body.id))).toBe(secret);
    // Bound to its row: under another endpoint's name it does not decrypt.
    await expect(decryptString(env.ENCRYPTION_KEY as string, stored.secret_ciphertext, webhookSecretAad(org.id, "whk_other"))).rejects.toThrow();

    const t = { token: admin.accessToken };
    const got = await get(webhookPath(org.id, res.body.id), t);
    expect(got.status).toBe(200);
    const { secret: _s, ...shown } = res.body;
    expect(got.body).toEqual(shown);
    const list = await get(webhooksPath(org.id), t);
    expect(list.body).toEqual({ items: [shown], next_page_token: "" });
    for (const text of [got.text, list.text, ...logged]) expect(text).not.toContain(secret.slice(6, 30));

    const [entry, ...more] = await auditOf(org.id, "webhook.created");
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      actor_id: admin.id,
      credential: "session",
      target_type: "webhook",
      target_id: res.body.id,
      changes: JSON.stringify(["url", "events", "description"]),
    });
    expect(entry!.changes).not.toContain(secret);
  });

  it("PATCH changes url, events and description; a PATCH that changes nothing writes no entry", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const t = { token: admin.accessToken };
    const res = await patch(
      webhookPath(org.id, w.id),
      { url: "https://other.example.org/hook", events: ["invitation.created", "member.added"], description: "x" },
      t,
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ url: "https://other.example.org/hook", events: ["invitation.created", "member.added"], description: "x", enabled: true });
    expect(res.body.secret).toBeUndefined();
    expect((await auditOf(org.id, "webhook.updated")).map((e) => JSON.parse(e.changes))).toEqual([["url", "events", "description"]]);

    const same = await patch(webhookPath(org.id, w.id), { url: "https://other.example.org/hook", description: "x" }, t);
    expect(same.status, same.text).toBe(200);
    expect(await auditOf(org.id, "webhook.updated")).toHaveLength(1);

    const cleared = await patch(webhookPath(org.id, w.id), { description: null }, t);
    expect(cleared.body.description).toBeNull();
  });

  it("enabled: false stops it; enabled: true re-enables it and clears failing_since", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const t = { token: admin.accessToken };
    const off = await patch(webhookPath(org.id, w.id), { enabled: false }, t);
    expect(off.body).toMatchObject({ enabled: false, disabled_reason: "manual" });
    // As the consumer leaves it after days of failures.
    await env.DB.prepare("update webhooks set disabled_reason = 'consecutive_failures', failing_since = ? where id = ?")
      .bind(Date.now() - 6 * 86_400_000, w.id)
      .run();
    const before = await get(webhookPath(org.id, w.id), t);
    expect(before.body).toMatchObject({ enabled: false, disabled_reason: "consecutive_failures", failing_since: expect.stringMatching(ISO) });
    const on = await patch(webhookPath(org.id, w.id), { enabled: true }, t);
    expect(on.status, on.text).toBe(200);
    expect(on.body).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
    expect((await auditOf(org.id, "webhook.updated")).map((e) => JSON.parse(e.changes))).toEqual([["enabled"], ["enabled"]]);
  });

  it("DELETE removes the endpoint with its deliveries and attempts; a second DELETE is 404", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const [d] = await seedDeliveries(w.id, org.id, 1, { status: "failed" });
    await env.DB.prepare(
      "insert into webhook_attempts (id, delivery_id, attempt, response_code, duration_ms, error, created_at) values ('wha_x1', ?, 1, 500, 3, 'HTTP 500', ?)",
    )
      .bind(d, Date.now())
      .run();
    const t = { token: admin.accessToken };
    const res = await del(webhookPath(org.id, w.id), t);
    expect(res.status, res.text).toBe(204);
    expect(await webhookRow(w.id)).toBeNull();
    expect(await deliveryRow(d!)).toBeNull();
    expect(await attemptsOf(d!)).toEqual([]);
    expect(await auditOf(org.id, "webhook.deleted")).toHaveLength(1);
    expectProblem(await del(webhookPath(org.id, w.id), t), 404, "not_found");
    expect(await auditOf(org.id, "webhook.deleted")).toHaveLength(1);
  });

  it("rotate-secret returns a new secret once; the old one stays valid for the grace", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const t = { token: admin.accessToken };
    const before = Date.now();
    const res = await post(`${webhookPath(org.id, w.id)}/rotate-secret`, { grace_seconds: 3600 }, t);
    expect(res.status, res.text).toBe(200);
    expect(res.body.secret).toMatch(SECRET);
    expect(res.body.secret).not.toBe(w.secret);
    const ends = Date.parse(res.body.secret_rotation_ends_at);
    expect(ends).toBeGreaterThanOrEqual(before + 3600_000);
    expect(ends).toBeLessThan(Date.now() + 3600_000 + 1000);
    const row = (await webhookRow(w.id))!;
    const aad = webhookSecretAad(org.id, w.id);
    expect(await decryptString(env.ENCRYPTION_KEY as string, row.secret_ciphertext, aad)).toBe(res.body.secret);
    expect(await decryptString(env.ENCRYPTION_KEY as string, row.previous_secret_ciphertext, aad)).toBe(w.secret);
    expect((await get(webhookPath(org.id, w.id), t)).body.secret).toBeUndefined();
    expect((await auditOf(org.id, "webhook.updated")).map((e) => JSON.parse(e.changes))).toEqual([["secret"]]);

    // Default grace: a day. grace_seconds 0: the previous secret stops at once.
    const day = await post(`${webhookPath(org.id, w.id)}/rotate-secret`, {}, t);
    expect(Date.parse(day.body.secret_rotation_ends_at) - Date.now()).toBeGreaterThan(86_400_000 - 5000);
    const now = await post(`${webhookPath(org.id, w.id)}/rotate-secret`, { grace_seconds: 0 }, t);
    expect(now.body.secret_rotation_ends_at).toBeNull();
    expect((await webhookRow(w.id))!.previous_secret_ciphertext).toBeNull();
  });

  it("lists page over more than one page in creation order", async () => {
    const { admin, org } = await adminAndOrg();
    const made: Webhook[] = [];
    for (let i = 0; i < 5; i++) made.push(await createWebhook(admin, org.id, { description: `n${i}` }));
    const t = { token: admin.accessToken };
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await get(`${webhooksPath(org.id)}?page_size=2${token ? `&page_token=${token}` : ""}`, t);
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      seen.push(...res.body.items.map((w: Webhook) => w.id));
      token = res.body.next_page_token;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(made.map((w) => w.id));
    expectProblem(await get(`${webhooksPath(org.id)}?page_token=forged.token`, t), 400, "invalid_page_token");
  });

  it("at most 20 endpoints per organization: the 21st is 409 and leaves no entry", async () => {
    const { admin, org } = await adminAndOrg();
    const now = Date.now();
    const stmts = [];
    for (let i = 0; i < 20; i++) {
      stmts.push(
        env.DB.prepare(
          "insert into webhooks (id, organization_id, url, events, secret_ciphertext, created_at, updated_at) values (?, ?, 'https://h.example.com', '[\"member.added\"]', 'x', ?, ?)",
        ).bind(`whk_seed${i}_${org.id}`, org.id, now, now),
      );
    }
    await env.DB.batch(stmts);
    const res = await post(webhooksPath(org.id), { url: "https://hooks.example.com", events: ["member.added"] }, { token: admin.accessToken });
    const body = expectProblem(res, 409, "conflict");
    expect(body.limit).toBe(20);
    expect(await auditOf(org.id, "webhook.created")).toEqual([]);
    const count = await env.DB.prepare("select count(*) as n from webhooks where organization_id = ?").bind(org.id).first<{ n: number }>();
    expect(count!.n).toBe(20);
  });
});

describe("events from real routes", () => {
  it("PATCH of a member's role writes the delivery in the same batch: no extra round trip, then it is queued", async () => {
    const { admin, org } = await adminAndOrg();
    const a = await createVerifiedUser();
    const b = await createVerifiedUser();
    await addMemberDirect(org.id, a, "user");
    await addMemberDirect(org.id, b, "user");
    const queue = recordingQueue();
    const t = { token: admin.accessToken, env: queue.env };
    const memberPath = (id: string) => `/v1/organizations/${org.id}/members/${id}`;

    const without = await patch(memberPath(a.id), { role: "admin" }, t);
    expect(without.status, without.text).toBe(200);
    expect(queue.take()).toEqual([]);

    const w = await createWebhook(admin, org.id, { events: ["member.role_changed"] });
    const other = await createWebhook(admin, org.id, { events: ["member.added"] });
    const withEndpoint = await patch(memberPath(b.id), { role: "admin" }, t);
    expect(withEndpoint.status, withEndpoint.text).toBe(200);
    // The fan-out insert is in the batch either way: an endpoint adds rows, not statements or round trips.
    expect(withEndpoint.cost.queries).toBe(without.cost.queries);
    expect(withEndpoint.cost.statements).toBe(without.cost.statements);

    const [d, ...more] = await deliveriesOf(w.id);
    expect(more).toEqual([]);
    expect(await deliveriesOf(other.id)).toEqual([]);
    expect(queue.take()).toEqual([d!.id]);
    expect(await deliveryRow(d!.id)).toMatchObject({
      status: "queued",
      event_type: "member.role_changed",
      organization_id: org.id,
      event_id: expect.stringMatching(/^evt_/),
    });
    const payload = JSON.parse(d!.payload);
    expect(payload).toEqual({
      type: "member.role_changed",
      timestamp: expect.stringMatching(ISO),
      data: expect.objectContaining({ previous_role: "user", role: "admin" }),
    });

    // A disabled endpoint gets nothing.
    await patch(webhookPath(org.id, w.id), { enabled: false }, { token: admin.accessToken });
    await patch(memberPath(b.id), { role: "user" }, t);
    expect(await deliveriesOf(w.id)).toHaveLength(1);
  });
});

describe("deliveries", () => {
  it("list newest first over more than one page, each with its attempts (status, response code, duration, error)", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const ids = await seedDeliveries(w.id, org.id, 5, { status: "queued" });
    const queue = recordingQueue();
    // Every other event fails its first attempt.
    const tried = new Set<string>();
    stubReceiver((r) => {
      const first = !tried.has(r.headers["webhook-id"]!);
      tried.add(r.headers["webhook-id"]!);
      return first && tried.size % 2 === 1 ? new Response("nope", { status: 503 }) : new Response("ok");
    });
    await runWebhookQueue(ids, { env: queue.env });
    // The failures once more, succeeding now.
    const failed = (await Promise.all(ids.map(deliveryRow))).filter((r) => r!.status === "queued").map((r) => r!.id);
    await runWebhookQueue(failed, { attempts: 2, env: queue.env });

    const t = { token: admin.accessToken };
    const seen: any[] = [];
    let token = "";
    do {
      const res = await get(`${deliveriesPath(org.id, w.id)}?page_size=2${token ? `&page_token=${token}` : ""}`, t);
      expect(res.status, res.text).toBe(200);
      expect(res.cost.queries).toBe(1);
      seen.push(...res.body.items);
      token = res.body.next_page_token;
    } while (token);
    expect(seen.map((d) => d.id)).toEqual([...ids].reverse());
    for (const d of seen) {
      expect(d).toMatchObject({
        event_type: "member.role_changed",
        status: "succeeded",
        response_code: 200,
        error: null,
        delivered_at: expect.stringMatching(ISO),
        next_attempt_at: null,
      });
      expect(d.attempts_log).toHaveLength(d.attempts);
    }
    const retried = seen.find((d) => d.attempts === 2)!;
    expect(retried.attempts_log).toEqual([
      { attempt: 2, response_code: 200, duration_ms: expect.any(Number), error: null, created_at: expect.stringMatching(ISO) },
      { attempt: 1, response_code: 503, duration_ms: expect.any(Number), error: "HTTP 503", created_at: expect.stringMatching(ISO) },
    ]);
    expect(failed.length).toBeGreaterThan(0);
  });

  it("retry resends a finished delivery with its event id; 409 while in flight or while the endpoint is disabled", async () => {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const [done, inFlight] = await seedDeliveries(w.id, org.id, 2, { status: "queued" });
    await env.DB.prepare("update webhook_deliveries set status = 'failed', attempts = 9, last_error = 'HTTP 500' where id = ?").bind(done).run();
    const queue = recordingQueue();
    const t = { token: admin.accessToken, env: queue.env };
    const retryPath = (id: string) => `${deliveriesPath(org.id, w.id)}/${id}/retry`;

    const res = await post(retryPath(done!), undefined, t);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: done, status: "pending", attempts: 9 });
    expect(queue.take()).toEqual([done]);
    const row = (await deliveryRow(done!))!;
    expect(row.status).toBe("queued");
    expect((await auditOf(org.id, "webhook.delivery_retried")).map((e) => e.target_id)).toEqual([done]);

    const received = stubReceiver();
    await runWebhookQueue([done!], { env: queue.env });
    expect(received.received.map((r) => r.headers["webhook-id"])).toEqual([row.event_id]);
    expect(await deliveryRow(done!)).toMatchObject({ status: "succeeded", attempts: 10 });

    expectProblem(await post(retryPath(inFlight!), undefined, t), 409, "conflict");
    await patch(webhookPath(org.id, w.id), { enabled: false }, t);
    expectProblem(await post(retryPath(done!), undefined, t), 409, "conflict");
    expect(await auditOf(org.id, "webhook.delivery_retried")).toHaveLength(1);
    expectProblem(await post(retryPath("whd_0123456789abcdef0123456789abcdef"), undefined, t), 404, "not_found");
    expectProblem(await post(retryPath("nonsense"), undefined, t), 404, "not_found");
  });
});

describe("errors", () => {
  it("validation lists every bad field", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const res = await post(webhooksPath(org.id), { url: "ftp://x.example.com", events: ["member.added", "member.added", "no.such"], description: 5 }, t);
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).sort()).toEqual(["description", "events.2", "url"]);
    expect(errorPaths(await post(webhooksPath(org.id), { url: "https://a.example.com", events: ["member.added", "member.added"] }, t))).toEqual(["events"]);
    expect(errorPaths(await post(webhooksPath(org.id), { url: "https://a.example.com", events: [] }, t))).toEqual(["events"]);
    expect(errorPaths(await post(webhooksPath(org.id), {}, t)).sort()).toEqual(["events", "url"]);
    // Webhook administration events are audit-only, not subscribable.
    expect(errorPaths(await post(webhooksPath(org.id), { url: "https://a.example.com", events: ["webhook.created"] }, t))).toEqual(["events.0"]);
    const w = await createWebhook(admin, org.id);
    expect(errorPaths(await patch(webhookPath(org.id, w.id), { enabled: "yes", url: "http://a.example.com" }, t)).sort()).toEqual(["enabled", "url"]);
    for (const grace of [-1, 604_801, 1.5, "60"]) {
      expect(errorPaths(await post(`${webhookPath(org.id, w.id)}/rotate-secret`, { grace_seconds: grace }, t))).toEqual(["grace_seconds"]);
    }
    expect(await auditOf(org.id, "webhook.updated")).toEqual([]);
  });

  it("SSRF: every refused URL is 400 naming url, on create and on update", async () => {
    const { admin, org } = await adminAndOrg();
    const t = { token: admin.accessToken };
    const w = await createWebhook(admin, org.id);
    const refused = [
      "http://hooks.example.com/x", // not https
      "https://localhost/x",
      "https://LOCALHOST./x",
      "https://api.localhost/x",
      "https://printer.local/x",
      "https://metadata.google.internal/computeMetadata/v1/",
      "https://intranet/x", // single label
      "https://127.0.0.1/x",
      "https://2130706433/x", // 127.0.0.1 in decimal
      "https://0x7f.1/x", // 127.0.0.1 in hex shorthand
      "https://0.0.0.0/x",
      "https://10.1.2.3/x",
      "https://172.16.0.1/x",
      "https://172.31.255.255/x",
      "https://192.168.1.1/x",
      "https://100.64.0.1/x", // CGNAT
      "https://169.254.169.254/latest/meta-data/", // metadata
      "https://169.254.10.10/x", // link-local
      "https://224.0.0.1/x",
      "https://[::1]/x",
      "https://[::]/x",
      "https://[fc00::1]/x",
      "https://[fd12:3456::1]/x",
      "https://[fe80::1]/x",
      "https://[::ffff:127.0.0.1]/x", // IPv4-mapped
      "https://[::ffff:8.8.8.8]/x", // IPv4-mapped, even a public one
      "https://[64:ff9b::a00:1]/x", // NAT64 of 10.0.0.1
      "https://hooks.example.com:8443/x", // non-default port
      "https://hooks.example.com:80/x",
      "https://user:pass@hooks.example.com/x", // userinfo
      "https://@hooks.example.com/x",
      "https://hooks.example.com/a b",
      "not a url",
      `https://hooks.example.com/${"a".repeat(2050)}`,
    ];
    for (const url of refused) {
      const created = await post(webhooksPath(org.id), { url, events: ["member.added"] }, t);
      expectProblem(created, 400, "validation_failed");
      expect(errorPaths(created), url).toEqual(["url"]);
      const updated = await patch(webhookPath(org.id, w.id), { url }, t);
      expect(errorPaths(updated), url).toEqual(["url"]);
    }
    expect((await webhookRow(w.id))!.url).toBe(w.url);
    expect(await auditOf(org.id, "webhook.created")).toHaveLength(1);
    // Public literals and ordinary names pass; :443 is the default port.
    for (const url of ["https://8.8.8.8/x", "https://[2606:4700::1111]/x", "https://hooks.example.com:443/x", "https://a.b.example.co.uk/deep/path?x=1"]) {
      const ok = await patch(webhookPath(org.id, w.id), { url }, t);
      expect(ok.status, `${url}: ${ok.text}`).toBe(200);
    }
  });

  it("http://127.0.0.1:<port> only with ENVIRONMENT=development", async () => {
    const { admin, org } = await adminAndOrg();
    const url = "http://127.0.0.1:8788/hook";
    const dev = await post(webhooksPath(org.id), { url, events: ["member.added"] }, { token: admin.accessToken });
    expect(dev.status, dev.text).toBe(201);
    for (const environment of ["test", "production"]) {
      const res = await post(
        webhooksPath(org.id),
        { url, events: ["member.added"] },
        { token: admin.accessToken, env: { ENVIRONMENT: environment, EMAIL_PROVIDER: "resend", RESEND_API_KEY: "re_x" } },
      );
      expectProblem(res, 400, "validation_failed");
      expect(errorPaths(res)).toEqual(["url"]);
    }
    // Only the IPv4 loopback, only plain http: the exception is for a person's own machine.
    for (const other of ["http://localhost:8788/hook", "http://127.0.0.2:8788/hook", "http://[::1]:8788/hook"]) {
      expect(errorPaths(await post(webhooksPath(org.id), { url: other, events: ["member.added"] }, { token: admin.accessToken })), other).toEqual(["url"]);
    }
  });
});

describe("security", () => {
  async function setup() {
    const { admin, org } = await adminAndOrg();
    const w = await createWebhook(admin, org.id);
    const [d] = await seedDeliveries(w.id, org.id, 1, { status: "failed" });
    return { admin, org, w, d: d! };
  }

  const routes = (orgId: string, id: string, d: string): [string, string, unknown?][] => [
    ["GET", webhooksPath(orgId)],
    ["POST", webhooksPath(orgId), { url: "https://x.example.com", events: ["organization.updated"] }],
    ["GET", webhookPath(orgId, id)],
    ["PATCH", webhookPath(orgId, id), { description: "x" }],
    ["DELETE", webhookPath(orgId, id)],
    ["POST", `${webhookPath(orgId, id)}/rotate-secret`, {}],
    ["GET", deliveriesPath(orgId, id)],
    ["POST", `${deliveriesPath(orgId, id)}/${d}/retry`],
  ];

  it("subscribing is reading: an event needs what reading its data needs (role and token scopes)", async () => {
    const { admin, org, w } = await setup();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: `hookwriter${Date.now() % 100000}`, permissions: ["webhooks:read", "webhooks:write", "organization:read"] },
      { token: admin.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const writer = await createUser();
    await addMemberDirect(org.id, writer, role.body.name);
    const body = (events: string[]) => ({ url: "https://hooks.example.com/in", events });
    const refused = await post(webhooksPath(org.id), body(["organization.updated", "member.added", "project.created"]), { token: writer.accessToken });
    expectProblem(refused, 403, "forbidden");
    expect(refused.body.detail).toContain("members:read");
    expect(refused.body.detail).toContain("projects:admin");
    expectProblem(await patch(webhookPath(org.id, w.id), { events: ["invitation.created"] }, { token: writer.accessToken }), 403, "forbidden");
    expect((await post(webhooksPath(org.id), body(["organization.updated"]), { token: writer.accessToken })).status).toBe(201);
    // A token is narrowed by its scopes: organization:write alone does not read members.
    const pat = await createPat(admin, ["organization:write"]);
    expectProblem(await post(webhooksPath(org.id), body(["member.added"]), { token: pat.token }), 403, "forbidden");
    const both = await createPat(admin, ["organization:write", "organization_member:read"]);
    expect((await post(webhooksPath(org.id), body(["member.added"]), { token: both.token })).status).toBe(201);
  });

  it("every route: 401 without a credential", async () => {
    const { org, w, d } = await setup();
    for (const [method, path, body] of routes(org.id, w.id, d)) expectProblem(await api(method, path, { body }), 401, "unauthenticated");
  });

  it("every route: the built-in user role is 403 (it lacks webhooks:*)", async () => {
    const { org, w, d } = await setup();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    for (const [method, path, body] of routes(org.id, w.id, d)) {
      const res = await api(method, path, { body, token: member.accessToken });
      expectProblem(res, 403, "forbidden");
      expect(res.body.required_permission).toBe(method === "GET" ? "webhooks:read" : "webhooks:write");
    }
  });

  it("a custom role with webhooks:read may read but not write, and never sees the secret", async () => {
    const { admin, org, w, d } = await setup();
    const role = await post(
      `/v1/organizations/${org.id}/roles`,
      { name: `hookviewer${Date.now() % 100000}`, permissions: ["webhooks:read"] },
      { token: admin.accessToken },
    );
    expect(role.status, role.text).toBe(201);
    const viewer = await createUser();
    await addMemberDirect(org.id, viewer, role.body.name);
    for (const [method, path, body] of routes(org.id, w.id, d)) {
      const res = await api(method, path, { body, token: viewer.accessToken });
      if (method === "GET") {
        expect(res.status, res.text).toBe(200);
        expect(res.text).not.toContain(w.secret.slice(6));
      } else expectProblem(res, 403, "forbidden");
    }
  });

  it("tokens: organization:read reads, organization:write writes, others are 403 insufficient_scope", async () => {
    const { admin, org, w, d } = await setup();
    const members = await createPat(admin, ["organization_member:write", "organization_integration:write"]);
    const reader = await createPat(admin, ["organization:read"]);
    const writer = await createPat(admin, ["organization:write"]);
    for (const [method, path, body] of routes(org.id, w.id, d)) {
      const res = await api(method, path, { body, token: members.token });
      expectProblem(res, 403, "insufficient_scope");
      expect(res.body.required_scope).toBe(method === "GET" ? "organization:read" : "organization:write");
      if (method === "GET") expect((await api(method, path, { token: reader.token })).status).toBe(200);
      else expectProblem(await api(method, path, { body, token: reader.token }), 403, "insufficient_scope");
    }
    const made = await post(webhooksPath(org.id), { url: "https://pat.example.com", events: ["organization.updated"] }, { token: writer.token });
    expect(made.status, made.text).toBe(201);
    expect((await auditOf(org.id, "webhook.created")).at(-1)).toMatchObject({ credential: "pat", actor_id: admin.id });
  });

  it("another organization's endpoint and deliveries are 404 on every id route; nothing changes", async () => {
    const a = await setup();
    const b = await setup();
    const t = { token: a.admin.accessToken };
    for (const [method, path, body] of routes(a.org.id, b.w.id, b.d).filter(([, p]) => p.includes(b.w.id))) {
      expectProblem(await api(method, path, { body, ...t }), 404, "not_found");
    }
    // b's delivery under a's own endpoint is 404 too.
    const mine = await createWebhook(a.admin, a.org.id);
    expectProblem(await post(`${deliveriesPath(a.org.id, mine.id)}/${b.d}/retry`, undefined, t), 404, "not_found");
    expect((await get(deliveriesPath(a.org.id, mine.id), t)).body.items).toEqual([]);
    expect(await webhookRow(b.w.id)).toMatchObject({ url: b.w.url, description: null });
    expect(await deliveryRow(b.d)).toMatchObject({ status: "failed" });
    expect(await auditOf(a.org.id, "webhook.deleted")).toEqual([]);
  });

  it("an outsider gets 404 on every route; the refusal reads nothing of the organization", async () => {
    const { org, w, d } = await setup();
    const outsider = await createUser();
    await createOrg(outsider);
    for (const [method, path, body] of routes(org.id, w.id, d)) {
      const res = await api(method, path, { body, token: outsider.accessToken });
      expectProblem(res, 404, "not_found");
    }
  });

  it("malformed ids are 404", async () => {
    const { admin, org } = await setup();
    const t = { token: admin.accessToken };
    expectProblem(await get(webhookPath(org.id, "whk_nope"), t), 404, "not_found");
    expectProblem(await get(deliveriesPath(org.id, "x'; drop table webhooks; --"), t), 404, "not_found");
    expectProblem(await post(`${webhookPath(org.id, "whk_nope")}/rotate-secret`, {}, t), 404, "not_found");
    expectProblem(await post(`${deliveriesPath(org.id, "whk_nope")}/whd_x/retry`, undefined, t), 404, "not_found");
  });
});
