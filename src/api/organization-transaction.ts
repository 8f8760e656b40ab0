import type { PoolClient } from "pg";
import { withTransaction, type Pool } from "../db/pool.js";
import { ConcurrencyLimit } from "../util/concurrency-limit.js";

/** What one request of the API or the admin page may take: its statements stop after this. */
export const REQUEST_STATEMENT_TIMEOUT_MS = 5000;

/**
 * The management API's and the admin page's transactions at once, per daemon and per
 * organization (and how many may wait their turn): delivery keeps the rest of the pool whatever
 * clients send, and one organization's slow requests leave room for the others' (README "API and
 * admin page").
 */
const limits = new WeakMap<Pool, { all: ConcurrencyLimit; organizations: Map<string, ConcurrencyLimit> }>();
const RUNNING = 8;
const WAITING = 200;
const RUNNING_PER_ORGANIZATION = 2;
const WAITING_PER_ORGANIZATION = 20;

/**
 * Runs `work` in a transaction that acts as the application role (`webhooks_app`) of one
 * organization: row-level security, not route code, keeps each request to its organization's
 * rows (README "API and admin page"). The daemon's login may take the role: a superuser, or a
 * member of webhooks_dispatcher (sql/000018 grants it webhooks_app, without its privileges).
 * Each statement may run REQUEST_STATEMENT_TIMEOUT_MS (then 57014: a 503 to the client); beyond
 * the limits above a request is refused at once (OverCapacityError: 503).
 */
export function asOrganization<T>(pool: Pool, organizationId: string, work: (client: PoolClient) => Promise<T>): Promise<T> {
  let shared = limits.get(pool);
  if (!shared) limits.set(pool, (shared = { all: new ConcurrencyLimit("the management API", RUNNING, WAITING), organizations: new Map() }));
  const { all, organizations } = shared;
  let own = organizations.get(organizationId);
  if (!own) organizations.set(organizationId, (own = new ConcurrencyLimit("this organization's requests", RUNNING_PER_ORGANIZATION, WAITING_PER_ORGANIZATION)));
  const mine = own;
  return mine
    .run(() =>
      all.run(() =>
        withTransaction(pool, async (client) => {
          await client.query(`set local role webhooks_app; set local statement_timeout = ${REQUEST_STATEMENT_TIMEOUT_MS}`);
          await client.query("select set_config('app.organization_id', $1, true)", [organizationId]);
          return work(client);
        })))
    .finally(() => {
      if (mine.idle && organizations.get(organizationId) === mine) organizations.delete(organizationId);
    });
}
