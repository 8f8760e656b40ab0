import type { z } from "zod";
import type { DeliveriesFilter, DeliveryView } from "../api/delivery-operations.js";
import { DELIVERY_STATES, type DeliveryWithAttempts } from "../api/schemas.js";
import type { WebhookView } from "../api/webhook-operations.js";
import { attemptOutcome } from "./badges.js";
import { html, type Html } from "./html.js";
import { formatTime, page, postButton, type PageContext } from "./layout.js";

const STATE_BADGE: Record<DeliveryView["status"], string> = { pending: "", succeeded: "ok", failed: "warn", dead: "bad" };

function stateBadge(status: DeliveryView["status"]): Html {
  return html`<span class="badge ${STATE_BADGE[status]}">${status}</span>`;
}

/** The filters as a query string (for the "older" link). */
function query(filter: Partial<Record<string, string | undefined>>): string {
  const params = new URLSearchParams(Object.entries(filter).filter((entry): entry is [string, string] => Boolean(entry[1])));
  return params.toString();
}

/** /admin/deliveries: the log, newest first, filtered by endpoint, status and event type. */
export function deliveryLogPage(
  context: PageContext,
  filter: DeliveriesFilter & { webhook_id?: string | undefined },
  deliveries: DeliveryView[],
  nextCursor: string | null,
  webhooks: WebhookView[],
  eventTypes: string[],
): Html {
  const names = new Map(webhooks.map((w) => [w.id, w.name]));
  return page("Deliveries", context, html`
<form method="get" action="/admin/deliveries" class="filters" id="filters">
  <div><label for="webhook_id">Endpoint</label><select id="webhook_id" name="webhook_id"><option value="">All endpoints</option>
    ${webhooks.map((w) => html`<option value="${w.id}"${filter.webhook_id === w.id && " selected"}>${w.name}</option>`)}</select></div>
  <div><label for="status">Status</label><select id="status" name="status"><option value="">Any status</option>
    ${DELIVERY_STATES.map((s) => html`<option value="${s}"${filter.status === s && " selected"}>${s}</option>`)}</select></div>
  <div><label for="event_type">Event type</label><select id="event_type" name="event_type"><option value="">Any event</option>
    ${eventTypes.map((t) => html`<option value="${t}"${filter.event_type === t && " selected"}>${t}</option>`)}</select></div>
  <button type="submit">Filter</button>
</form>
<p class="hint">One row per delivery (an event to one endpoint); its attempts, each with the request sent and the response received, are on its page. This list refreshes itself every few seconds.</p>
<div id="log" data-live>
${deliveries.length === 0
    ? html`<p class="muted">No deliveries${filter.webhook_id || filter.status || filter.event_type ? " match these filters" : " yet"}.</p>`
    : html`<div class="table"><table id="deliveries">
  <thead><tr><th>Created</th><th>Endpoint</th><th>Event</th><th>Status</th><th class="num">Attempts</th><th>Last response</th></tr></thead>
  <tbody>${deliveries.map((d) => html`<tr data-delivery-id="${d.id}">
    <td><a href="/admin/deliveries/${d.id}">${formatTime(d.created_at)}</a></td>
    <td>${names.get(d.webhook_id) ?? d.webhook_id}</td>
    <td><code>${d.event_type ?? "(expired)"}</code></td>
    <td>${stateBadge(d.status)}</td>
    <td class="num">${d.attempt_count}</td>
    <td class="last-response">${d.last_status !== null || d.last_error !== null ? attemptOutcome({ response_status: d.last_status, error: d.last_error }) : html`<span class="muted">–</span>`}</td>
  </tr>`)}</tbody></table></div>`}
${nextCursor && html`<p><a href="/admin/deliveries?${query({ webhook_id: filter.webhook_id, status: filter.status, event_type: filter.event_type, cursor: nextCursor })}">Older →</a></p>`}
</div>`);
}

/** A delivery's page shows its latest attempts, however often it was replayed. */
const ATTEMPTS_SHOWN = 50;

function headersBlock(headers: Record<string, unknown> | null): string {
  if (!headers) return "";
  return Object.entries(headers).map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(", ") : String(value)}`).join("\n");
}

/** /admin/deliveries/:id: the delivery, every attempt's request and response, and replay. */
export function deliveryPage(context: PageContext, delivery: z.infer<typeof DeliveryWithAttempts>, webhookName: string | undefined): Html {
  return page(`Delivery of ${delivery.event_type ?? "an expired event"}`, context, html`
<dl class="facts">
  <dt>Endpoint</dt><dd>${webhookName ? html`<a href="/admin/webhooks/${delivery.webhook_id}">${webhookName}</a>` : delivery.webhook_id}</dd>
  <dt>Event</dt><dd><code>${delivery.event_id}</code></dd>
  <dt>Status</dt><dd>${stateBadge(delivery.status)}${delivery.next_attempt_at && delivery.status !== "succeeded" && delivery.status !== "dead" && html` <span class="muted">next attempt ${formatTime(delivery.next_attempt_at)}</span>`}</dd>
  <dt>Created</dt><dd>${formatTime(delivery.created_at)}</dd>
  ${delivery.completed_at && html`<dt>Completed</dt><dd>${formatTime(delivery.completed_at)}</dd>`}
</dl>
<div class="actions">
  ${postButton(`/admin/deliveries/${delivery.id}/replay`, "Replay", context.csrf)}
  <a class="button" href="/admin/deliveries?webhook_id=${delivery.webhook_id}">All deliveries of this endpoint</a>
</div>
<p class="hint">Replay sends this delivery again now, with the same event id; its attempt numbers continue.</p>
<h2>Attempts</h2>
<div id="attempts" data-live>
${delivery.attempts.length > ATTEMPTS_SHOWN && html`<p class="hint">The latest ${ATTEMPTS_SHOWN} of ${delivery.attempts.length} attempts; the rest are in webhooks.webhook_logs and the API.</p>`}
${delivery.attempts.length === 0
    ? html`<p class="muted">No attempt yet.</p>`
    : delivery.attempts.slice(-ATTEMPTS_SHOWN).map((a) => html`<section class="attempt">
  <p><strong>Attempt ${a.attempt}</strong> · ${formatTime(a.created_at)} · ${attemptOutcome(a)}${a.duration_ms !== null && html` · ${a.duration_ms} ms`}</p>
  <p class="url muted">POST ${a.url}</p>
  ${a.error && html`<p class="error">${a.error}</p>`}
  <div class="split">
    <div><h3>Request</h3><pre>${headersBlock(a.request_headers)}</pre><pre>${a.request_body ?? "(body expired)"}</pre></div>
    <div><h3>Response${a.response_status !== null && html` ${a.response_status}`}</h3><pre>${headersBlock(a.response_headers)}</pre><pre>${a.response_body ?? ""}</pre></div>
  </div>
</section>`)}
</div>`);
}
