import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { api, get, put } from "../helpers/client";
import { addMemberDirect, createOrg, createPat, createUser, unique } from "../helpers/factories";
import { expectProblem, errorPaths } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const url = (orgId: string) => `/v1/organizations/${orgId}/settings`;

async function adminWithOrg() {
  const admin = await createUser();
  const org = await createOrg(admin);
  return { admin, org };
}

const storedSecrets = async (orgId: string) =>
  (
    await env.DB.prepare("select name, ciphertext from organization_secrets where organization_id = ? order by name")
      .bind(orgId)
      .all<{ name: string; ciphertext: string }>()
  ).results;

/** `n` secrets named prefix0…prefixN-1. */
const secretsOf = (n: number, prefix = "s", value = "v") => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, `${value}${i}`]));

describe("happy", () => {
  it("a new organization has empty settings", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await get(url(org.id), { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ settings: {}, secrets: {}, updated_at: null });
  });

  it("PUT stores settings and secrets; secrets read back only as {set, updated_at}", async () => {
    const { admin, org } = await adminWithOrg();
    const plaintext = `sk_live_${unique()}_do-not-leak`;
    const settings = { theme: "dark", limits: { seats: 5, regions: ["eu", "us"] }, beta: true, note: null };
    const res = await put(url(org.id), { settings, secrets: { stripe_key: plaintext, "smtp.password": "hunter2-hunter2" } }, { token: admin.accessToken });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({
      settings,
      secrets: {
        stripe_key: { set: true, updated_at: expect.stringMatching(ISO) },
        "smtp.password": { set: true, updated_at: expect.stringMatching(ISO) },
      },
      updated_at: expect.stringMatching(ISO),
    });
    expect(res.text).not.toContain(plaintext);
    expect(res.text).not.toContain("hunter2");

    const got = await get(url(org.id), { token: admin.accessToken });
    expect(got.status).toBe(200);
    expect(got.body).toEqual(res.body);
    expect(got.text).not.toContain(plaintext);
  });

  it("secrets are AES-GCM ciphertext at rest, never the plaintext", async () => {
    const { admin, org } = await adminWithOrg();
    const plaintext = `very-secret-${unique()}`;
    expect((await put(url(org.id), { secrets: { a: plaintext, b: plaintext } }, { token: admin.accessToken })).status).toBe(200);
    const rows = await storedSecrets(org.id);
    expect(rows.map((r) => r.name)).toEqual(["a", "b"]);
    for (const r of rows) {
      expect(r.ciphertext.startsWith("v1.")).toBe(true);
      expect(r.ciphertext).not.toContain(plaintext);
      expect(r.ciphertext).not.toContain(btoa(plaintext).slice(0, 12));
    }
    // A fresh IV per value: equal plaintexts never give equal ciphertexts.
    expect(rows[0]!.ciphertext).not.toBe(rows[1]!.ciphertext);
  });

  it("null deletes a secret; secrets not named stay; omitting settings keeps them", async () => {
    const { admin, org } = await adminWithOrg();
    await put(url(org.id), { settings: { keep: 1 }, secrets: { one: "1111", two: "2222" } }, { token: admin.accessToken });
    const added = await put(url(org.id), { secrets: { three: "3333" } }, { token: admin.accessToken });
    expect(added.status, added.text).toBe(200);
    expect(added.body.settings).toEqual({ keep: 1 });
    expect(Object.keys(added.body.secrets)).toEqual(["one", "three", "two"]);

    const removed = await put(url(org.id), { secrets: { two: null } }, { token: admin.accessToken });
    expect(removed.status, removed.text).toBe(200);
    expect(Object.keys(removed.body.secrets)).toEqual(["one", "three"]);
    expect((await storedSecrets(org.id)).map((r) => r.name)).toEqual(["one", "three"]);
    // Deleting a secret that does not exist is not an error.
    expect((await put(url(org.id), { secrets: { never_set: null } }, { token: admin.accessToken })).status).toBe(200);

    const replaced = await put(url(org.id), { settings: { other: "x" } }, { token: admin.accessToken });
    expect(replaced.body.settings).toEqual({ other: "x" });
    expect(Object.keys(replaced.body.secrets)).toEqual(["one", "three"]);
    const emptied = await put(url(org.id), { settings: {} }, { token: admin.accessToken });
    expect(emptied.body.settings).toEqual({});
    expect(Object.keys(emptied.body.secrets)).toEqual(["one", "three"]);
  });

  it("overwriting a secret re-encrypts it and moves its updated_at", async () => {
    const { admin, org } = await adminWithOrg();
    const first = await put(url(org.id), { secrets: { token: "first-value" } }, { token: admin.accessToken });
    const [before] = await storedSecrets(org.id);
    await new Promise((r) => setTimeout(r, 5));
    const second = await put(url(org.id), { secrets: { token: "second-value" } }, { token: admin.accessToken });
    expect(second.status).toBe(200);
    const [after] = await storedSecrets(org.id);
    expect(after!.ciphertext).not.toBe(before!.ciphertext);
    expect(Date.parse(second.body.secrets.token.updated_at)).toBeGreaterThan(Date.parse(first.body.secrets.token.updated_at));
    expect(Date.parse(second.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(second.body.secrets.token.updated_at));
  });

  it("an organization may hold exactly 50 secrets, and replace or swap them at the limit", async () => {
    const { admin, org } = await adminWithOrg();
    expect((await put(url(org.id), { secrets: secretsOf(50) }, { token: admin.accessToken })).status).toBe(200);
    expect((await put(url(org.id), { secrets: { s0: "new" } }, { token: admin.accessToken })).status).toBe(200);
    const swapped = await put(url(org.id), { secrets: { s1: null, fresh: "x" } }, { token: admin.accessToken });
    expect(swapped.status, swapped.text).toBe(200);
    expect(Object.keys(swapped.body.secrets)).toHaveLength(50);
    expect(swapped.body.secrets.fresh).toBeDefined();
    expect(swapped.body.secrets.s1).toBeUndefined();
  });

  it("a secret of exactly 8192 characters and settings of about 64 KiB are accepted", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { settings: { blob: "x".repeat(64 * 1024 - 20) }, secrets: { big: "y".repeat(8192) } }, { token: admin.accessToken });
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    expect(res.text).not.toContain("y".repeat(100));
  });

  it("GET and PUT each cost one KV read and at most two D1 round trips", async () => {
    const { admin, org } = await adminWithOrg();
    const written = await put(url(org.id), { settings: { a: 1 }, secrets: { ...secretsOf(5), gone: null } }, { token: admin.accessToken });
    expect(written.cost.kvReads).toBe(1);
    expect(written.cost.queries).toBeLessThanOrEqual(2);
    const res = await get(url(org.id), { token: admin.accessToken });
    expect(res.cost.kvReads).toBe(1);
    expect(res.cost.queries).toBeLessThanOrEqual(2);
  });
});

describe("errors", () => {
  it("settings larger than 64 KiB → 400", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { settings: { blob: "x".repeat(64 * 1024) } }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["settings"]);
    expect((await get(url(org.id), { token: admin.accessToken })).body.settings).toEqual({});
  });

  it.each([
    ["a name with a space", { "bad name": "v" }],
    ["a name with a slash", { "a/b": "v" }],
    ["an empty name", { "": "v" }],
    ["a 65-character name", { ["n".repeat(65)]: "v" }],
  ])("a secret with %s → 400", async (_label, secrets) => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { secrets }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res).every((p) => p.startsWith("secrets"))).toBe(true);
    expect(await storedSecrets(org.id)).toEqual([]);
  });

  it.each([
    ["8193 characters", "v".repeat(8193)],
    ["an empty string", ""],
    ["a number", 42],
    ["an object", { nested: "x" }],
  ])("a secret value of %s → 400 naming it", async (_label, value) => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { secrets: { api_key: value } }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["secrets.api_key"]);
  });

  it("more than 50 secrets in one request → 400", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { secrets: secretsOf(51) }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toContain("secrets");
    expect(await storedSecrets(org.id)).toEqual([]);
  });

  it("more than 50 secrets in total → 400, and nothing of that request is stored", async () => {
    const { admin, org } = await adminWithOrg();
    expect((await put(url(org.id), { settings: { v: 1 }, secrets: secretsOf(30, "a") }, { token: admin.accessToken })).status).toBe(200);
    const res = await put(url(org.id), { settings: { v: 2 }, secrets: secretsOf(21, "b") }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toEqual(["secrets"]);
    expect(await storedSecrets(org.id)).toHaveLength(30);
    expect((await get(url(org.id), { token: admin.accessToken })).body.settings).toEqual({ v: 1 });
  });

  it("two concurrent PUTs cannot together exceed 50 secrets", async () => {
    const { admin, org } = await adminWithOrg();
    const results = await Promise.all([
      put(url(org.id), { secrets: secretsOf(26, "x", "leak-x") }, { token: admin.accessToken }),
      put(url(org.id), { secrets: secretsOf(26, "y", "leak-y") }, { token: admin.accessToken }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400]);
    const refused = results.find((r) => r.status === 400)!;
    expectProblem(refused, 400, "validation_failed");
    expect(errorPaths(refused)).toEqual(["secrets"]);
    expect(refused.text).not.toContain("leak-");
    const stored = await storedSecrets(org.id);
    expect(stored).toHaveLength(26);
    // All of one request, none of the other.
    expect(new Set(stored.map((r) => r.name[0]))).toHaveProperty("size", 1);
  });

  it.each([
    ["settings as an array", { settings: [1, 2] }, "settings"],
    ["settings as a string", { settings: "x" }, "settings"],
    ["secrets as an array", { secrets: ["x"] }, "secrets"],
  ])("%s → 400", async (_label, body, path) => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), body, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(errorPaths(res)).toContain(path);
  });

  it("several bad fields are listed together; malformed JSON is 400", async () => {
    const { admin, org } = await adminWithOrg();
    const res = await put(url(org.id), { settings: "x", secrets: { ok: "v".repeat(8193) } }, { token: admin.accessToken });
    expectProblem(res, 400, "validation_failed");
    expect(new Set(errorPaths(res))).toEqual(new Set(["settings", "secrets.ok"]));
    const bad = await api("PUT", url(org.id), { raw: '{"settings": ', headers: { "Content-Type": "application/json" }, token: admin.accessToken });
    expectProblem(bad, 400, "malformed_json");
  });

  it("unknown or malformed organization ids → 404", async () => {
    const user = await createUser();
    for (const id of ["org_nope", newId("organization")]) {
      expectProblem(await get(url(id), { token: user.accessToken }), 404, "not_found");
      expectProblem(await put(url(id), { settings: {} }, { token: user.accessToken }), 404, "not_found");
    }
  });
});

describe("security", () => {
  it("a user-role member may read (names only) but not write: 403 forbidden", async () => {
    const { admin, org } = await adminWithOrg();
    const member = await createUser();
    await addMemberDirect(org.id, member, "user");
    await put(url(org.id), { settings: { a: 1 }, secrets: { key: "member-must-not-see" } }, { token: admin.accessToken });
    const got = await get(url(org.id), { token: member.accessToken });
    expect(got.status).toBe(200);
    expect(got.body.settings).toEqual({ a: 1 });
    expect(got.body.secrets.key.set).toBe(true);
    expect(got.text).not.toContain("member-must-not-see");
    expectProblem(await put(url(org.id), { settings: { a: 2 } }, { token: member.accessToken }), 403, "forbidden");
    expectProblem(await put(url(org.id), { secrets: { key: null } }, { token: member.accessToken }), 403, "forbidden");
    expect(await storedSecrets(org.id)).toHaveLength(1);
  });

  it("a non-member gets 404 on GET and PUT, even with an invalid body", async () => {
    const { admin, org } = await adminWithOrg();
    await put(url(org.id), { settings: { private: true } }, { token: admin.accessToken });
    const stranger = await createUser();
    await createOrg(stranger);
    expectProblem(await get(url(org.id), { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await put(url(org.id), { settings: { owned: true } }, { token: stranger.accessToken }), 404, "not_found");
    expectProblem(await put(url(org.id), { settings: "bad" }, { token: stranger.accessToken }), 404, "not_found");
    expect((await get(url(org.id), { token: admin.accessToken })).body.settings).toEqual({ private: true });
  });

  it("settings of one organization never show in another's", async () => {
    const admin = await createUser();
    const a = await createOrg(admin);
    const b = await createOrg(admin);
    await put(url(a.id), { settings: { only: "a" }, secrets: { only_a: "aaaa" } }, { token: admin.accessToken });
    expect((await get(url(b.id), { token: admin.accessToken })).body).toEqual({ settings: {}, secrets: {}, updated_at: null });
  });

  it("PAT scopes: organization:read may GET, PUT needs organization:write", async () => {
    const { admin, org } = await adminWithOrg();
    const read = await createPat(admin, ["organization:read"]);
    const memberRead = await createPat(admin, ["organization_member:read"]);
    const write = await createPat(admin, ["organization:write"]);
    expect((await get(url(org.id), { token: read.token })).status).toBe(200);
    expectProblem(await get(url(org.id), { token: memberRead.token }), 403, "insufficient_scope");
    expectProblem(await put(url(org.id), { settings: { x: 1 } }, { token: read.token }), 403, "insufficient_scope");
    const ok = await put(url(org.id), { settings: { x: 1 } }, { token: write.token });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.settings).toEqual({ x: 1 });
  });

  it("without a credential → 401", async () => {
    const { org } = await adminWithOrg();
    expectProblem(await get(url(org.id)), 401, "unauthenticated");
    expectProblem(await put(url(org.id), { settings: {} }), 401, "unauthenticated");
  });
});
