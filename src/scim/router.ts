import { createRouter } from "../middleware/route";

/** Every /scim/v2 route is declared on this router with scimRoute (src/scim/route.ts). */
export const scimRoutes = createRouter();
