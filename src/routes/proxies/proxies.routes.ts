import { createRouter } from "../../middleware/route";

export const proxyRoutes = createRouter();
