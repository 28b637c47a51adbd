import { describe, expect, it } from "vitest";
import { get, type ApiResponse } from "../helpers/client";
import { createUser, uniqueEmail } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const emails = (query: Record<string, string> = {}, opts: Parameters<typeof get>[1] = {}) => get(`/v1/dev/emails?${new URLSearchParams(query)}`, opts);
const idsOf = (res: ApiResponse) => (res.body.items as { id: string }[]).map((i) => i.id);

/** The queue consumer batches for up to a second: poll the mailbox until `count` emails to `to` are in. */
async function waitForEmails(to: string, count = 1, timeoutMs = 15_000): Promise<ApiResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await emails({ to });
    expect(res.status, res.text).toBe(200);
    if (res.body.items.length >= count) return res;
    if (Date.now() > deadline) throw new Error(`only ${res.body.items.length} of ${count} emails to ${to} arrived`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("happy", () => {
  it("lists the verification email a signup sends, with every field", async () => {
    const user = await createUser();
    const res = await waitForEmails(user.email);
    expect(res.body.next_page_token).toBe("");
    expect(res.body.items).toHaveLength(1);
    const [mail] = res.body.items;
    expect(mail).toEqual({
      id: expect.stringMatching(/^eml_/),
      to: user.email,
      subject: expect.any(String),
      text: expect.any(String),
      html: expect.any(String),
      created_at: expect.stringMatching(ISO),
    });
    expect(mail.subject.length).toBeGreaterThan(0);
    expect(mail.text).toMatch(/http:\/\/app\.test\/verify-email\?token=[A-Za-z0-9_-]+/);
    expect(mail.html).toMatch(/http:\/\/app\.test\/verify-email\?token=/);
  });

  it("to= matches the address case-insensitively and only that address", async () => {
    const a = await createUser({ email: uniqueEmail("Mixed.Case") });
    const b = await createUser();
    await waitForEmails(a.email);
    await waitForEmails(b.email);
    expect(a.email).toBe(a.email.toLowerCase());
    for (const to of [a.email.toUpperCase(), `  ${a.email}  `, a.email.replace(/^./, (ch) => ch.toUpperCase())]) {
      const res = await emails({ to });
      expect(res.status, res.text).toBe(200);
      expect(res.body.items.map((i: any) => i.to)).toEqual([a.email]);
    }
    expect((await emails({ to: uniqueEmail("nobody") })).body).toEqual({ items: [], next_page_token: "" });
    // to= is an exact address, not a prefix.
    expect((await emails({ to: a.email.slice(0, -1) })).body.items).toEqual([]);
  });

  it("is newest first and pages of 1 walk in strictly decreasing id order", async () => {
    const users = [await createUser(), await createUser(), await createUser()];
    for (const u of users) await waitForEmails(u.email);

    const first = await emails({ page_size: "1" });
    expect(first.status, first.text).toBe(200);
    const pages = [first];
    for (let i = 1; i < 3; i++) {
      const token = pages[i - 1]!.body.next_page_token;
      expect(token, `page ${i} has a next page`).not.toBe("");
      const res = await emails({ page_size: "1", page_token: token });
      expect(res.status, res.text).toBe(200);
      pages.push(res);
    }
    expect(pages.every((p) => p.body.items.length === 1)).toBe(true);
    const ids = pages.flatMap(idsOf);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! < ids[i - 1]!, `${ids[i]} < ${ids[i - 1]}`).toBe(true);
    const times = pages.map((p) => Date.parse(p.body.items[0].created_at));
    for (let i = 1; i < times.length; i++) expect(times[i]!).toBeLessThanOrEqual(times[i - 1]!);

    // The cursor is a position: the same token with a bigger page gives the rows after it, in order.
    const wider = await emails({ page_size: "2", page_token: first.body.next_page_token });
    expect(idsOf(wider)).toEqual(ids.slice(1, 3));

    // The newest emails include the three just sent, newest first.
    const latest = await emails({ page_size: "1000" });
    const all = idsOf(latest);
    expect([...all].sort().reverse()).toEqual(all);
    const mine = latest.body.items.filter((i: any) => users.some((u) => u.email === i.to));
    expect(mine).toHaveLength(3);
  });

  it("pagination works within a to= filter", async () => {
    const user = await createUser();
    await waitForEmails(user.email);
    const res = await emails({ to: user.email, page_size: "1" });
    expect(res.body.items).toHaveLength(1);
    expect(res.body.next_page_token).toBe("");
  });
});

describe("errors", () => {
  it("a tampered or made-up page_token → 400 invalid_page_token", async () => {
    const a = await createUser();
    const b = await createUser();
    await waitForEmails(a.email);
    await waitForEmails(b.email);
    const token = (await emails({ page_size: "1" })).body.next_page_token as string;
    expect(token).not.toBe("");
    const [body, sig] = token.split(".") as [string, string];
    const flip = (s: string) => s.slice(0, -1) + (s.endsWith("A") ? "B" : "A");
    for (const bad of [`${body}.${flip(sig)}`, `${flip(body)}.${sig}`, body, "abc", "not.a.token"]) {
      expectProblem(await emails({ page_size: "1", page_token: bad }), 400, "invalid_page_token");
    }
  });

  it("a page_token replayed with another to= → 400 invalid_page_token", async () => {
    const a = await createUser();
    const b = await createUser();
    await waitForEmails(a.email);
    await waitForEmails(b.email);
    const token = (await emails({ page_size: "1" })).body.next_page_token as string;
    expectProblem(await emails({ page_size: "1", page_token: token, to: a.email }), 400, "invalid_page_token");
  });

  it.each([["0"], ["-1"], ["abc"]])("page_size=%s → 400", async (size) => {
    const res = await emails({ page_size: size });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: any) => e.path)).toEqual(["page_size"]);
  });

  it("a to= longer than an email address can be → 400", async () => {
    const res = await emails({ to: `${"a".repeat(250)}@example.com` });
    expectProblem(res, 400, "validation_failed");
    expect(res.body.errors.map((e: any) => e.path)).toEqual(["to"]);
  });
});

// Production refuses the outbox provider, so a production config names a real one.
const PRODUCTION = { ENVIRONMENT: "production", EMAIL_PROVIDER: "resend", RESEND_API_KEY: "re_test" };

describe("security", () => {
  it("does not exist outside development: 404 with ENVIRONMENT=production (with a real provider) or test", async () => {
    const user = await createUser();
    await waitForEmails(user.email);
    for (const query of [{}, { to: user.email }, { page_size: "1" }] as Record<string, string>[]) {
      const res = await emails(query, { env: PRODUCTION });
      expectProblem(res, 404, "not_found");
      expect(res.text).not.toContain(user.email);
      expect(res.text).not.toContain("verify-email");
    }
    // Nor with a credential, nor in any other non-development environment.
    expectProblem(await emails({}, { env: PRODUCTION, token: user.accessToken }), 404, "not_found");
    expectProblem(await emails({}, { env: { ENVIRONMENT: "test" } }), 404, "not_found");
  });

  it("needs no credential in development", async () => {
    const res = await emails({ page_size: "1" });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toHaveProperty("items");
    expect(res.body).toHaveProperty("next_page_token");
  });
});
