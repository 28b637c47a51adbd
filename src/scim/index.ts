import { scimRoutes } from "./router";
import { scimNotFound } from "./route";
// Route files register themselves on scimRoutes when imported; the catch-all comes last.
import "./discovery.routes";
import "./users.routes";
import "./groups.routes";

scimNotFound(scimRoutes);

export { scimRoutes };
