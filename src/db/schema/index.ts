export * from "./identity";
export * from "./organizations";
export * from "./email";
export * from "./service-accounts";
export * from "./invitations";
