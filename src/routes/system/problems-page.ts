import { html } from "hono/html";
import { ERROR_CODES, type ErrorCode } from "../../lib/errors";
import { docsNav, docsStylesheet } from "./docs-page";

/** Text with `backtick` spans shown as code; every part is escaped by `html`. */
const withCode = (text: string) => text.split("`").map((part, i) => (i % 2 === 1 ? html`<code>${part}</code>` : part));

/**
 * GET /docs/problems: every problem code, generated from ERROR_CODES so it cannot drift. Each
 * problem's `type` is this page with the code as fragment, so each row's id is the code.
 */
export const problemsPage = (apiBaseUrl: string) => html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Tenancy API problem types</title>
    ${docsStylesheet()}
  </head>
  <body>
    ${docsNav("Problem types")}
    <main class="catalogue">
      <h1>Problem types</h1>
      <p>
        Every error is an RFC 9457 <code>application/problem+json</code> body:
        <code>{type, title, status, detail, code, request_id, errors: [{path, message}]}</code>.
        Its <code>type</code> is <code>${apiBaseUrl.replace(/\/+$/, "")}/docs/problems#&lt;code&gt;</code>, the row
        below. Switch on <code>code</code>: it is stable, while <code>detail</code> is written for people and
        may change. <code>errors</code> lists every invalid field of a <code>validation_failed</code> request.
        Some problems add members of their own (<code>required_scope</code>, <code>license_status</code>,
        <code>hint</code>). Quote <code>request_id</code> when reporting a problem.
      </p>
      <p>
        The SCIM endpoints (<code>/scim/v2/…</code>) answer with RFC 7644 error bodies instead
        (<code>schemas</code>, <code>status</code>, <code>scimType</code>, <code>detail</code>).
      </p>
      <table>
        <thead>
          <tr><th>code</th><th>status</th><th>title</th><th>what to do</th></tr>
        </thead>
        <tbody>
          ${(Object.entries(ERROR_CODES) as [ErrorCode, (typeof ERROR_CODES)[ErrorCode]][]).map(
            ([code, { status, title, action }]) =>
              html`<tr id="${code}">
                <td><a href="#${code}"><code>${code}</code></a></td>
                <td>${status}</td>
                <td>${title}</td>
                <td>${withCode(action)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </main>
  </body>
</html>`;

/** The catalogue links only our own stylesheet: no script at all. */
export const PROBLEMS_CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
