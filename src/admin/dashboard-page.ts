import type { Pool } from "../db/pool.js";
import { attemptOutcome, endpointState } from "./badges.js";
import { ATTEMPTS_SAMPLED, readDashboard } from "./dashboard-stats.js";
import { html, type Html } from "./html.js";
import { formatTime, page, type PageContext } from "./layout.js";

const ms = (value: number | null) => (value === null ? "–" : `${Math.round(value)} ms`);
const rate = (attempts: number, failed: number) => (attempts === 0 ? "–" : `${((100 * (attempts - failed)) / attempts).toFixed(1)} %`);

/** /admin: each endpoint's state, success rate and latency over the last 24 hours, and the latest failures. */
export async function dashboardPage(pool: Pool, organizationId: string, context: PageContext): Promise<Html> {
  const { endpoints, failures } = await readDashboard(pool, organizationId);
  const attempts = endpoints.reduce((sum, e) => sum + e.attempts, 0);
  const failed = endpoints.reduce((sum, e) => sum + e.failed, 0);
  return page("Dashboard", context, html`
<div class="cards">
  <div class="card">Endpoints<b>${endpoints.length}</b></div>
  <div class="card">Attempts, 24 h<b>${attempts}${attempts >= ATTEMPTS_SAMPLED && "+"}</b></div>
  <div class="card">Success rate, 24 h<b>${rate(attempts, failed)}</b></div>
  <div class="card">Failed attempts, 24 h<b>${failed}</b></div>
</div>
<h2>Endpoints, last 24 hours</h2>
${attempts >= ATTEMPTS_SAMPLED && html`<p class="hint">Figures from the latest ${ATTEMPTS_SAMPLED} attempts.</p>`}
${endpoints.length === 0
    ? html`<p class="muted">No webhooks yet. <a href="/admin/webhooks/new">Create one</a>.</p>`
    : html`<div class="table"><table id="endpoints">
  <thead><tr><th>Endpoint</th><th>State</th><th class="num">Attempts</th><th class="num">Success</th><th class="num">p50</th><th class="num">p95</th><th></th></tr></thead>
  <tbody>${endpoints.map((e) => html`<tr>
    <td><a href="/admin/webhooks/${e.webhook_id}">${e.name}</a><div class="muted url hide-narrow">${e.url}</div></td>
    <td>${endpointState(e)}</td>
    <td class="num">${e.attempts}</td>
    <td class="num">${rate(e.attempts, e.failed)}</td>
    <td class="num">${ms(e.p50_ms)}</td>
    <td class="num">${ms(e.p95_ms)}</td>
    <td><a href="/admin/deliveries?webhook_id=${e.webhook_id}">Deliveries</a></td>
  </tr>`)}</tbody></table></div>`}
<h2>Recent failures</h2>
${failures.length === 0
    ? html`<p class="muted">No failed attempt in the last 24 hours.</p>`
    : html`<div class="table"><table id="failures">
  <thead><tr><th>When</th><th>Endpoint</th><th>Event</th><th class="num">Attempt</th><th>Outcome</th></tr></thead>
  <tbody>${failures.map((f) => html`<tr>
    <td><a href="/admin/deliveries/${f.delivery_id}">${formatTime(f.created_at)}</a></td>
    <td>${f.name}</td><td><code>${f.event_type}</code></td><td class="num">${f.attempt}</td>
    <td>${attemptOutcome(f)}</td>
  </tr>`)}</tbody></table></div>`}`);
}
