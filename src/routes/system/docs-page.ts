import { html } from "hono/html";
import rendererPackage from "swagger-ui-dist/package.json";

/**
 * The API reference at /docs: Swagger UI (swagger-ui-dist) rendering /openapi.json. Every file
 * the page loads comes from this worker, so it works offline and under a CSP naming only 'self'.
 */

/** In every renderer URL, so a deploy that upgrades Swagger UI is never served a stale cached copy. */
const RENDERER_VERSION = rendererPackage.version;

const TEXT_JS = "text/javascript; charset=utf-8";
const TEXT_CSS = "text/css; charset=utf-8";
// The renderer's URLs carry its version; our own two small files change with any deploy.
const IMMUTABLE = "public, max-age=31536000, immutable";
const SHORT = "public, max-age=300";

/** Swagger UI's settings; a file rather than an inline script so the CSP needs no 'unsafe-inline'. */
const DOCS_SCRIPT = `"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 1,
  defaultModelExpandDepth: 4,
  displayRequestDuration: true,
  filter: true,
  showExtensions: true,
  showCommonExtensions: true,
  requestSnippetsEnabled: true,
  persistAuthorization: false,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
`;

/** Our adjustments to Swagger UI's look, and the style of the problem catalogue page. */
const DOCS_CSS = `body{margin:0;font:14px/1.5 system-ui,sans-serif;color:#222}
.docs-nav{display:flex;gap:16px;align-items:baseline;padding:10px 20px;border-bottom:1px solid #ddd;background:#fafafa}
.docs-nav a{color:#1f5fa8;text-decoration:none}.docs-nav .title{font-weight:600;color:#222}
.swagger-ui .opblock .opblock-summary{flex-wrap:wrap}
.swagger-ui .opblock .opblock-summary-path{flex-shrink:0;max-width:none;word-break:normal;overflow-wrap:anywhere}
.swagger-ui .opblock .opblock-summary-description{flex:1 1 240px}
.swagger-ui .markdown table{border-collapse:collapse;margin:8px 0}
.swagger-ui .markdown td,.swagger-ui .markdown th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
.catalogue{max-width:1100px;padding:0 20px 40px}
.catalogue table{border-collapse:collapse;width:100%}
.catalogue td,.catalogue th{border:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
.catalogue tr:target{background:#fff6d5}
.catalogue code{background:#f2f2f2;padding:0 3px;border-radius:3px}
`;

interface DocsAsset {
  contentType: string;
  cacheControl: string;
  text: () => string | Promise<string>;
}

/**
 * What /docs/assets/{file} serves. Swagger UI's bundle (1.7 MB) and stylesheet are text modules
 * imported on first request, so they stay out of the worker's startup path.
 */
export const DOCS_ASSETS = new Map<string, DocsAsset>([
  ["swagger-ui-bundle.js", { contentType: TEXT_JS, cacheControl: IMMUTABLE, text: async () => (await import("swagger-ui-dist/swagger-ui-bundle.js")).default }],
  ["swagger-ui.css", { contentType: TEXT_CSS, cacheControl: IMMUTABLE, text: async () => (await import("swagger-ui-dist/swagger-ui.css")).default }],
  ["docs.js", { contentType: TEXT_JS, cacheControl: SHORT, text: () => DOCS_SCRIPT }],
  ["docs.css", { contentType: TEXT_CSS, cacheControl: SHORT, text: () => DOCS_CSS }],
]);

const asset = (file: "swagger-ui-bundle.js" | "swagger-ui.css" | "docs.js" | "docs.css") => `/docs/assets/${file}?v=${RENDERER_VERSION}`;

/** The links at the top of both documentation pages. */
export const docsNav = (current: string) => html`<nav class="docs-nav">
  <span class="title">${current}</span>
  <a href="/docs">API reference</a>
  <a href="/docs/problems">Problem types</a>
  <a href="/openapi.json">openapi.json</a>
</nav>`;

export const docsStylesheet = () => html`<link rel="stylesheet" href="${asset("docs.css")}" />`;

export const docsPage = () => html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Tenancy API reference</title>
    <link rel="stylesheet" href="${asset("swagger-ui.css")}" />
    ${docsStylesheet()}
  </head>
  <body>
    ${docsNav("Tenancy API")}
    <div id="swagger-ui"></div>
    <script src="${asset("swagger-ui-bundle.js")}"></script>
    <script src="${asset("docs.js")}"></script>
  </body>
</html>`;

/**
 * The reference's CSP: scripts, styles and fonts from this origin only; `data:` images are Swagger
 * UI's inline icons; try-it-out calls the API's public base URL, which may differ from the host
 * the page was opened on (127.0.0.1 vs localhost).
 */
export const docsCsp = (apiBaseUrl: string) =>
  [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${new URL(apiBaseUrl).origin}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
