import { defineConfig } from "drizzle-kit";

// Migrations are generated here and applied by wrangler (`npm run dev`, deploy) and by the tests.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/db/schema/index.ts",
  out: "./migrations",
});
