import { createRouter } from "../../middleware/route";

export const licenseRoutes = createRouter();
