import type { Scope } from "./permissions";

/** A signed-in user's access token: `authTime` is when the session's sign-in happened (seconds). */
export type SessionActor = { kind: "session"; userId: string; sessionId: string; tokenExp: number; authTime: number };
export type PatActor = { kind: "pat"; userId: string; tokenId: string; scopes: Scope[] };
export type ServiceAccountActor = { kind: "service_account"; serviceAccountId: string; organizationId: string; keyId: string; scopes: Scope[] };

/** A caller holding a credential: what the seam authenticates. */
export type Caller = SessionActor | PatActor | ServiceAccountActor;

/**
 * Who acts. Authorization asks one question of a caller: may it do P in organization O. `system`
 * is the cron and the queue consumer, which act on no caller's behalf.
 */
export type Actor = Caller | { kind: "system" };

/** The id the caller has in the members table. */
export function memberIdOf(caller: Caller): string {
  return caller.kind === "service_account" ? caller.serviceAccountId : caller.userId;
}

/** Scopes narrow a token's permissions; a session is not narrowed. */
export function callerScopes(caller: Caller): Scope[] | null {
  return caller.kind === "session" ? null : caller.scopes;
}
