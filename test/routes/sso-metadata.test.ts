import { describe, expect, it } from "vitest";
import { newId } from "../../src/lib/ids";
import { spMetadataXml, spUrls, xmlEscape } from "../../src/sso/metadata";
import { api, get, post } from "../helpers/client";
import { createOrg, createUser, unique } from "../helpers/factories";
import { expectProblem } from "../helpers/problems";

/**
 * A small strict XML reader for the metadata document (workerd has no DOMParser): elements,
 * attributes, text; entity references decoded; anything unbalanced, a duplicate attribute, an
 * unquoted value or a stray `<`/`&` throws. Enough to prove the document is well-formed and to
 * read back what an IdP would.
 */
interface El {
  name: string;
  attrs: Record<string, string>;
  children: El[];
  text: string;
}

function parseXml(xml: string): El {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at ${i}: ${JSON.stringify(xml.slice(i, i + 30))}`);
  };
  const decode = (s: string) => {
    let out = "";
    for (let k = 0; k < s.length; k++) {
      const ch = s[k]!;
      if (ch === "<") fail("raw < in text");
      if (ch !== "&") {
        out += ch;
        continue;
      }
      const end = s.indexOf(";", k);
      if (end < 0) fail("unterminated entity");
      const ent = s.slice(k + 1, end);
      const map: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
      if (!(ent in map)) fail(`unknown entity &${ent};`);
      out += map[ent];
      k = end;
    }
    return out;
  };
  const isNameChar = (c: string) =>
    (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c === ":" || c === "_" || c === "-" || c === ".";
  const readName = () => {
    const start = i;
    while (i < xml.length && isNameChar(xml[i]!)) i++;
    if (i === start) fail("expected a name");
    return xml.slice(start, i);
  };
  const skipSpace = () => {
    while (i < xml.length && " \t\r\n".includes(xml[i]!)) i++;
  };
  const readElement = (): El => {
    if (xml[i] !== "<") fail("expected <");
    i++;
    const name = readName();
    const attrs: Record<string, string> = {};
    for (;;) {
      skipSpace();
      if (xml.startsWith("/>", i)) {
        i += 2;
        return { name, attrs, children: [], text: "" };
      }
      if (xml[i] === ">") {
        i++;
        break;
      }
      const attr = readName();
      if (attr in attrs) fail(`duplicate attribute ${attr}`);
      skipSpace();
      if (xml[i] !== "=") fail("expected =");
      i++;
      skipSpace();
      const quote = xml[i];
      if (quote !== '"' && quote !== "'") fail("unquoted attribute");
      const end = xml.indexOf(quote!, i + 1);
      if (end < 0) fail("unterminated attribute");
      attrs[attr] = decode(xml.slice(i + 1, end));
      i = end + 1;
    }
    const children: El[] = [];
    let text = "";
    for (;;) {
      if (i >= xml.length) fail(`unclosed <${name}>`);
      if (xml.startsWith("</", i)) {
        i += 2;
        const close = readName();
        if (close !== name) fail(`</${close}> closes <${name}>`);
        skipSpace();
        if (xml[i] !== ">") fail("expected >");
        i++;
        return { name, attrs, children, text: text.trim() };
      }
      if (xml[i] === "<") children.push(readElement());
      else {
        const next = xml.indexOf("<", i);
        text += decode(xml.slice(i, next < 0 ? xml.length : next));
        i = next < 0 ? xml.length : next;
      }
    }
  };
  if (xml.startsWith("<?xml")) {
    const end = xml.indexOf("?>");
    if (end < 0) fail("unterminated declaration");
    i = end + 2;
  }
  skipSpace();
  const root = readElement();
  skipSpace();
  if (i !== xml.length) fail("content after the root element");
  return root;
}

const metadataPath = (id: string) => `/v1/sso/saml/${id}/metadata`;

async function createConfig() {
  const admin = await createUser();
  const org = await createOrg(admin);
  const res = await post(
    `/v1/organizations/${org.id}/identity-provider-configs`,
    { name: `Okta ${unique()}`, saml_entity_id: "http://www.okta.com/exk1" },
    { token: admin.accessToken },
  );
  expect(res.status, res.text).toBe(201);
  return { admin, org, idp: res.body };
}

describe("happy", () => {
  it("serves SP metadata Okta and Entra ID import: entity id, HTTP-POST ACS at index 0, NameID email", async () => {
    const { idp } = await createConfig();
    const res = await get(metadataPath(idp.id));
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/samlmetadata+xml; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(res.text.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);

    const root = parseXml(res.text);
    expect(root.name).toBe("md:EntityDescriptor");
    expect(root.attrs).toEqual({ "xmlns:md": "urn:oasis:names:tc:SAML:2.0:metadata", entityID: idp.sp_entity_id });
    expect(root.children.map((c) => c.name)).toEqual(["md:SPSSODescriptor"]);
    const sp = root.children[0]!;
    expect(sp.attrs).toEqual({
      AuthnRequestsSigned: "false",
      WantAssertionsSigned: "true",
      protocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
    });
    expect(sp.children.map((c) => c.name)).toEqual(["md:NameIDFormat", "md:AssertionConsumerService"]);
    expect(sp.children[0]!.text).toBe("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress");
    expect(sp.children[1]!.attrs).toEqual({ Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", Location: idp.acs_url, index: "0", isDefault: "true" });

    // The values in the document are the ones the config shows the admin.
    expect(idp.sp_entity_id).toBe(`http://api.test${metadataPath(idp.id)}`);
    expect(idp.metadata_url).toBe(idp.sp_entity_id);
    expect(idp.acs_url).toBe(`http://api.test/v1/sso/saml/${idp.id}/acs`);
  });

  it("needs no credential, ignores one, and costs one query reading one row", async () => {
    const { admin, idp } = await createConfig();
    const anonymous = await get(metadataPath(idp.id));
    const withToken = await get(metadataPath(idp.id), { token: admin.accessToken });
    const withGarbage = await get(metadataPath(idp.id), { token: "garbage" });
    for (const r of [anonymous, withToken, withGarbage]) {
      expect(r.status, r.text).toBe(200);
      expect(r.text).toBe(anonymous.text);
      expect(r.cost.queries).toBe(1);
      expect(r.cost.rowsRead).toBeLessThanOrEqual(1);
    }
  });

  it("follows API_BASE_URL, and escapes every interpolated value", async () => {
    const { idp } = await createConfig();
    const base = "https://sso.example.com/tenancy?x=1&y='\"<>";
    const res = await api("GET", metadataPath(idp.id), { env: { API_BASE_URL: base } });
    expect(res.status, res.text).toBe(200);
    const root = parseXml(res.text);
    expect(root.attrs.entityID).toBe(`${base}/v1/sso/saml/${idp.id}/metadata`);
    expect(root.children[0]!.children[1]!.attrs.Location).toBe(`${base}/v1/sso/saml/${idp.id}/acs`);
    expect(res.text).toContain("&amp;y=&apos;&quot;&lt;&gt;");
    expect(res.text).not.toContain("&y=");
    // A trailing slash on the base URL does not double.
    const slash = await api("GET", metadataPath(idp.id), { env: { API_BASE_URL: "https://sso.example.com/" } });
    expect(parseXml(slash.text).attrs.entityID).toBe(`https://sso.example.com/v1/sso/saml/${idp.id}/metadata`);
  });

  it("spUrls and xmlEscape, directly", () => {
    const id = newId("identityProvider");
    expect(spUrls({ apiBaseUrl: "https://api.example.com" }, id)).toEqual({
      sp_entity_id: `https://api.example.com/v1/sso/saml/${id}/metadata`,
      acs_url: `https://api.example.com/v1/sso/saml/${id}/acs`,
      metadata_url: `https://api.example.com/v1/sso/saml/${id}/metadata`,
      login_url: `https://api.example.com/v1/sso/saml/${id}/login`,
    });
    expect(xmlEscape(`a&b<c>d"e'f`)).toBe("a&amp;b&lt;c&gt;d&quot;e&apos;f");
    // Whatever the id, the document stays well-formed (ids are checked before this is called; belt and braces).
    const hostile = `x"/><evil a='1'>&`;
    const root = parseXml(spMetadataXml({ apiBaseUrl: "https://api.example.com" }, hostile));
    expect(root.attrs.entityID).toBe(`https://api.example.com/v1/sso/saml/${encodeURIComponent(hostile)}/metadata`);
  });
});

describe("errors", () => {
  it("an unknown, malformed or deleted config id is 404 problem+json", async () => {
    const { admin, org, idp } = await createConfig();
    for (const id of [newId("identityProvider"), "nope", "idp_", newId("proxy"), org.id, "%3Cx%3E"]) {
      const res = await get(metadataPath(id));
      expectProblem(res, 404, "not_found");
      expect(res.headers.get("content-type")).toContain("application/problem+json");
    }
    expect((await api("DELETE", `/v1/organizations/${org.id}/identity-provider-configs/${idp.id}`, { token: admin.accessToken })).status).toBe(204);
    expectProblem(await get(metadataPath(idp.id)), 404, "not_found");
  });

  it("a malformed id reads nothing", async () => {
    const res = await get(metadataPath("not-an-id"));
    expectProblem(res, 404, "not_found");
    expect(res.cost.queries).toBe(0);
  });
});

describe("security", () => {
  it("is limited per client like every public /v1 route", async () => {
    const { idp } = await createConfig();
    const opts = { headers: { "CF-Connecting-IP": `198.51.100.${Math.floor(Math.random() * 250)}-${unique()}` }, env: { AUTH_RATE_LIMIT_PER_MINUTE: "2" } };
    const statuses: number[] = [];
    // Four calls against a budget of two: at least one is refused even if a window boundary falls in between.
    for (let n = 0; n < 4; n++) statuses.push((await get(metadataPath(idp.id), opts)).status);
    expect(statuses).toContain(429);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
  });

  it("reveals nothing of the config beyond our own URLs", async () => {
    const admin = await createUser();
    const org = await createOrg(admin);
    const secretish = `urn:idp:${unique()}`;
    const res = await post(
      `/v1/organizations/${org.id}/identity-provider-configs`,
      { name: "Private name", saml_entity_id: secretish, saml_sso_url: "https://idp.example.com/sso" },
      { token: admin.accessToken },
    );
    const md = await get(metadataPath(res.body.id));
    expect(md.status).toBe(200);
    for (const leaked of [secretish, "Private name", "idp.example.com", org.id]) expect(md.text).not.toContain(leaked);
  });
});
