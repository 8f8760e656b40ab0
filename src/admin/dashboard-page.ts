import { asOrganization } from "../api/organization-transaction.js";
import type { Pool } from "../db/pool.js";
import { html, type Html } from "./html.js";
import { formatTime, page, type PageContext } from "./layout.js";

interface EndpointStats {
  webhook_id: string;
  name: string;
  url: string;
  is_active: boolean;
  paused: boolean;
  disabled_reason: string | null;
  failing_since: Date | null;
  attempts_24h: number;
  failed_24h: number;
  success_rate_pct: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
}

interface Failure {
  created_at: Date;
  webhook_id: string;
  name: string;
  delivery_id: string;
  event_type: string;
  attempt: number;
  response_status: number | null;
  error: string | null;
}

/** How many endpoints the dashboard lists (an organization has at most this many in practice; the rest are on /admin/webhooks). */
const ENDPOINTS_SHOWN = 200;

/**
 * The dashboard's figures, as the organization (row-level security): each endpoint's last 24
 * hours from webhooks.webhook_stats (the index on (webhook_id, created_at) of the last one or two
 * daily partitions), and the last ten failed attempts from webhook_logs' (organization_id,
 * created_at) index.
 */
async function readDashboard(pool: Pool, organizationId: string) {
  return asOrganization(pool, organizationId, async (client) => {
    const { rows: endpoints } = await client.query<EndpointStats>(
      `select s.webhook_id, c.name, c.url, c.is_active, c.paused, c.disabled_reason, c.failing_since,
              s.attempts_24h::int as attempts_24h, s.failed_24h::int as failed_24h,
              s.success_rate_pct::float8 as success_rate_pct, s.p50_ms::float8 as p50_ms, s.p95_ms::float8 as p95_ms
         from webhooks.webhook_stats s
         join webhooks.webhook_configurations c on c.id = s.webhook_id
        order by c.created_at, c.id limit $1`,
      [ENDPOINTS_SHOWN]);
    const { rows: failures } = await client.query<Failure>(
      `select l.created_at, l.webhook_id, c.name, l.delivery_id, l.event_type, l.attempt, l.response_status, l.error
         from webhooks.webhook_logs l
         join webhooks.webhook_configurations c on c.id = l.webhook_id
        where not l.success and l.created_at > now() - interval '24 hours'
          and l.organization_id = webhooks.current_organization_id()
        order by l.created_at desc limit 10`);
    return { endpoints, failures };
  });
}

/** active / paused / inactive / disabled / failing, as a badge. */
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

const ms = (value: number | null) => (value === null ? "–" : `${Math.round(value)} ms`);

export function attemptOutcome(attempt: { response_status: number | null; error: string | null; success?: boolean }): Html {
  const label = attempt.response_status === null ? (attempt.error ?? "no response") : String(attempt.response_status);
  const good = attempt.success ?? (attempt.response_status !== null && attempt.response_status < 300);
  return html`<span class="badge ${good ? "ok" : "bad"}">${label.length > 60 ? `${label.slice(0, 60)}…` : label}</span>`;
}

export async function dashboardPage(pool: Pool, organizationId: string, context: PageContext): Promise<Html> {
  const { endpoints, failures } = await readDashboard(pool, organizationId);
  const attempts = endpoints.reduce((sum, e) => sum + e.attempts_24h, 0);
  const failed = endpoints.reduce((sum, e) => sum + e.failed_24h, 0);
  const rate = attempts === 0 ? "–" : `${(100 * (attempts - failed) / attempts).toFixed(1)} %`;
  return page("Dashboard", context, html`
<div class="cards">
  <div class="card">Endpoints<b>${endpoints.length}</b></div>
  <div class="card">Attempts, 24 h<b>${attempts}</b></div>
  <div class="card">Success rate, 24 h<b>${rate}</b></div>
  <div class="card">Failed attempts, 24 h<b>${failed}</b></div>
</div>
<h2>Endpoints, last 24 hours</h2>
${endpoints.length === 0
    ? html`<p class="muted">No webhooks yet. <a href="/admin/webhooks/new">Create one</a>.</p>`
    : html`<div class="table"><table id="endpoints">
  <thead><tr><th>Endpoint</th><th>State</th><th class="num">Attempts</th><th class="num">Success</th><th class="num">p50</th><th class="num">p95</th><th></th></tr></thead>
  <tbody>${endpoints.map((e) => html`<tr>
    <td><a href="/admin/webhooks/${e.webhook_id}">${e.name}</a><div class="muted url hide-narrow">${e.url}</div></td>
    <td>${endpointState(e)}</td>
    <td class="num">${e.attempts_24h}</td>
    <td class="num">${e.success_rate_pct === null ? "–" : `${e.success_rate_pct.toFixed(1)} %`}</td>
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
