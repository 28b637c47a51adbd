import { createRouter } from "../../middleware/route";

export const domainRoutes = createRouter();
