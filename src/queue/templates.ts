/** Rendered email: user-supplied text is escaped in HTML; links are built from APP_BASE_URL. */
export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

function layout(title: string, bodyHtml: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body style="font-family:sans-serif;line-height:1.5">${bodyHtml}</body></html>`;
}

export function link(base: string, path: string, token: string): string {
  return `${base.replace(/\/+$/, "")}${path}?token=${encodeURIComponent(token)}`;
}

export const templates = {
  verify_email(p: { display_name: string; token: string; app_base_url: string }): RenderedEmail {
    const url = link(p.app_base_url, "/verify-email", p.token);
    return {
      subject: "Verify your email address",
      text: `Hi ${p.display_name},\n\nConfirm your email address by opening this link:\n${url}\n\nIf you did not sign up, ignore this email.\n`,
      html: layout(
        "Verify your email address",
        `<p>Hi ${escapeHtml(p.display_name)},</p><p>Confirm your email address:</p><p><a href="${escapeHtml(url)}">Verify email</a></p><p>If you did not sign up, ignore this email.</p>`,
      ),
    };
  },
  invitation(p: { organization_name: string; inviter_name: string; role: string; message: string | null; token: string; app_base_url: string }): RenderedEmail {
    const url = link(p.app_base_url, "/invitations/accept", p.token);
    const subject = `${p.inviter_name} invited you to join ${p.organization_name}`;
    const quoted = p.message ? `\n\n${p.inviter_name} wrote:\n> ${p.message.replace(/\n/g, "\n> ")}` : "";
    return {
      // Header injection: a name cannot carry a line break into the subject.
      subject: subject.replace(/[\r\n]+/g, " ").slice(0, 200),
      text: `${p.inviter_name} invited you to join ${p.organization_name} as ${p.role}.${quoted}\n\nAccept the invitation:\n${url}\n\nIf you did not expect this, ignore this email.\n`,
      html: layout(
        subject,
        `<p>${escapeHtml(p.inviter_name)} invited you to join <strong>${escapeHtml(p.organization_name)}</strong> as ${escapeHtml(p.role)}.</p>` +
          (p.message
            ? `<blockquote style="border-left:3px solid #ccc;margin:0;padding-left:12px;white-space:pre-wrap">${escapeHtml(p.message)}</blockquote>`
            : "") +
          `<p><a href="${escapeHtml(url)}">Accept the invitation</a></p><p>If you did not expect this, ignore this email.</p>`,
      ),
    };
  },
  webhook_disabled(p: {
    organization_name: string;
    webhook_id: string;
    webhook_url: string;
    failing_since: string;
    organization_id: string;
    app_base_url: string;
  }): RenderedEmail {
    const subject = `A webhook endpoint of ${p.organization_name} was disabled`;
    const how = `PATCH /v1/organizations/${p.organization_id}/webhooks/${p.webhook_id} {"enabled": true}`;
    return {
      subject: subject.replace(/[\r\n]+/g, " ").slice(0, 200),
      text:
        `Every delivery to the webhook endpoint ${p.webhook_url} (${p.webhook_id}) of ${p.organization_name} has failed since ${p.failing_since}, so it was disabled and receives no more events.\n\n` +
        `Its deliveries and their errors are listed at GET /v1/organizations/${p.organization_id}/webhooks/${p.webhook_id}/deliveries. Once the receiver works again, re-enable it with\n${how}\n`,
      html: layout(
        subject,
        `<p>Every delivery to the webhook endpoint <code>${escapeHtml(p.webhook_url)}</code> (${escapeHtml(p.webhook_id)}) of <strong>${escapeHtml(p.organization_name)}</strong> has failed since ${escapeHtml(p.failing_since)}, so it was disabled and receives no more events.</p>` +
          `<p>Once the receiver works again, re-enable it with <code>${escapeHtml(how)}</code>.</p>`,
      ),
    };
  },
} as const;

export type TemplateName = keyof typeof templates;
