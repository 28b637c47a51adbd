import { describe, expect, it } from "vitest";
import { api } from "../helpers/client";
import { scim, scimSetup } from "../helpers/scim";

describe("roles mapped by SCIM groups", () => {
  it("a custom role mapped by a group cannot be deleted (409 role_in_use), and a rename carries the mapping along", async () => {
    const s = await scimSetup();
    const roleName = `eng${Date.now().toString(36)}`;
    const role = await api("POST", `/v1/organizations/${s.org.id}/roles`, {
      token: s.admin.accessToken,
      body: { name: roleName, permissions: ["organization:read"] },
    });
    expect(role.status, role.text).toBe(201);
    const group = await scim("POST", "/Groups", s.token, {
      schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      displayName: "Engineering",
      "urn:tenancy:params:scim:schemas:extension:2.0:Group": { role: roleName },
    });
    expect(group.status, group.text).toBe(201);
    const del = await api("DELETE", `/v1/organizations/${s.org.id}/roles/${role.body.id}`, { token: s.admin.accessToken });
    expect(del.status, del.text).toBe(409);
    expect(del.body.code).toBe("role_in_use");
    const renamed = await api("PATCH", `/v1/organizations/${s.org.id}/roles/${role.body.id}`, { token: s.admin.accessToken, body: { name: `${roleName}x` } });
    expect(renamed.status, renamed.text).toBe(200);
    const after = await scim("GET", `/Groups/${group.body.id}`, s.token);
    expect(after.body["urn:tenancy:params:scim:schemas:extension:2.0:Group"]?.role).toBe(`${roleName}x`);
  });
});
