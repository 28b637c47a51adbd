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
} as const;

export type TemplateName = keyof typeof templates;
