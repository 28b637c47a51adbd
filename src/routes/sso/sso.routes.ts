import { createRouter } from "../../middleware/route";

export const ssoRoutes = createRouter();
