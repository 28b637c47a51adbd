import { createRouter } from "../../middleware/route";

export const auditLogRoutes = createRouter();
