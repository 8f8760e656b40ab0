import { html, type Html } from "./html.js";
import { formatTime } from "./layout.js";

/** An endpoint's state as a badge: active, paused, inactive, disabled (with why) or failing. */
export function endpointState(endpoint: { is_active: boolean; paused: boolean; disabled_reason: string | null; failing_since: Date | string | null }): Html {
  if (!endpoint.is_active) {
    return endpoint.disabled_reason
      ? html`<span class="badge bad" title="${endpoint.disabled_reason}">disabled</span>`
      : html`<span class="badge">inactive</span>`;
  }
  if (endpoint.paused) return html`<span class="badge warn">paused</span>`;
  if (endpoint.failing_since) return html`<span class="badge bad" title="failing since ${formatTime(endpoint.failing_since)}">failing</span>`;
  return html`<span class="badge ok">active</span>`;
}

/** An attempt's outcome as a badge: its HTTP status, or its error when no response came. */
export function attemptOutcome(attempt: { response_status: number | null; error: string | null; success?: boolean }): Html {
  const label = attempt.response_status === null ? (attempt.error ?? "no response") : String(attempt.response_status);
  const good = attempt.success ?? (attempt.response_status !== null && attempt.response_status < 300);
  return html`<span class="badge ${good ? "ok" : "bad"}">${label.length > 60 ? `${label.slice(0, 60)}…` : label}</span>`;
}
