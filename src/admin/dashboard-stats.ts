import { asOrganization } from "../api/organization-transaction.js";
import type { Pool } from "../db/pool.js";

export interface EndpointStats {
  webhook_id: string;
  name: string;
  url: string;
  is_active: boolean;
  paused: boolean;
  disabled_reason: string | null;
  failing_since: Date | null;
  attempts: number;
  failed: number;
  p50_ms: number | null;
  p95_ms: number | null;
}

export interface RecentFailure {
  created_at: Date;
  webhook_id: string;
  name: string;
  delivery_id: string;
  event_type: string;
  attempt: number;
  response_status: number | null;
  error: string | null;
}

/** How many endpoints the dashboard lists (the rest are on /admin/webhooks). */
export const ENDPOINTS_SHOWN = 200;
/** The dashboard's figures cover the last 24 hours, and at most this many of their latest attempts. */
export const ATTEMPTS_SAMPLED = 10_000;

/**
 * The dashboard's figures, as the organization (row-level security), at a cost that does not grow
 * with its history: each endpoint's attempts, failures and p50/p95 latency over the latest
 * ATTEMPTS_SAMPLED attempts of the last 24 hours (webhook_logs' (organization_id, created_at)
 * index), and the last ten failed attempts (its partial index of failures, sql/000022).
 */
export async function readDashboard(pool: Pool, organizationId: string) {
  return asOrganization(pool, organizationId, async (client) => {
    const { rows: endpoints } = await client.query<EndpointStats>(
      `with recent as (
         select l.webhook_id, l.success, l.duration_ms from webhooks.webhook_logs l
          where l.organization_id = webhooks.current_organization_id() and l.created_at > now() - interval '24 hours'
          order by l.created_at desc limit $2
       )
       select c.id as webhook_id, c.name, c.url, c.is_active, c.paused, c.disabled_reason, c.failing_since,
              count(r.webhook_id)::int as attempts, count(r.webhook_id) filter (where not r.success)::int as failed,
              percentile_cont(0.5) within group (order by r.duration_ms) as p50_ms,
              percentile_cont(0.95) within group (order by r.duration_ms) as p95_ms
         from webhooks.webhook_configurations c
         left join recent r on r.webhook_id = c.id
        group by c.id
        order by c.created_at, c.id limit $1`,
      [ENDPOINTS_SHOWN, ATTEMPTS_SAMPLED]);
    const { rows: failures } = await client.query<RecentFailure>(
      `select l.created_at, l.webhook_id, c.name, l.delivery_id, l.event_type, l.attempt, l.response_status, l.error
         from webhooks.webhook_logs l
         join webhooks.webhook_configurations c on c.id = l.webhook_id
        where not l.success and l.created_at > now() - interval '24 hours'
          and l.organization_id = webhooks.current_organization_id()
        order by l.created_at desc limit 10`);
    return { endpoints, failures };
  });
}
