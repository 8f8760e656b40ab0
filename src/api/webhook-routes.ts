import type { PoolClient } from "pg";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Pool } from "../db/pool.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { asOrganization } from "./organization-transaction.js";
import { ErrorBody, EventType, IdParams, ListQuery, Webhook, WebhookCreate, WebhookList, WebhookUpdate, WebhookWithSecret } from "./schemas.js";

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
} as const;
type Field = keyof typeof COLUMN_OF_FIELD;

/** The columns a webhook is answered with (never previous_secret; secret only where asked). */
const SELECTED = `id, name, url, events, is_active, paused, disabled_reason, max_retries, retry_base_seconds,
                  timeout_seconds, signature_scheme, signature_header, filter, headers, max_in_flight,
                  rate_limit_per_second::float8 as rate_limit_per_second, failing_since, created_at, updated_at,
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
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
  created_at_key: string;
  secret?: string;
}

function toWebhook(row: WebhookRow): z.infer<typeof Webhook> {
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
    failing_since: row.failing_since?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** The id a payload carries for an outbox event id (webhooks._payload_event_id). */
function payloadEventId(eventId: string): string {
  return `evt_${eventId.replaceAll("-", "")}`;
}

async function one(client: PoolClient, text: string, values: unknown[]): Promise<WebhookRow | undefined> {
  return (await client.query<WebhookRow>(text, values)).rows[0];
}

const notFound = (id: string) => ({ error: `no webhook ${id}` });

/**
 * /api/v1/webhooks (README "API and admin page"): each request in a transaction of its key's
 * organization as webhooks_app (organization-transaction.ts), so another organization's webhook
 * is simply not there: 404.
 */
export function webhookRoutes(pool: Pool): FastifyPluginAsyncZod {
  return async (app) => {
    const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

    app.post("/webhooks", { schema: { tags: ["webhooks"], summary: "Create a webhook; the answer has its secret (shown now and on rotate only)", body: WebhookCreate, response: { 201: WebhookWithSecret, ...errors } } },
      async (request, reply) => {
        const { description, ...given } = request.body;
        let host = given.url;
        try {
          host = new URL(given.url).host;
        } catch {
          // The database refuses the URL, naming it.
        }
        const values: Partial<Record<Field, unknown>> = { name: given.name ?? description ?? host, ...given };
        const fields = Object.keys(values) as Field[];
        const row = await asOrganization(pool, request.organizationId, (client) =>
          one(client,
            `insert into webhooks.webhook_configurations (organization_id, ${fields.map((f) => COLUMN_OF_FIELD[f]).join(", ")})
             values (webhooks.current_organization_id(), ${fields.map((_, i) => `$${i + 1}`).join(", ")})
             returning ${SELECTED}, secret`,
            fields.map((field) => (field === "filter" || field === "headers" ? JSON.stringify(values[field]) : values[field]))));
        return reply.code(201).send({ ...toWebhook(row!), secret: row!.secret! });
      });

    app.get("/webhooks", { schema: { tags: ["webhooks"], summary: "List webhooks, oldest first", querystring: ListQuery, response: { 200: WebhookList, ...errors } } },
      async (request) => {
        const [at, id] = decodeCursor(request.query.cursor);
        const rows = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<WebhookRow>(
            `select ${SELECTED} from webhooks.webhook_configurations
              where $1::timestamptz is null or (created_at, id) > ($1::timestamptz, $2::uuid)
              order by created_at, id limit $3`,
            [at, id, request.query.limit + 1])).rows);
        const page = rows.slice(0, request.query.limit);
        const last = page.at(-1);
        return { data: page.map(toWebhook), next_cursor: rows.length > page.length && last ? encodeCursor(last.created_at_key, last.id) : null };
      });

    app.get("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "One webhook", params: IdParams, response: { 200: Webhook, ...errors } } },
      async (request, reply) => {
        const row = await asOrganization(pool, request.organizationId, (client) =>
          one(client, `select ${SELECTED} from webhooks.webhook_configurations where id = $1`, [request.params.id]));
        return row ? toWebhook(row) : reply.code(404).send(notFound(request.params.id));
      });

    app.patch("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "Change some of a webhook's settings", params: IdParams, body: WebhookUpdate, response: { 200: Webhook, ...errors } } },
      async (request, reply) => {
        const fields = Object.keys(request.body) as Field[];
        const body = request.body as Partial<Record<Field, unknown>>;
        const row = await asOrganization(pool, request.organizationId, (client) =>
          fields.length === 0
            ? one(client, `select ${SELECTED} from webhooks.webhook_configurations where id = $1`, [request.params.id])
            : one(client,
                `update webhooks.webhook_configurations set ${fields.map((f, i) => `${COLUMN_OF_FIELD[f]} = $${i + 2}`).join(", ")}
                  where id = $1 returning ${SELECTED}`,
                [request.params.id, ...fields.map((field) => (field === "filter" || field === "headers" ? JSON.stringify(body[field]) : body[field]))]));
        return row ? toWebhook(row) : reply.code(404).send(notFound(request.params.id));
      });

    app.delete("/webhooks/:id", { schema: { tags: ["webhooks"], summary: "Delete a webhook (its queued deliveries go with it)", params: IdParams, response: { 204: z.null(), ...errors } } },
      async (request, reply) => {
        const deleted = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query("delete from webhooks.webhook_configurations where id = $1", [request.params.id])).rowCount);
        return deleted ? reply.code(204).send(null) : reply.code(404).send(notFound(request.params.id));
      });

    app.post("/webhooks/:id/test", { schema: { tags: ["webhooks"], summary: "Send a webhook.test event to this endpoint", params: IdParams, response: { 202: z.object({ event_id: z.string() }), ...errors } } },
      async (request, reply) => {
        const eventId = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<{ id: string }>("select webhooks.send_test($1) as id", [request.params.id])).rows[0]!.id);
        return reply.code(202).send({ event_id: payloadEventId(eventId) });
      });

    app.post("/webhooks/:id/rotate-secret", { schema: { tags: ["webhooks"], summary: "A new secret; the old one keeps signing for 24 hours", params: IdParams, response: { 200: z.object({ secret: z.string() }), ...errors } } },
      async (request) => {
        const secret = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<{ secret: string }>("select webhooks.rotate_secret($1) as secret", [request.params.id])).rows[0]!.secret);
        return { secret };
      });

    app.get("/event-types", { schema: { tags: ["event types"], summary: "The event types a webhook may subscribe to", response: { 200: z.object({ data: z.array(EventType) }), ...errors } } },
      async (request) => ({
        data: await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<z.infer<typeof EventType>>("select name, description from webhooks.event_types order by name")).rows),
      }));
  };
}
