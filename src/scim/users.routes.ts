import { scimRoutes } from "./router";

void scimRoutes;
