import { createRouter } from "../../middleware/route";

export const webhookRoutes = createRouter();
