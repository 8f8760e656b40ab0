import type { PoolClient } from "pg";
import type { z } from "zod";
import type { Pool } from "../db/pool.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { asOrganization } from "./organization-transaction.js";
import type { EventType, Webhook, WebhookCreate, WebhookUpdate, WebhookWithSecret } from "./schemas.js";

/**
 * What one organization does with its webhooks, for the API's routes and the admin page alike:
 * each call is a transaction of that organization as webhooks_app (organization-transaction.ts),
 * so another organization's webhook is simply not there (undefined, false). The database checks
 * every value; its refusals come back as errors naming the column (api-errors.ts).
 */

/** The webhook_configurations columns a client sets, by the API's field names. */
const COLUMN_OF_FIELD = {
  url: "url",
  events: "events",
  name: "name",
  max_retries: "max_retries",
  retry_base_seconds: "retry_base_seconds",
  timeout: "timeout_seconds",
  is_active: "is_active",
  paused: "paused",
  signature_scheme: "signature_scheme",
  signature_header: "signature_header",
  filter: "filter",
  headers: "headers",
  max_in_flight: "max_in_flight",
  rate_limit_per_second: "rate_limit_per_second",
  ordering: "ordering",
} as const;
type Field = keyof typeof COLUMN_OF_FIELD;

/** The columns a webhook is answered with (never previous_secret; secret only where asked). */
const SELECTED = `id, name, url, events, is_active, paused, disabled_reason, max_retries, retry_base_seconds,
                  timeout_seconds, signature_scheme, signature_header, filter, headers, max_in_flight,
                  rate_limit_per_second::float8 as rate_limit_per_second, ordering, failing_since, created_at, updated_at,
                  created_at::text as created_at_key`;

interface WebhookRow {
  id: string;
  name: string;
  url: string;
  events: string[];
  is_active: boolean;
  paused: boolean;
  disabled_reason: string | null;
  max_retries: number;
  retry_base_seconds: number;
  timeout_seconds: number;
  signature_scheme: z.infer<typeof Webhook>["signature_scheme"];
  signature_header: string;
  filter: Record<string, unknown> | null;
  headers: Record<string, string>;
  max_in_flight: number;
  rate_limit_per_second: number | null;
  ordering: "none" | "fifo";
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
  created_at_key: string;
  secret?: string;
}

export type WebhookView = z.infer<typeof Webhook>;

function toWebhook(row: WebhookRow): WebhookView {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    events: row.events,
    is_active: row.is_active,
    paused: row.paused,
    disabled_reason: row.disabled_reason,
    max_retries: row.max_retries,
    retry_base_seconds: row.retry_base_seconds,
    timeout: row.timeout_seconds,
    signature_scheme: row.signature_scheme,
    signature_header: row.signature_header,
    filter: row.filter,
    // Static headers often carry credentials: their names only.
    headers: Object.fromEntries(Object.keys(row.headers).map((name) => [name, "[redacted]"])),
    max_in_flight: row.max_in_flight,
    rate_limit_per_second: row.rate_limit_per_second,
    ordering: row.ordering,
    failing_since: row.failing_since?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** The id a payload carries for an outbox event id (webhooks._payload_event_id). */
function payloadEventId(eventId: string): string {
  return `evt_${eventId.replaceAll("-", "")}`;
}

/** A value as its column takes it: jsonb columns as JSON text, null (no filter) as SQL null. */
function columnValue(field: Field, value: unknown): unknown {
  return (field === "filter" || field === "headers") && value !== null ? JSON.stringify(value) : value;
}

async function one(client: PoolClient, text: string, values: unknown[]): Promise<WebhookRow | undefined> {
  return (await client.query<WebhookRow>(text, values)).rows[0];
}

export async function createWebhook(pool: Pool, organizationId: string, body: z.infer<typeof WebhookCreate>): Promise<z.infer<typeof WebhookWithSecret>> {
  const { description, ...given } = body;
  let host = given.url;
  try {
    host = new URL(given.url).host;
  } catch {
    // The database refuses the URL, naming it.
  }
  const values: Partial<Record<Field, unknown>> = { name: given.name ?? description ?? host, ...given };
  const fields = Object.keys(values) as Field[];
  const row = await asOrganization(pool, organizationId, (client) =>
    one(client,
      `insert into webhooks.webhook_configurations (organization_id, ${fields.map((f) => COLUMN_OF_FIELD[f]).join(", ")})
       values (webhooks.current_organization_id(), ${fields.map((_, i) => `$${i + 1}`).join(", ")})
       returning ${SELECTED}, secret`,
      fields.map((field) => columnValue(field, values[field]))));
  return { ...toWebhook(row!), secret: row!.secret! };
}

/** A page of webhooks, oldest first. */
export async function listWebhooks(pool: Pool, organizationId: string, page: { limit: number; cursor?: string | undefined }) {
  const [at, id] = decodeCursor(page.cursor);
  const rows = await asOrganization(pool, organizationId, async (client) =>
    (await client.query<WebhookRow>(
      `select ${SELECTED} from webhooks.webhook_configurations
        where $1::timestamptz is null or (created_at, id) > ($1::timestamptz, $2::uuid)
        order by created_at, id limit $3`,
      [at, id, page.limit + 1])).rows);
  const data = rows.slice(0, page.limit);
  const last = data.at(-1);
  return { data: data.map(toWebhook), next_cursor: rows.length > data.length && last ? encodeCursor(last.created_at_key, last.id) : null };
}

export async function getWebhook(pool: Pool, organizationId: string, id: string): Promise<WebhookView | undefined> {
  const row = await asOrganization(pool, organizationId, (client) =>
    one(client, `select ${SELECTED} from webhooks.webhook_configurations where id = $1`, [id]));
  return row && toWebhook(row);
}

/** Sets the given fields only; undefined when the webhook is not the organization's. */
export async function updateWebhook(pool: Pool, organizationId: string, id: string, body: z.infer<typeof WebhookUpdate>): Promise<WebhookView | undefined> {
  const fields = (Object.keys(body) as Field[]).filter((field) => (body as Record<string, unknown>)[field] !== undefined);
  if (fields.length === 0) return getWebhook(pool, organizationId, id);
  const given = body as Partial<Record<Field, unknown>>;
  const row = await asOrganization(pool, organizationId, (client) =>
    one(client,
      `update webhooks.webhook_configurations set ${fields.map((f, i) => `${COLUMN_OF_FIELD[f]} = $${i + 2}`).join(", ")}
        where id = $1 returning ${SELECTED}`,
      [id, ...fields.map((field) => columnValue(field, given[field]))]));
  return row && toWebhook(row);
}

/** True when it was the organization's and is gone (its queued deliveries with it). */
export async function deleteWebhook(pool: Pool, organizationId: string, id: string): Promise<boolean> {
  const deleted = await asOrganization(pool, organizationId, async (client) =>
    (await client.query("delete from webhooks.webhook_configurations where id = $1", [id])).rowCount);
  return Boolean(deleted);
}

/** Queues a webhook.test event to this endpoint; its payload id (evt_…). Not the organization's: P0002. */
export async function sendTestEvent(pool: Pool, organizationId: string, id: string): Promise<string> {
  const eventId = await asOrganization(pool, organizationId, async (client) =>
    (await client.query<{ id: string }>("select webhooks.send_test($1) as id", [id])).rows[0]!.id);
  return payloadEventId(eventId);
}

/** A new secret (the old one keeps signing for 24 hours). Not the organization's: P0002. */
export async function rotateSecret(pool: Pool, organizationId: string, id: string): Promise<string> {
  return asOrganization(pool, organizationId, async (client) =>
    (await client.query<{ secret: string }>("select webhooks.rotate_secret($1) as secret", [id])).rows[0]!.secret);
}

export async function listEventTypes(pool: Pool, organizationId: string): Promise<z.infer<typeof EventType>[]> {
  return asOrganization(pool, organizationId, async (client) =>
    (await client.query<z.infer<typeof EventType>>("select name, description from webhooks.event_types order by name")).rows);
}
