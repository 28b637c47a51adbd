/** Runtime settings of the peer worker, shared by the bench and the schema generator. */
export const PEER_COMPATIBILITY = {
  compatibilityDate: "2026-04-01",
  // Better Auth imports node:async_hooks (AsyncLocalStorage) and node:crypto.
  compatibilityFlags: ["nodejs_compat"],
};
