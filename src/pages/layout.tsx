import type { Child } from "hono/jsx";
import { raw } from "hono/html";
import { toBase64Url } from "../lib/encoding";
import { PAGE_RUNTIME } from "./scripts";

/** A fresh nonce per response: the page's own inline script and style run, nothing injected does. */
export const newNonce = () => toBase64Url(crypto.getRandomValues(new Uint8Array(16)));

/**
 * The pages load nothing from anywhere and talk only to this origin's API. Their forms are
 * submitted by the script with fetch, never natively: `form-action 'none'` keeps a password out
 * of a URL even if the script failed to load.
 */
export function pageHeaders(nonce: string): Record<string, string> {
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    // The organization's logo is a data: URI.
    "img-src data:",
    "connect-src 'self'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return {
    "Content-Security-Policy": csp,
    // The page's own URL carries the emailed token or code: never hand it on in a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
  };
}

const CSS = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input,textarea{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #b8bfca;border-radius:4px}
textarea{font-family:ui-monospace,monospace;font-size:.8rem}
button{margin-top:.8rem;padding:.5rem 1rem;font:inherit;border:0;border-radius:4px;background:#2456c9;color:#fff;cursor:pointer}
button:disabled{opacity:.6}
.error{color:#a4161a}.note{color:#5b6472;font-size:.9rem}
.logo{max-height:48px;display:block;margin-bottom:1rem}
[hidden]{display:none!important}
`;

/** The page frame: the page's markup, the shared runtime and the page's own script, all under one nonce. */
export function Layout(props: { title: string; nonce: string; script: string; children: Child }) {
  return (
    <>
      {raw("<!doctype html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="robots" content="noindex" />
          <title>{props.title}</title>
          <style nonce={props.nonce} dangerouslySetInnerHTML={{ __html: CSS }} />
        </head>
        <body>
          <main>
            <h1>{props.title}</h1>
            <noscript>
              <p class="error">This page needs JavaScript to talk to the API.</p>
            </noscript>
            <p id="loading">One moment…</p>
            <p id="error" class="error" role="alert" hidden></p>
            {props.children}
          </main>
          <script nonce={props.nonce} dangerouslySetInnerHTML={{ __html: `"use strict";\n${PAGE_RUNTIME}\n${props.script}` }} />
        </body>
      </html>
    </>
  );
}
