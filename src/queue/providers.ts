import { backgroundDb } from "../db/client";
import { mailbox } from "../db/schema";
import type { Bindings, Config } from "../env";
import { decryptString, encryptString } from "../lib/crypto";
import { newId } from "../lib/ids";
import type { RenderedEmail } from "./templates";

export interface OutgoingEmail extends RenderedEmail {
  to: string;
  from: string;
  idempotencyKey: string;
}

export class ProviderError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

type Provider = (email: OutgoingEmail, env: Bindings, config: Config) => Promise<void>;

/**
 * Keeps the email in D1 (the dev mailbox); the unique outbox id makes a redelivery a no-op. The
 * bodies carry live links (invitation and verification tokens), so they are stored encrypted,
 * bound to their row, and opened only by `GET /v1/dev/emails`; the cron prunes them after
 * MAILBOX_RETENTION_MS.
 */
const outboxProvider: Provider = async (email, env, config) => {
  const id = newId("email");
  await backgroundDb(env)
    .insert(mailbox)
    .values({
      id,
      outboxId: email.idempotencyKey,
      recipient: email.to,
      subject: email.subject,
      text: await encryptString(config.encryptionKey, email.text, `mailbox:${id}:text`),
      html: await encryptString(config.encryptionKey, email.html, `mailbox:${id}:html`),
      createdAt: Date.now(),
    })
    .onConflictDoNothing({ target: mailbox.outboxId });
};

export const MAILBOX_RETENTION_MS = 7 * 86_400_000;

/** A stored dev-mailbox email, decrypted. */
export async function openMailboxEmail(config: Config, row: { id: string; subject: string; text: string; html: string }) {
  return {
    subject: row.subject,
    text: await decryptString(config.encryptionKey, row.text, `mailbox:${row.id}:text`),
    html: await decryptString(config.encryptionKey, row.html, `mailbox:${row.id}:html`),
  };
}

/** Resend's HTTP API; its Idempotency-Key header stops a redelivered message sending twice. */
const resendProvider: Provider = async (email, _env, config) => {
  let res: Response;
  try {
    res = await fetch("https://api.resend.com/emails", {
      method: "POST",
      headers: {
        Authorization: `Bearer ${config.resendApiKey}`,
        "Content-Type": "application/json",
        "Idempotency-Key": email.idempotencyKey,
      },
      body: JSON.stringify({ from: email.from, to: [email.to], subject: email.subject, text: email.text, html: email.html }),
    });
  } catch (err) {
    throw new ProviderError(`resend unreachable: ${String(err)}`, true);
  }
  if (!res.ok) {
    const body = (await res.text()).slice(0, 300);
    // 4xx other than 429 will not get better by retrying (bad address, bad key).
    throw new ProviderError(`resend ${res.status}: ${body}`, res.status === 429 || res.status >= 500);
  }
};

/** Cloudflare Email Service through the `send_email` binding named SEND_EMAIL. */
async function cloudflareProvider(email: OutgoingEmail, env: Bindings): Promise<void> {
  if (!env.SEND_EMAIL) throw new ProviderError("EMAIL_PROVIDER=cloudflare needs a [[send_email]] binding named SEND_EMAIL", false);
  try {
    const named = /^\s*(.*?)\s*<([^>]+)>\s*$/.exec(email.from);
    await env.SEND_EMAIL.send({
      from: named ? { name: named[1]!, email: named[2]! } : email.from,
      to: email.to,
      subject: email.subject,
      text: email.text,
      html: email.html,
      headers: { "X-Idempotency-Key": email.idempotencyKey },
    });
  } catch (err) {
    // The binding does not say which failures are permanent; retry them all, the DLQ ends it.
    throw new ProviderError(`send_email failed: ${String(err)}`, true);
  }
}

export const PROVIDERS: Record<Config["emailProvider"], Provider> = {
  outbox: outboxProvider,
  resend: resendProvider,
  cloudflare: cloudflareProvider,
};
