/**
 * The links the API emails, followed in a real browser against `wrangler dev` (run by
 * scripts/test-browser.mjs): the page does what a newcomer would, and the API agrees afterwards.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { BASE, PASSWORD, api, emailedLink, openBrowser, signup, ssoCallbackUrl, ssoOrganization, startResolver, uniqueEmail } from "./helpers.mjs";

let browser;
let resolver;
before(async () => {
  [browser, resolver] = await Promise.all([openBrowser(), startResolver()]);
});
after(async () => {
  await Promise.all([browser?.browser.close(), resolver?.close()]);
  assert.deepEqual(browser?.problems ?? [], [], "the pages ran without CSP violations or script errors");
});

async function inviteByEmail(email) {
  const admin = await signup("admin");
  const org = await api("POST", "/v1/organizations", { token: admin.token, body: { name: `Browser Org ${Date.now()}` } });
  assert.equal(org.status, 201, JSON.stringify(org.body));
  const inv = await api("POST", `/v1/organizations/${org.body.id}/invitations`, { token: admin.token, body: { email, role: "admin" } });
  assert.equal(inv.status, 201, JSON.stringify(inv.body));
  return { admin, org: org.body, link: await emailedLink(email, /invited you to join/) };
}

async function memberEmails(admin, orgId) {
  const res = await api("GET", `/v1/organizations/${orgId}/members`, { token: admin.token });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.items.map((m) => m.user.email);
}

describe("invitation link", () => {
  it("creates the account in the page and joins", async () => {
    const email = uniqueEmail("newcomer");
    const { admin, org, link } = await inviteByEmail(email);
    assert.ok(link.startsWith(`${BASE}/invitations/accept?token=`), link);

    const page = await browser.page();
    await page.goto(link);
    await page.locator("#invitation").waitFor();
    assert.equal(await page.locator("#org").textContent(), org.name);
    assert.equal(await page.locator("#role").textContent(), "admin");
    assert.equal(await page.locator("#email").textContent(), email);

    await page.fill("#create-name", "Nora Newcomer");
    await page.fill("#create-password", PASSWORD);
    await page.click("#create button[type=submit]");
    await page.locator("#done").waitFor();
    assert.match(await page.locator("#joined").textContent(), new RegExp(`You joined ${org.name} as admin`));
    assert.ok((await memberEmails(admin, org.id)).includes(email));

    // The link is single use: opening it again explains, rather than offering the forms.
    await page.goto(link);
    await page.locator("#error").waitFor();
    assert.match(await page.locator("#error").textContent(), /already used, canceled, or has expired/);
    assert.ok(await page.locator("#invitation").isHidden());
    await page.close();
  });

  it("signs in and accepts; the wrong account is told so and joins nothing", async () => {
    const invitee = await signup("invitee");
    const stranger = await signup("stranger");
    const { admin, org, link } = await inviteByEmail(invitee.email);

    const page = await browser.page();
    await page.goto(link);
    await page.locator("#invitation").waitFor();
    assert.equal(await page.inputValue("#signin-email"), invitee.email);

    await page.fill("#signin-email", stranger.email);
    await page.fill("#signin-password", PASSWORD);
    await page.click("#signin button[type=submit]");
    await page.locator("#signin-error:not(:empty)").waitFor();
    assert.match(
      await page.locator("#signin-error").textContent(),
      new RegExp(`signed in as ${stranger.email}, but this invitation was sent to ${invitee.email}`),
    );
    assert.ok(!(await memberEmails(admin, org.id)).includes(stranger.email));

    await page.fill("#signin-password", "not the password");
    await page.fill("#signin-email", invitee.email);
    await page.click("#signin button[type=submit]");
    await page.locator("#signin-error:not(:empty)").waitFor();
    assert.equal(await page.locator("#signin-error").textContent(), "Wrong email or password.");

    await page.fill("#signin-password", PASSWORD);
    await page.click("#signin button[type=submit]");
    await page.locator("#done").waitFor();
    assert.ok((await memberEmails(admin, org.id)).includes(invitee.email));
    await page.close();
  });

  it("a link without its token says so", async () => {
    const page = await browser.page();
    await page.goto(`${BASE}/invitations/accept`);
    await page.locator("#error").waitFor();
    assert.match(await page.locator("#error").textContent(), /incomplete/);
    await page.close();
  });
});

describe("verification link", () => {
  it("verifies the address, once", async () => {
    const user = await signup("verify");
    const link = await emailedLink(user.email, /Verify your email/);
    assert.ok(link.startsWith(`${BASE}/verify-email?token=`), link);

    const page = await browser.page();
    await page.goto(link);
    await page.locator("#verified").waitFor();
    const me = await api("GET", "/v1/me", { token: user.token });
    assert.equal(me.body.email_verified, true);

    await page.goto(link);
    await page.locator("#error").waitFor();
    assert.match(await page.locator("#error").textContent(), /invalid, already used, or expired/);
    await page.close();
  });
});

describe("SSO callback", () => {
  it("exchanges the code: signed in as the user, the access token on request, then signed out", async () => {
    const { domain, idpId } = await ssoOrganization(resolver);
    const email = `sam@${domain}`;
    const callback = ssoCallbackUrl(idpId, email);
    assert.ok(callback.startsWith(`${BASE}/sso/callback?code=`), callback);

    const page = await browser.page();
    await page.goto(callback);
    await page.locator("#signed-in").waitFor();
    assert.match(await page.locator("#user").textContent(), new RegExp(`<${email}>`));
    // No token in the page until asked for.
    assert.ok(!(await page.content()).includes("eyJ"));
    await page.click("#reveal");
    const token = await page.inputValue("#access-token");
    assert.equal(token.split(".").length, 3);
    assert.equal((await api("GET", "/v1/me", { token })).body.email, email);

    await page.click("#signout");
    await page.locator("#signed-out").waitFor();
    assert.equal((await api("GET", "/v1/me", { token })).status, 401);

    // The code was single use.
    await page.goto(callback);
    await page.locator("#error").waitFor();
    assert.match(await page.locator("#error").textContent(), /invalid, already used, or expired/);
    await page.close();
  });

  it("a bad or spent code is an error, with nothing signed in", async () => {
    const page = await browser.page();
    await page.goto(`${BASE}/sso/callback?code=ssoc_${"x".repeat(43)}`);
    await page.locator("#error").waitFor();
    assert.match(await page.locator("#error").textContent(), /invalid, already used, or expired/);
    assert.ok(await page.locator("#signed-in").isHidden());
    await page.close();
  });
});
