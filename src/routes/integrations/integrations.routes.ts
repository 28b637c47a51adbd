import { createRouter } from "../../middleware/route";

export const integrationRoutes = createRouter();
