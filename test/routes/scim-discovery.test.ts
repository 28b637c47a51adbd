import { describe, expect, it } from "vitest";
import { get, post } from "../helpers/client";
import { createOrg, createUser, unique } from "../helpers/factories";

const SCIM_TYPE = "application/scim+json";
const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

async function scimToken(opts: { enabled?: boolean } = {}) {
  const admin = await createUser();
  const org = await createOrg(admin);
  const idp = await post(
    `/v1/organizations/${org.id}/identity-provider-configs`,
    { name: `IdP ${unique()}`, saml_entity_id: "https://idp.example/e", scim_enabled: opts.enabled ?? true },
    { token: admin.accessToken },
  );
  expect(idp.status, idp.text).toBe(201);
  const minted = await post(`/v1/organizations/${org.id}/identity-provider-configs/${idp.body.id}/scim-token`, undefined, { token: admin.accessToken });
  expect(minted.status, minted.text).toBe(200);
  return minted.body.token as string;
}

async function scim(path: string, token: string, status = 200) {
  const res = await get(path, { token });
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get("content-type")).toContain(SCIM_TYPE);
  return res;
}

describe("happy", () => {
  it("ServiceProviderConfig states exactly what is supported; one D1 round trip, the token row only", async () => {
    const token = await scimToken();
    const res = await scim("/scim/v2/ServiceProviderConfig", token);
    expect(res.body).toEqual({
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
      documentationUri: "http://api.test/docs",
      patch: { supported: true },
      bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
      filter: { supported: true, maxResults: 200 },
      changePassword: { supported: false },
      sort: { supported: false },
      etag: { supported: true },
      authenticationSchemes: [expect.objectContaining({ type: "oauthbearertoken", primary: true, specUri: "https://www.rfc-editor.org/info/rfc6750" })],
      meta: { resourceType: "ServiceProviderConfig", location: "http://api.test/scim/v2/ServiceProviderConfig" },
    });
    expect(res.cost.queries).toBe(1);
    expect(res.cost.rowsRead).toBeLessThanOrEqual(1);
  });

  it("ResourceTypes: a ListResponse of User and Group, and each by name", async () => {
    const token = await scimToken();
    const res = await scim("/scim/v2/ResourceTypes", token);
    expect(res.body.schemas).toEqual([LIST]);
    expect(res.body.totalResults).toBe(2);
    expect(res.body.Resources).toEqual([
      {
        schemas: ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        id: "User",
        name: "User",
        endpoint: "/Users",
        description: "User Account",
        schema: USER,
        schemaExtensions: [{ schema: ENTERPRISE, required: false }],
        meta: { resourceType: "ResourceType", location: "http://api.test/scim/v2/ResourceTypes/User" },
      },
      expect.objectContaining({ id: "Group", endpoint: "/Groups", schema: GROUP }),
    ]);
    expect((await scim("/scim/v2/ResourceTypes/Group", token)).body).toMatchObject({ id: "Group", endpoint: "/Groups" });
    expect((await scim("/scim/v2/ResourceTypes/user", token)).body.id).toBe("User");
  });

  it("Schemas: core User (with its attributes' characteristics), the enterprise extension, core Group; each by URN", async () => {
    const token = await scimToken();
    const res = await scim("/scim/v2/Schemas", token);
    expect(res.body.schemas).toEqual([LIST]);
    const ids = res.body.Resources.map((s: { id: string }) => s.id);
    expect(ids).toEqual(expect.arrayContaining([USER, ENTERPRISE, GROUP]));
    expect(res.body.totalResults).toBe(ids.length);

    const user = (await scim(`/scim/v2/Schemas/${USER}`, token)).body;
    expect(user.schemas).toEqual(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
    expect(user.meta).toEqual({ resourceType: "Schema", location: `http://api.test/scim/v2/Schemas/${USER}` });
    const byName = Object.fromEntries(user.attributes.map((a: { name: string }) => [a.name, a]));
    expect(byName.userName).toMatchObject({
      type: "string",
      required: true,
      caseExact: false,
      uniqueness: "server",
      multiValued: false,
      mutability: "readWrite",
      returned: "default",
    });
    expect(byName.active).toMatchObject({ type: "boolean" });
    expect(byName.name.subAttributes.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(["givenName", "familyName", "formatted"]));
    expect(byName.emails).toMatchObject({ type: "complex", multiValued: true });
    expect(byName.emails.subAttributes.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(["value", "type", "primary"]));
    expect(byName.password).toBeUndefined();
    // Every attribute carries the RFC 7643 §7 characteristics.
    for (const a of user.attributes)
      expect(Object.keys(a)).toEqual(
        expect.arrayContaining(["name", "type", "multiValued", "description", "required", "caseExact", "mutability", "returned", "uniqueness"]),
      );

    const ent = (await scim(`/scim/v2/Schemas/${ENTERPRISE}`, token)).body;
    expect(ent.attributes.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(["employeeNumber", "department", "manager"]));
    const group = (await scim(`/scim/v2/Schemas/${GROUP.toLowerCase()}`, token)).body;
    expect(group.id).toBe(GROUP);
    expect(group.attributes.map((a: { name: string }) => a.name)).toEqual(["displayName", "members"]);
  });
});

describe("errors", () => {
  it("unknown schema or resource type → SCIM 404; a filter on discovery → 403 (RFC 7644 §4)", async () => {
    const token = await scimToken();
    const a = await scim("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Nope", token, 404);
    expect(a.body).toMatchObject({ schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "404" });
    await scim("/scim/v2/ResourceTypes/Widget", token, 404);
    await scim(`/scim/v2/Schemas?filter=${encodeURIComponent('id eq "x"')}`, token, 403);
    await scim(`/scim/v2/ResourceTypes?filter=x`, token, 403);
    await scim(`/scim/v2/ServiceProviderConfig?filter=x`, token, 403);
  });
});

describe("security", () => {
  it("discovery needs a valid SCIM token: none, a /v1 token or a config with SCIM off is refused in the SCIM error schema", async () => {
    const admin = await createUser();
    for (const path of ["/scim/v2/ServiceProviderConfig", "/scim/v2/ResourceTypes", "/scim/v2/Schemas", `/scim/v2/Schemas/${USER}`]) {
      const none = await scim(path, "", 401);
      expect(none.body.status).toBe("401");
      await scim(path, admin.accessToken, 401);
    }
    const off = await scimToken({ enabled: false });
    await scim("/scim/v2/ServiceProviderConfig", off, 403);
  });
});
