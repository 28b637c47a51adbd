import type { Config } from "../env";

/**
 * The service-provider side of one identity provider config. Every value derives from the API's
 * public base URL and the config id alone, so an IdP admin can paste them before the config holds
 * any IdP detail, and they never change when the config is edited.
 *
 * The SP entity id is the metadata URL: Okta ("Audience URI") and Entra ID ("Identifier") both
 * expect a URL there, and a URL that serves the metadata is what SAML 2.0 metadata §4.1
 * ("well-known location") recommends.
 */
export interface SpUrls {
  sp_entity_id: string;
  acs_url: string;
  metadata_url: string;
  login_url: string;
}

const base = (config: Pick<Config, "apiBaseUrl">, idpId: string) => `${config.apiBaseUrl.replace(/\/+$/, "")}/v1/sso/saml/${encodeURIComponent(idpId)}`;

export function spUrls(config: Pick<Config, "apiBaseUrl">, idpId: string): SpUrls {
  const root = base(config, idpId);
  return { sp_entity_id: `${root}/metadata`, acs_url: `${root}/acs`, metadata_url: `${root}/metadata`, login_url: `${root}/login` };
}

export const SAML_METADATA_TYPE = "application/samlmetadata+xml";
const NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/** Escapes text for an XML attribute value or element content (both quote kinds, so either quoting is safe). */
export function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[ch]!);
}

/**
 * SP metadata in the shape Okta and Entra ID import: our entity id, one HTTP-POST assertion
 * consumer service, NameID format email. We do not sign AuthnRequests (nothing to verify them
 * with on the IdP side, so no KeyDescriptor), and we ask for signed assertions.
 */
export function spMetadataXml(config: Pick<Config, "apiBaseUrl">, idpId: string): string {
  const urls = spUrls(config, idpId);
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="${xmlEscape(urls.sp_entity_id)}">`,
    `  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">`,
    `    <md:NameIDFormat>${NAMEID_EMAIL}</md:NameIDFormat>`,
    `    <md:AssertionConsumerService Binding="${HTTP_POST}" Location="${xmlEscape(urls.acs_url)}" index="0" isDefault="true"/>`,
    `  </md:SPSSODescriptor>`,
    `</md:EntityDescriptor>`,
    ``,
  ].join("\n");
}
