import type { PoolClient } from "pg";
import { withTransaction, type Pool } from "../db/pool.js";

/**
 * Runs `work` in a transaction that acts as the application role (`webhooks_app`) of one
 * organization: row-level security, not route code, keeps each request to its organization's
 * rows (README "API and admin page"). The daemon's login may take the role: a superuser, or a
 * member of webhooks_dispatcher (sql/000018 grants it webhooks_app, without its privileges).
 */
export function asOrganization<T>(pool: Pool, organizationId: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, async (client) => {
    await client.query("set local role webhooks_app");
    await client.query("select set_config('app.organization_id', $1, true)", [organizationId]);
    return work(client);
  });
}
