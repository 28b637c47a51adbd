import type { Permission } from "../lib/permissions";

/**
 * Every action the audit log records, and which of them are also webhook events. One list, so
 * the README's catalogue, the webhook `events` enum in OpenAPI and the routes' `audit` declarations
 * cannot drift. Names are `<resource>.<past tense>`; a webhook event's `data` is the resource as
 * the API returns it (secrets never included).
 */
export const AUDIT_ACTIONS = {
  "organization.created": { event: false, description: "An organization was created (no endpoint can exist yet to receive it)." },
  "organization.updated": { event: true, description: "Name, slug, description, logo, active flag or other organization fields changed." },
  "organization.deleted": { event: false, description: "The organization was deleted (its audit log and webhooks go with it)." },
  "organization.preferences_updated": { event: true, description: "The organization's preferences (support team access, SSO admin bypass) changed." },
  "organization.settings_updated": { event: true, description: "Organization settings or secret names changed (never their values)." },
  "member.added": { event: true, description: "A user or service account became a member (direct add, invitation, SSO JIT, SCIM)." },
  "member.removed": { event: true, description: "A member was removed, left, or their account was deleted." },
  "member.role_changed": { event: true, description: "A member's role changed." },
  "role.created": { event: true, description: "A custom role was created." },
  "role.updated": { event: true, description: "A custom role was renamed or its permissions changed." },
  "role.deleted": { event: true, description: "A custom role was deleted." },
  "service_account.created": { event: true, description: "A service account was created." },
  "service_account.deleted": { event: true, description: "A service account was deleted." },
  "service_account.key_rotated": { event: true, description: "A service account's key was rotated." },
  "invitation.created": { event: true, description: "An invitation was created." },
  "invitation.updated": { event: true, description: "A pending invitation was combined with a new one (new token, expiry, role or projects)." },
  "invitation.resent": { event: true, description: "An invitation was re-sent with a new token and expiry." },
  "invitation.canceled": { event: true, description: "An invitation was canceled." },
  "invitation.accepted": { event: true, description: "An invitation was accepted." },
  "domain.created": { event: true, description: "A domain was added." },
  "domain.updated": { event: true, description: "A domain's settings changed." },
  "domain.deleted": { event: true, description: "A domain was removed." },
  "domain.verified": { event: true, description: "A domain's DNS TXT record was found and the domain verified." },
  "identity_provider.created": { event: true, description: "An identity provider config was created." },
  "identity_provider.updated": { event: true, description: "An identity provider config changed." },
  "identity_provider.deleted": { event: true, description: "An identity provider config was deleted." },
  "identity_provider.scim_token_created": { event: true, description: "A SCIM token was minted for a config (the previous one stopped)." },
  "sso.login": { event: true, description: "A user signed in through the organization's SAML identity provider." },
  "scim.user.created": { event: true, description: "The directory provisioned a user." },
  "scim.user.updated": { event: true, description: "The directory changed a user." },
  "scim.user.deprovisioned": { event: true, description: "The directory deactivated a user: their membership ends." },
  "scim.user.deleted": { event: true, description: "The directory deleted a user." },
  "scim.group.created": { event: true, description: "The directory created a group." },
  "scim.group.updated": { event: true, description: "The directory changed a group or its members." },
  "scim.group.deleted": { event: true, description: "The directory deleted a group." },
  "license.assigned": { event: true, description: "A license was assigned to the organization." },
  "license.unassigned": { event: true, description: "The organization's license was removed." },
  "license.revoked": { event: true, description: "The platform revoked the organization's license." },
  "project.created": { event: true, description: "A project was created." },
  "project.updated": { event: true, description: "A project's fields or tags changed." },
  "project.deleted": { event: true, description: "A project was deleted." },
  "project.member_added": { event: true, description: "A member was granted access to a project (or their project role changed)." },
  "project.member_removed": { event: true, description: "A member's access to a project was removed." },
  "tag.deleted": { event: true, description: "A tag was deleted from every project." },
  "proxy.created": { event: true, description: "A proxy was created." },
  "proxy.updated": { event: true, description: "A proxy changed (including becoming the default)." },
  "proxy.deleted": { event: true, description: "A proxy was deleted." },
  "integration.created": { event: true, description: "An integration was created." },
  "integration.updated": { event: true, description: "An integration's environment mapping changed." },
  "integration.deleted": { event: true, description: "An integration was deleted." },
  "webhook.created": { event: false, description: "A webhook endpoint was created." },
  "webhook.updated": { event: false, description: "A webhook endpoint changed, was re-enabled, or its secret was rotated." },
  "webhook.deleted": { event: false, description: "A webhook endpoint was deleted." },
  "webhook.disabled": { event: false, description: "The system disabled an endpoint after it failed for too long." },
  "webhook.delivery_retried": { event: false, description: "A delivery was sent again by hand." },
} as const satisfies Record<string, { event: boolean; description: string }>;

export type AuditAction = keyof typeof AUDIT_ACTIONS;

type EventOf<K extends AuditAction> = (typeof AUDIT_ACTIONS)[K]["event"] extends true ? K : never;
/** The actions a webhook may subscribe to. */
export type EventType = { [K in AuditAction]: EventOf<K> }[AuditAction];

export const EVENT_TYPES = (Object.keys(AUDIT_ACTIONS) as AuditAction[]).filter((k) => AUDIT_ACTIONS[k].event) as EventType[];

/**
 * What a caller must be able to read to subscribe an endpoint to an event: a webhook hands its
 * receiver the event's data, so subscribing is reading. Without this, `webhooks:write` alone would
 * stream member emails or private projects to someone whose role cannot list them.
 */
const EVENT_READ: Record<string, readonly Permission[]> = {
  organization: ["organization:read"],
  member: ["members:read"],
  role: ["roles:read"],
  service_account: ["service_accounts:read"],
  invitation: ["invitations:read"],
  domain: ["sso:read"],
  identity_provider: ["sso:read"],
  sso: ["sso:read", "members:read"],
  scim: ["sso:read", "members:read"],
  license: ["billing:read"],
  // Project events include private projects.
  project: ["projects:admin"],
  tag: ["projects:read"],
  proxy: ["proxies:read"],
  integration: ["integrations:read"],
};

export function eventReadPermissions(event: EventType): readonly Permission[] {
  const needed = EVENT_READ[event.slice(0, event.indexOf("."))];
  if (!needed) throw new Error(`no read permission is declared for ${event}`);
  return needed;
}
