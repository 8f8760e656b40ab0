import { html, type Html } from "./html.js";

export type Section = "dashboard" | "webhooks" | "deliveries";

/** What every signed-in page gets: where it is, and the token its forms carry. */
export interface PageContext {
  section: Section;
  csrf: string;
  /** A short confirmation shown on top (after a redirect), never taken from the request as text. */
  notice?: string | undefined;
}

const NAV: [Section, string, string][] = [
  ["dashboard", "/admin", "Dashboard"],
  ["webhooks", "/admin/webhooks", "Webhooks"],
  ["deliveries", "/admin/deliveries", "Deliveries"],
];

/** A hidden field carrying the CSRF token: every form that changes something has one. */
export function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="_csrf" value="${csrf}">`;
}

/** A button that POSTs to `action` (with the CSRF token and any hidden fields). */
export function postButton(
  action: string,
  label: string,
  csrf: string,
  options: { fields?: Record<string, string>; confirm?: string; kind?: "danger" | "plain" } = {},
): Html {
  return html`<form method="post" action="${action}" class="inline"${options.confirm ? html` data-confirm="${options.confirm}"` : ""}>
    ${csrfField(csrf)}${Object.entries(options.fields ?? {}).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
    <button type="submit" class="${options.kind ?? "plain"}">${label}</button></form>`;
}

function shell(title: string, header: Html | string, body: Html): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · pg-webhooks</title>
<link rel="stylesheet" href="/admin/assets/admin.css">
<script src="/admin/assets/admin.js" defer></script>
</head>
<body>
${header}
<main>
${body}
</main>
</body>
</html>`;
}

/** A signed-in page: the navigation, a sign-out button, the notice, then `body`. */
export function page(title: string, context: PageContext, body: Html): Html {
  const header = html`<header>
  <a class="brand" href="/admin">pg-webhooks</a>
  <nav>${NAV.map(([section, href, label]) =>
    html`<a href="${href}"${section === context.section ? html` aria-current="page"` : ""}>${label}</a>`)}
    <a href="/docs">API docs</a></nav>
  ${postButton("/admin/sign-out", "Sign out", context.csrf)}
</header>`;
  return shell(title, header, html`${context.notice && html`<p class="notice" role="status">${context.notice}</p>`}
<h1>${title}</h1>
${body}`);
}

/** A page outside a session (sign-in, errors before one). */
export function publicPage(title: string, body: Html): Html {
  return shell(title, html`<header><a class="brand" href="/admin">pg-webhooks</a></header>`, html`<h1>${title}</h1>${body}`);
}

/** 2026-11-30 10:15:03 UTC, from an ISO time. */
export function formatTime(iso: string | Date | null): string {
  if (iso === null) return "";
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
