import type { WebhookView } from "../api/webhook-operations.js";
import { endpointState } from "./badges.js";
import { webhookHelp } from "./help.js";
import { html, type Html } from "./html.js";
import { csrfField, formatTime, page, postButton, type PageContext } from "./layout.js";
import { formValue, type FormFields } from "./webhook-form.js";

export interface EventTypeRow {
  name: string;
  description: string | null;
}

/** /admin/webhooks: every webhook with its actions, and the on-screen help. */
export function webhookListPage(context: PageContext, webhooks: WebhookView[], eventTypes: EventTypeRow[], more: string | null): Html {
  const { csrf } = context;
  return page("Webhooks", context, html`
<p><a class="button primary" href="/admin/webhooks/new">New webhook</a></p>
${webhooks.length === 0
    ? html`<p class="muted">No webhooks yet.</p>`
    : html`<div class="table"><table id="webhooks">
  <thead><tr><th>Webhook</th><th>Events</th><th>State</th><th>Actions</th></tr></thead>
  <tbody>${webhooks.map((w) => html`<tr data-webhook-id="${w.id}">
    <td><a href="/admin/webhooks/${w.id}">${w.name}</a><div class="muted url">${w.url}</div></td>
    <td>${w.events.map((e, i) => html`${i > 0 && ", "}<code>${e}</code>`)}</td>
    <td>${endpointState(w)}</td>
    <td><div class="actions">
      <a class="button" href="/admin/webhooks/${w.id}">Edit</a>
      ${postButton(`/admin/webhooks/${w.id}/test`, "Send test", csrf)}
      ${postButton(`/admin/webhooks/${w.id}/active`, w.is_active ? "Deactivate" : "Activate", csrf, { fields: { is_active: String(!w.is_active) } })}
      ${postButton(`/admin/webhooks/${w.id}/paused`, w.paused ? "Resume" : "Pause", csrf, { fields: { paused: String(!w.paused) } })}
      <a class="button" href="/admin/deliveries?webhook_id=${w.id}">Deliveries</a>
    </div></td>
  </tr>`)}</tbody></table></div>`}
${more && html`<p><a href="/admin/webhooks?cursor=${more}">More webhooks →</a></p>`}
${webhookHelp(eventTypes)}`);
}

const SCHEMES = ["standard", "hmac-hex", "hmac-prefixed", "hmac-timestamped"] as const;

/** What the form shows: the webhook being edited, or what was typed when the form came back with an error. */
interface FormState {
  webhook?: WebhookView | undefined;
  form?: FormFields | undefined;
  error?: { error: string; field: string | null } | undefined;
}

function fieldValue(state: FormState, name: string, fromWebhook: string | number | null | undefined): string {
  if (state.form) return formValue(state.form, name) ?? "";
  return fromWebhook === null || fromWebhook === undefined ? "" : String(fromWebhook);
}

function checked(state: FormState, name: string, fromWebhook: boolean): boolean {
  if (state.form) return ["true", "on"].includes(formValue(state.form, name) ?? "");
  return fromWebhook;
}

/** The create and edit form; on edit, also test, rotate, recover and delete. */
export function webhookFormPage(context: PageContext, eventTypes: EventTypeRow[], state: FormState): Html {
  const { webhook, error } = state;
  const { csrf } = context;
  const invalid = (field: string) => (error?.field === field ? html` class="field-error" aria-invalid="true"` : "");
  const chosen = new Set(state.form ? [state.form.events ?? []].flat() : (webhook?.events ?? []));
  const all = state.form ? formValue(state.form, "all_events") === "true" : chosen.has("*");
  const action = webhook ? `/admin/webhooks/${webhook.id}` : "/admin/webhooks";
  const header = (name: string) => fieldValue(state, name, undefined);
  // Subscriptions the form has no box for (webhook.test, set through SQL or the API) are kept.
  const offered = eventTypes.filter((t) => t.name !== "webhook.test");
  const kept = [...chosen].filter((name) => name !== "*" && !offered.some((t) => t.name === name));
  return page(webhook ? `Edit ${webhook.name}` : "New webhook", context, html`
${error && html`<p class="error" role="alert" id="form-error">${error.error}</p>`}
<form method="post" action="${action}" id="webhook-form">
${csrfField(csrf)}
<fieldset><legend>Endpoint</legend>
  <label for="url">URL</label>
  <input type="url" id="url" name="url" required maxlength="2048" placeholder="https://your-app.example/webhooks" value="${fieldValue(state, "url", webhook?.url)}"${invalid("url")}>
  <p class="hint">Where each event is POSTed. https:// (http:// and private addresses only where the daemon allows them).</p>
  <label for="name">Name</label>
  <input type="text" id="name" name="name" maxlength="200" placeholder="defaults to the URL's host" value="${fieldValue(state, "name", webhook?.name)}"${invalid("name")}>
  ${webhook && html`<input type="hidden" name="was_is_active" value="${String(webhook.is_active)}"><input type="hidden" name="was_paused" value="${String(webhook.paused)}">`}
  <input type="hidden" name="is_active" value="false">
  <label class="check"><input type="checkbox" name="is_active" value="true"${checked(state, "is_active", webhook?.is_active ?? true) && " checked"}> Active: events are delivered (inactive: nothing is queued for it)</label>
  <input type="hidden" name="paused" value="false">
  <label class="check"><input type="checkbox" name="paused" value="true"${checked(state, "paused", webhook?.paused ?? false) && " checked"}> Paused: deliveries wait, and are sent once resumed</label>
</fieldset>
<fieldset${invalid("events")}><legend>Events</legend>
  <input type="hidden" name="all_events" value="false">
  <label class="check"><input type="checkbox" name="all_events" value="true"${all && " checked"}> All events (<code>*</code>), including ones added later</label>
  <div class="events">${offered.map((t) => html`
    <label class="check" title="${t.description ?? ""}"><input type="checkbox" name="events" value="${t.name}"${chosen.has(t.name) && " checked"}> <code>${t.name}</code></label>`)}</div>
  ${kept.length > 0 && html`<p class="hint">Also subscribed (kept as they are): ${kept.map((name, i) => html`${i > 0 && ", "}<code>${name}</code><input type="hidden" name="events" value="${name}">`)}</p>`}
  <p class="hint">What each event means: see "What each event means" on <a href="/admin/webhooks#help-events">the webhooks page</a>. <code>webhook.test</code> is sent by "Send test" whatever is chosen.</p>
</fieldset>
<fieldset><legend>Delivery</legend>
  <label for="timeout">Timeout (seconds)</label>
  <input type="number" id="timeout" name="timeout" min="1" max="60" value="${fieldValue(state, "timeout", webhook?.timeout)}" placeholder="5"${invalid("timeout")}>
  <label for="max_retries">Retries</label>
  <input type="number" id="max_retries" name="max_retries" min="0" max="25" value="${fieldValue(state, "max_retries", webhook?.max_retries)}" placeholder="5"${invalid("max_retries")}>
  <p class="hint">Failed attempts are retried with exponential backoff; after the last retry the delivery is dead (replayable).</p>
  <label for="max_in_flight">At most this many attempts at once</label>
  <input type="number" id="max_in_flight" name="max_in_flight" min="1" max="1000" value="${fieldValue(state, "max_in_flight", webhook?.max_in_flight)}" placeholder="256"${invalid("max_in_flight")}>
  <label for="rate_limit_per_second">Rate limit (attempts per second, blank: none)</label>
  <input type="number" id="rate_limit_per_second" name="rate_limit_per_second" step="any" min="0" value="${fieldValue(state, "rate_limit_per_second", webhook?.rate_limit_per_second)}"${invalid("rate_limit_per_second")}>
  <label for="ordering">Ordering</label>
  <select id="ordering" name="ordering"${invalid("ordering")}>${(["none", "fifo"] as const).map((o) =>
    html`<option value="${o}"${fieldValue(state, "ordering", webhook?.ordering ?? "none") === o && " selected"}>${o === "none" ? "none: as fast as possible" : "fifo: one at a time per resource, in commit order"}</option>`)}</select>
  <p class="hint">fifo: the deliveries that concern one resource (the payload's <code>data.id</code>) are sent one at a time, in the order the writes committed; the next waits until the previous one succeeded or is dead. Different resources still go in parallel.</p>
  <label for="filter">Filter (JSON, blank: every event)</label>
  <textarea id="filter" name="filter" placeholder='{"data": {"status": "won"}}'${invalid("filter")}>${fieldValue(state, "filter", webhook?.filter ? JSON.stringify(webhook.filter) : "")}</textarea>
  <p class="hint">Only events whose payload contains this JSON object are sent.</p>
  <label for="headers">Static headers (one "Name: value" per line)</label>
  <textarea id="headers" name="headers" placeholder="Authorization: Bearer …"${invalid("headers")}>${header("headers")}</textarea>
  ${webhook && Object.keys(webhook.headers).length > 0 && html`<p class="hint">Set now: ${Object.keys(webhook.headers).join(", ")} (values are never shown). Blank keeps them; anything typed replaces them all.</p>
  <label class="check"><input type="checkbox" name="clear_headers" value="true"> Remove every static header</label>`}
</fieldset>
<fieldset><legend>Signature</legend>
  <label for="signature_scheme">Scheme</label>
  <select id="signature_scheme" name="signature_scheme"${invalid("signature_scheme")}>${SCHEMES.map((s) =>
    html`<option value="${s}"${fieldValue(state, "signature_scheme", webhook?.signature_scheme ?? "standard") === s && " selected"}>${s}</option>`)}</select>
  <label for="signature_header">Signature header (hmac-hex and hmac-prefixed)</label>
  <input type="text" id="signature_header" name="signature_header" maxlength="100" value="${fieldValue(state, "signature_header", webhook?.signature_header)}" placeholder="X-Webhook-Signature"${invalid("signature_header")}>
  <p class="hint">How a receiver checks a signature: "How to verify a signature" on <a href="/admin/webhooks#help-signatures">the webhooks page</a>.</p>
</fieldset>
<p><button type="submit" class="primary">${webhook ? "Save" : "Create webhook"}</button> <a href="/admin/webhooks">Cancel</a></p>
</form>
${webhook && html`
<h2>Actions</h2>
<div class="actions">
  ${postButton(`/admin/webhooks/${webhook.id}/test`, "Send test", csrf)}
  ${postButton(`/admin/webhooks/${webhook.id}/rotate-secret`, "Rotate secret", csrf, { confirm: "Make a new secret? The old one keeps signing for 24 hours." })}
  <a class="button" href="/admin/deliveries?webhook_id=${webhook.id}">Deliveries</a>
  ${postButton(`/admin/webhooks/${webhook.id}/delete`, "Delete", csrf, { kind: "danger", confirm: `Delete ${webhook.name}? Its queued deliveries go with it.` })}
</div>
<h2>Recover a time window</h2>
<form method="post" action="/admin/webhooks/${webhook.id}/recover" class="filters" id="recover-form">
  ${csrfField(csrf)}
  <div><label for="since">Created from (UTC)</label><input type="datetime-local" id="since" name="since" required step="1" value="${localUtc(Date.now() - 24 * 3600_000)}"></div>
  <div><label for="until">until (UTC, blank: now)</label><input type="datetime-local" id="until" name="until" step="1"></div>
  <button type="submit">Send failed and dead deliveries again</button>
</form>
<p class="hint">Every failed or dead delivery of this webhook created in the window is queued again, once (one already queued stays as it is).</p>
<p class="muted">Created ${formatTime(webhook.created_at)}, updated ${formatTime(webhook.updated_at)}.</p>`}`);
}

/** A datetime-local value in UTC, to the second. */
function localUtc(time: number): string {
  return new Date(time).toISOString().slice(0, 19);
}

/** After create or rotate: the secret, once (undefined: it was shown already). */
export function secretPage(context: PageContext, webhook: { id: string; name: string }, secret: string | undefined, created: boolean): Html {
  if (secret === undefined) {
    return page("Secret", context, html`
<p>The secret of <strong>${webhook.name}</strong> was shown once and is not shown again. If it was lost, rotate it: the old one keeps signing for 24 hours.</p>
<div class="actions">
  ${postButton(`/admin/webhooks/${webhook.id}/rotate-secret`, "Rotate secret", context.csrf, { confirm: "Make a new secret? The old one keeps signing for 24 hours." })}
  <a class="button" href="/admin/webhooks/${webhook.id}">Edit ${webhook.name}</a>
</div>`);
  }
  return page(created ? "Webhook created" : "Secret rotated", context, html`
<p>${created ? html`<strong>${webhook.name}</strong> is created.` : html`<strong>${webhook.name}</strong> has a new secret; the old one keeps signing for 24 hours.`}
This is its signing secret. It is shown <strong>this once</strong>: copy it to the receiver now.</p>
<code class="secret" id="secret">${secret}</code>
<p><button type="button" data-copy="${secret}">Copy</button></p>
<p><a class="button primary" href="/admin/webhooks">Back to webhooks</a> <a class="button" href="/admin/webhooks/${webhook.id}">Edit ${webhook.name}</a></p>
<p class="hint">How a receiver checks a signature with it: "How to verify a signature" on <a href="/admin/webhooks#help-signatures">the webhooks page</a>.</p>`);
}
