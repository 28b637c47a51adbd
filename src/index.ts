import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleEmailBatch } from "./queue/consumer";
import { runScheduled } from "./scheduled";

const app = createApp();

export default {
  fetch: app.fetch,
  queue: (batch, env, ctx) => handleEmailBatch(batch, env, ctx),
  scheduled: (_controller, env, ctx) => {
    ctx.waitUntil(runScheduled(env, ctx));
  },
} satisfies ExportedHandler<Bindings>;
