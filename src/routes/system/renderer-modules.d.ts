// Swagger UI's files imported as text: wrangler.toml's Text rule turns them into separate string
// modules, so the renderer is never parsed as part of the worker's own code.
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const text: string;
  export default text;
}
declare module "swagger-ui-dist/swagger-ui.css" {
  const text: string;
  export default text;
}
