import { randomUUID } from "node:crypto";
import type { WebhookLog } from "../../src/db/database.js";
import type { Pool } from "../../src/db/pool.js";
import type { ReceivedRequest, Receiver } from "./receiver.js";

export async function createOrganization(pool: Pool, name = "Acme"): Promise<string> {
  const { rows } = await pool.query<{ id: string }>("insert into organizations (name) values ($1) returning id", [name]);
  return rows[0]!.id;
}

/** A contact.created event row as the daemon writes it (superuser seeding, no capture involved); returns its id. */
export async function createEvent(pool: Pool, organizationId: string): Promise<string> {
  const eventId = `evt_${randomUUID().replace(/-/g, "")}`;
  await pool.query(
    `insert into webhooks.events (id, organization_id, event_type, body, occurred_at) values ($1, $2, 'contact.created', '{}', now())`,
    [eventId, organizationId],
  );
  return eventId;
}

export interface WebhookRow {
  id: string;
  secret: string;
}

export async function createWebhook(
  pool: Pool,
  values: { organizationId: string; url: string; events?: string[] } & Record<string, unknown>,
): Promise<WebhookRow> {
  const { organizationId, url, events = ["*"], ...rest } = values;
  const columns = ["organization_id", "name", "url", "events", ...Object.keys(rest)];
  const params = [organizationId, "test hook", url, events, ...Object.values(rest)];
  const { rows } = await pool.query<WebhookRow>(
    `insert into webhooks.webhook_configurations (${columns.join(", ")})
     values (${columns.map((_, i) => `$${i + 1}`).join(", ")}) returning id, secret`,
    params,
  );
  return rows[0]!;
}

/** A webhook_logs row as a test reads it (src/db/database.ts declares it once). */
export type LogRow = WebhookLog;

export async function logs(pool: Pool): Promise<LogRow[]> {
  return (await pool.query<LogRow>("select * from webhooks.webhook_logs order by id")).rows;
}

/**
 * A fresh organization with one endpoint on `receiver`, on a path of its own, so a test reads only
 * its own requests.
 */
export async function organizationWithEndpoint(pool: Pool, receiver: Receiver, values: Record<string, unknown> = {}) {
  const org = await createOrganization(pool);
  const url = new URL(receiver.url);
  url.pathname = `/hook/${org}`;
  const hook = await createWebhook(pool, { organizationId: org, url: url.toString(), ...values });
  const requests = (): ReceivedRequest[] => receiver.requests.filter((r) => r.path === url.pathname);
  return { org, hook, requests };
}

/** A new API key of the organization (pgwh_…), as `pg-webhooks api-key create` makes one. */
export async function createApiKey(pool: Pool, organizationId: string, name = "test key"): Promise<string> {
  return (await pool.query<{ key: string }>("select webhooks.create_api_key($1, $2) as key", [organizationId, name])).rows[0]!.key;
}
