/**
 * XML signature wrapping (XSW) and friends: a valid signature from the configured IdP is kept,
 * and the document around it is rearranged so that a careless SP verifies one element and reads
 * another. Variants after Somorovsky et al., "On Breaking SAML: Be Whoever You Want to Be"
 * (USENIX Security 2012), plus the comment-truncation attack (Duo, 2018).
 */
import { DOMParser } from "@xmldom/xmldom/lib/dom-parser";
import { SignedXml } from "xml-crypto";
import { describe, expect, it } from "vitest";
import { addMemberDirect, createVerifiedUser } from "../helpers/factories";
import { ALGS, ASSERTION_XPATH, assertionXml, DS, IDP, issue, postAcs, randomId, responseXml, setupSp, startLogin, type Sp } from "../helpers/saml-idp";

const ASSERTION = /<saml:Assertion[\s\S]*?<\/saml:Assertion>/;
const assertionOf = (xml: string) => ASSERTION.exec(xml)![0];
const idOf = (el: string) => /\bID="([^"]+)"/.exec(el)![1]!;

function refused(res: Awaited<ReturnType<typeof postAcs>>, reason: RegExp) {
  expect(res.status, res.text).toBe(401);
  expect(res.body.code).toBe("sso_failed");
  expect(res.body.detail).toMatch(reason);
  // The detail names the check; it never quotes the attacker's XML.
  expect(res.body.detail).not.toMatch(/<|admin@/);
}

/** The victim: an admin of the organization, whom the attacker wants to become. */
async function scene() {
  const sp = await setupSp({ jit: true });
  const victim = await createVerifiedUser({ email: `admin@${sp.domain}` });
  await addMemberDirect(sp.orgId, victim, "admin");
  const { requestId } = await startLogin(sp);
  // What the attacker legitimately holds: a response signed by the IdP for their own account.
  const evilTwin = (id = randomId()) =>
    assertionXml({ id, issuer: sp.idpEntityId, audience: sp.spEntityId, recipient: sp.acsUrl, inResponseTo: requestId, nameId: victim.email });
  return { sp, victim, requestId, attacker: `attacker@${sp.domain}`, evilTwin };
}

const honest = (sp: Sp, requestId: string, email: string, sign: "assertion" | "response" = "assertion") => issue(sp, requestId, { email, sign });

/** The signature still verifies for a signature-only check (xml-crypto's own): the attack is real. */
function stillValidFor(xml: string, xpath: string) {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const sigs: unknown[] = [];
  const walk = (n: any) => {
    if (n.nodeType === 1 && n.namespaceURI === DS && n.localName === "Signature") sigs.push(n);
    for (let i = 0; i < (n.childNodes?.length ?? 0); i++) walk(n.childNodes[i]);
  };
  walk(doc);
  const v = new SignedXml({ publicCert: IDP.cert, getCertFromKeyInfo: () => null });
  v.loadSignature(sigs[0] as never);
  expect(v.checkSignature(xml), `the signature over ${xpath} should still verify`).toBe(true);
}

describe("security", () => {
  it("XSW: an unsigned evil Assertion before the signed one", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    refused(await postAcs(sp, xml.replace(signed, evilTwin() + signed)), /more than one Assertion/);
  });

  it("XSW: an unsigned evil Assertion after the signed one", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    refused(await postAcs(sp, xml.replace(signed, signed + evilTwin())), /more than one Assertion/);
  });

  it("XSW: the signed Assertion moved into Extensions, an evil one (same ID) in its place", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    const moved = xml.replace(signed, evilTwin(idOf(signed))).replace("<samlp:Status>", `<samlp:Extensions>${signed}</samlp:Extensions><samlp:Status>`);
    refused(await postAcs(sp, moved), /share an ID|more than one Assertion/);
  });

  it("XSW: the signed Assertion moved into Extensions, an evil one (other ID) in its place", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    const moved = xml.replace(signed, evilTwin()).replace("<samlp:Status>", `<samlp:Extensions>${signed}</samlp:Extensions><samlp:Status>`);
    refused(await postAcs(sp, moved), /more than one Assertion/);
  });

  it("XSW: the signed Assertion as the only one, but not a direct child of the Response", async () => {
    const { sp, requestId, attacker } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    refused(
      await postAcs(sp, xml.replace(signed, "").replace("<samlp:Status>", `<samlp:Extensions>${signed}</samlp:Extensions><samlp:Status>`)),
      /not a direct child/,
    );
  });

  it("XSW: the signed Assertion hidden in a ds:Object of the evil Assertion's signature", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(signed)![0];
    const wrapper = signature.replace("</ds:Signature>", `<ds:Object>${signed}</ds:Object></ds:Signature>`);
    const evil = evilTwin(idOf(signed)).replace("</saml:Issuer>", `</saml:Issuer>${wrapper}`);
    refused(await postAcs(sp, xml.replace(signed, evil)), /share an ID|more than one Assertion|Signature sits outside|unexpected Object/);
  });

  it("XSW: a signed Response, and an evil Assertion added after signing", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker, "response");
    const signed = assertionOf(xml);
    refused(await postAcs(sp, xml.replace(signed, evilTwin() + signed)), /more than one Assertion/);
    refused(await postAcs(sp, xml.replace(signed, signed + evilTwin())), /more than one Assertion/);
  });

  it("XSW: a signed Response whose Assertion is swapped for an evil one (the original kept in Extensions)", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const xml = honest(sp, requestId, attacker, "response");
    const signed = assertionOf(xml);
    refused(
      await postAcs(sp, xml.replace(signed, evilTwin()).replace("<samlp:Status>", `<samlp:Extensions>${signed}</samlp:Extensions><samlp:Status>`)),
      /more than one Assertion/,
    );
    // Swapped outright: the Response's digest no longer matches.
    refused(await postAcs(sp, xml.replace(signed, evilTwin(idOf(signed)))), /digest does not match/);
  });

  it("XSW: the whole signed Response wrapped inside an evil one", async () => {
    const { sp, requestId, attacker, evilTwin } = await scene();
    const inner = honest(sp, requestId, attacker, "response");
    const outer = responseXml(
      { issuer: sp.idpEntityId, destination: sp.acsUrl, inResponseTo: requestId, afterIssuer: `<samlp:Extensions>${inner}</samlp:Extensions>` },
      evilTwin(),
    );
    refused(await postAcs(sp, outer), /more than one Assertion|Signature sits outside/);
  });

  it("duplicate IDs anywhere in the document", async () => {
    const { sp, requestId, attacker } = await scene();
    const xml = honest(sp, requestId, attacker);
    const id = idOf(assertionOf(xml));
    refused(
      await postAcs(sp, xml.replace("<samlp:Status>", `<samlp:Extensions><x:Thing xmlns:x="urn:x" ID="${id}"/></samlp:Extensions><samlp:Status>`)),
      /share an ID/,
    );
    refused(
      await postAcs(
        sp,
        xml.replace("<samlp:Status>", `<samlp:Extensions><x:Thing xmlns:x="urn:x" wsu:Id="${id}" xmlns:wsu="urn:wsu"/></samlp:Extensions><samlp:Status>`),
      ),
      /share an ID/,
    );
  });

  it("a Reference URI pointing to another element than the one holding the signature", async () => {
    const { sp, requestId, attacker } = await scene();
    const unsigned = issue(sp, requestId, { email: attacker, sign: "none" });
    // A signature placed inside the Assertion that covers the Response (so, also the Assertion).
    const sig = new SignedXml({ privateKey: IDP.key, signatureAlgorithm: ALGS.rsaSha256, canonicalizationAlgorithm: ALGS.excC14n });
    sig.addReference({ xpath: "/*", digestAlgorithm: ALGS.sha256, transforms: [ALGS.enveloped, ALGS.excC14n] });
    sig.computeSignature(unsigned, { prefix: "ds", location: { reference: `${ASSERTION_XPATH}/*[local-name(.)='Issuer']`, action: "after" } });
    refused(await postAcs(sp, sig.getSignedXml()), /Reference does not point to the element that holds it/);
  });

  it("an empty Reference URI (the whole document) is not accepted", async () => {
    const { sp, requestId, attacker } = await scene();
    const unsigned = issue(sp, requestId, { email: attacker, sign: "none" });
    const sig = new SignedXml({ privateKey: IDP.key, signatureAlgorithm: ALGS.rsaSha256, canonicalizationAlgorithm: ALGS.excC14n });
    sig.addReference({ xpath: "/*", digestAlgorithm: ALGS.sha256, transforms: [ALGS.enveloped, ALGS.excC14n], isEmptyUri: true });
    sig.computeSignature(unsigned, { prefix: "ds", location: { reference: "/*/*[local-name(.)='Issuer']", action: "after" } });
    refused(await postAcs(sp, sig.getSignedXml()), /Reference does not point/);
  });

  it("a signature outside the Response and Assertion (in Extensions) covers nothing", async () => {
    const { sp, requestId, attacker } = await scene();
    const xml = honest(sp, requestId, attacker);
    const signed = assertionOf(xml);
    const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(signed)![0];
    const unsignedAssertion = signed.replace(signature, "");
    refused(
      await postAcs(sp, xml.replace(signed, unsignedAssertion).replace("<samlp:Status>", `<samlp:Extensions>${signature}</samlp:Extensions><samlp:Status>`)),
      /Signature sits outside/,
    );
  });

  it("comment truncation: `admin@victim<!---->.evil` keeps the signature valid but is refused", async () => {
    const { sp, requestId, victim } = await scene();
    // The attacker's IdP account is admin@<domain>.evil.example: the IdP signs that.
    const xml = issue(sp, requestId, { email: `${victim.email}.evil.example` });
    const truncated = xml.replace(`${victim.email}.evil.example`, `${victim.email}<!---->.evil.example`);
    stillValidFor(truncated, "the Assertion");
    refused(await postAcs(sp, truncated), /NameID holds a comment/);
    // And in an attribute value.
    const { requestId: r2 } = await startLogin(sp);
    const viaAttr = issue(sp, r2, {
      nameId: "opaque",
      nameIdFormat: "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
      attributes: { email: [`${victim.email}.evil.example`] },
    }).replace(`>${victim.email}.evil.example<`, `>${victim.email}<!---->.evil.example<`);
    refused(await postAcs(sp, viaAttr), /AttributeValue holds a comment/);
  });

  it("only one Reference, only the allowed transforms, no ds:Object, no processing instructions, no encrypted assertions", async () => {
    const { sp, requestId, attacker } = await scene();
    const xml = honest(sp, requestId, attacker);
    const reference = /<ds:Reference[\s\S]*?<\/ds:Reference>/.exec(xml)![0];
    refused(await postAcs(sp, xml.replace(reference, reference + reference)), /exactly one Reference/);
    const inclusive = issue(sp, requestId, { email: attacker, signing: { transform: ALGS.inclC14n } });
    refused(await postAcs(sp, inclusive), /enveloped-signature and exclusive c14n/);
    const inclusiveSignedInfo = issue(sp, requestId, { email: attacker, signing: { canonicalization: ALGS.inclC14n } });
    refused(await postAcs(sp, inclusiveSignedInfo), /canonicalization other than exclusive/);
    refused(await postAcs(sp, xml.replace("</ds:SignatureValue>", `</ds:SignatureValue><ds:Object>x</ds:Object>`)), /unexpected Object/);
    refused(await postAcs(sp, xml.replace("<samlp:Status>", `<?evil x?><samlp:Status>`)), /processing instruction/);
    const encrypted = xml.replace(assertionOf(xml), `<saml:EncryptedAssertion><x/></saml:EncryptedAssertion>`);
    refused(await postAcs(sp, encrypted), /encrypted assertions/);
  });

  it("a DOCTYPE with entities never reaches the parser; oversized input is refused", async () => {
    const { sp, requestId, attacker } = await scene();
    const lol = `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>`;
    refused(await postAcs(sp, lol + honest(sp, requestId, attacker)), /DOCTYPE/);
    const big = honest(sp, requestId, attacker).replace(
      "<samlp:Status>",
      `<samlp:Extensions><x:p xmlns:x="urn:x">${"a".repeat(600 * 1024)}</x:p></samlp:Extensions><samlp:Status>`,
    );
    refused(await postAcs(sp, big), /larger than/);
  });
});
