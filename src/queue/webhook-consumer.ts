import type { Bindings } from "../env";

/** The webhook queue's name as wrangler.toml declares it; its dead-letter queue adds `-dlq`. */
export const WEBHOOK_QUEUE_NAME = "tenancy-webhooks";

/** Filled by the webhook delivery work (issue 12). */
export async function handleWebhookBatch(batch: MessageBatch, _env: Bindings, _execution: ExecutionContext): Promise<void> {
  for (const m of batch.messages) m.ack();
}
