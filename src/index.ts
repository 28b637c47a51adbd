import { createApp } from "./app";
import type { Bindings } from "./env";
import { handleEmailBatch } from "./queue/consumer";
import { handleWebhookBatch, WEBHOOK_QUEUE_NAME } from "./queue/webhook-consumer";
import { runScheduled } from "./scheduled";

const app = createApp();

export default {
  fetch: app.fetch,
  // Each queue and its dead-letter queue by name; the email queue keeps its historic name.
  queue: (batch, env, ctx) => (batch.queue.startsWith(WEBHOOK_QUEUE_NAME) ? handleWebhookBatch(batch, env, ctx) : handleEmailBatch(batch, env, ctx)),
  scheduled: (_controller, env, ctx) => {
    ctx.waitUntil(runScheduled(env, ctx));
  },
} satisfies ExportedHandler<Bindings>;
