import { createRouter } from "../../middleware/route";

export const tagRoutes = createRouter();
