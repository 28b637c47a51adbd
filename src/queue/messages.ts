import { z } from "zod";

/** Queue messages carry ids only; the outbox row holds the content (secrets encrypted). */
export const EmailMessageSchema = z.object({
  type: z.literal("email"),
  outbox_id: z.string().min(1),
  // The outbox id doubles as the idempotency key handed to the provider.
  idempotency_key: z.string().min(1),
});

export type EmailMessage = z.infer<typeof EmailMessageSchema>;
