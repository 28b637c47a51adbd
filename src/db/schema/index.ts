export * from "./identity";
export * from "./organizations";
export * from "./email";
export * from "./service-accounts";
export * from "./invitations";
export * from "./projects";
export * from "./connections";
export * from "./licenses";
