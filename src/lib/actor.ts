import type { Scope } from "./permissions";

/** Who is calling. Authorization asks one question of it: may this actor do P in organization O. */
export type Actor =
  | { kind: "session"; userId: string; sessionId: string; tokenExp: number }
  | { kind: "pat"; userId: string; tokenId: string; scopes: Scope[] }
  | { kind: "service_account"; serviceAccountId: string; organizationId: string; keyId: string; scopes: Scope[] };

/** The id the actor has in the members table. */
export function memberIdOf(actor: Actor): string {
  return actor.kind === "service_account" ? actor.serviceAccountId : actor.userId;
}

export function userIdOf(actor: Actor): string | null {
  return actor.kind === "service_account" ? null : actor.userId;
}

/** Scopes narrow a token's permissions; a session is not narrowed. */
export function actorScopes(actor: Actor): Scope[] | null {
  return actor.kind === "session" ? null : actor.scopes;
}
