import { createRouter } from "../../middleware/route";

export const projectRoutes = createRouter();
