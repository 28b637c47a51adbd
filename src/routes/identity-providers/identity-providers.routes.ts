import { createRouter } from "../../middleware/route";

export const identityProviderRoutes = createRouter();
