import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Pool } from "../db/pool.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { asOrganization } from "./organization-transaction.js";
import {
  Attempt, DeliveriesQuery, Delivery, DeliveryList, DeliveryWithAttempts, ErrorBody, IdParams, RecoverBody, ReplayAnswer,
} from "./schemas.js";

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string | null;
  state: z.infer<typeof Delivery>["status"];
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  created_at: Date;
  completed_at: Date | null;
  created_at_key: string;
}

/** A delivery as listed: newest first, its event's type read by id (one probe per row). */
const SELECTED = `d.id, d.webhook_id, d.event_id,
                  (select e.event_type from webhooks.events e where e.id = d.event_id limit 1) as event_type,
                  d.state, d.attempts, d.last_status, d.last_error, d.next_attempt_at, d.created_at, d.completed_at,
                  d.created_at::text as created_at_key`;

function toDelivery(row: DeliveryRow): z.infer<typeof Delivery> {
  return {
    id: row.id,
    webhook_id: row.webhook_id,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.state,
    attempt_count: row.attempts,
    last_status: row.last_status,
    last_error: row.last_error,
    next_attempt_at: row.next_attempt_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
  };
}

/**
 * Deliveries (README "API and admin page"): lists newest first by keyset cursor, one with its
 * attempts (request and response of each, from webhook_logs), replay, and recovery of a window.
 * Each request runs as its key's organization (organization-transaction.ts).
 */
export function deliveryRoutes(pool: Pool): FastifyPluginAsyncZod {
  return async (app) => {
    const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };

    const list = async (organizationId: string, webhookId: string | null, query: z.infer<typeof DeliveriesQuery>) => {
      const [at, id] = decodeCursor(query.cursor);
      const rows = await asOrganization(pool, organizationId, async (client) =>
        (await client.query<DeliveryRow>(
          `select ${SELECTED} from webhooks.deliveries d
            where ($1::uuid is null or d.webhook_id = $1)
              and ($2::text is null or d.state = $2)
              and ($3::text is null or d.event_id in (select e.id from webhooks.events e
                                                       where e.event_type = $3 and e.organization_id = d.organization_id))
              and ($4::timestamptz is null or (d.created_at, d.id) < ($4::timestamptz, $5::uuid))
            order by d.created_at desc, d.id desc limit $6`,
          [webhookId, query.status ?? null, query.event_type ?? null, at, id, query.limit + 1])).rows);
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return { data: page.map(toDelivery), next_cursor: rows.length > page.length && last ? encodeCursor(last.created_at_key, last.id) : null };
    };

    app.get("/webhooks/deliveries", { schema: { tags: ["deliveries"], summary: "Deliveries of every webhook, newest first", querystring: DeliveriesQuery, response: { 200: DeliveryList, ...errors } } },
      (request) => list(request.organizationId, null, request.query));

    app.get("/webhooks/:id/deliveries", { schema: { tags: ["deliveries"], summary: "Deliveries of one webhook, newest first", params: IdParams, querystring: DeliveriesQuery, response: { 200: DeliveryList, ...errors } } },
      async (request, reply) => {
        const known = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query("select 1 from webhooks.webhook_configurations where id = $1", [request.params.id])).rowCount);
        if (!known) return reply.code(404).send({ error: `no webhook ${request.params.id}` });
        return list(request.organizationId, request.params.id, request.query);
      });

    app.get("/deliveries/:id", { schema: { tags: ["deliveries"], summary: "One delivery with each attempt's request and response", params: IdParams, response: { 200: DeliveryWithAttempts, ...errors } } },
      async (request, reply) => {
        const found = await asOrganization(pool, request.organizationId, async (client) => {
          const delivery = (await client.query<DeliveryRow>(`select ${SELECTED} from webhooks.deliveries d where d.id = $1`, [request.params.id])).rows[0];
          if (!delivery) return undefined;
          const { rows: attempts } = await client.query<z.infer<typeof Attempt> & { created_at: Date }>(
            `select attempt, created_at, url, success, duration_ms, error, request_headers, request_body,
                    response_status, response_headers, response_body
               from webhooks.webhook_logs where delivery_id = $1 order by attempt, id`,
            [request.params.id]);
          return { delivery, attempts };
        });
        if (!found) return reply.code(404).send({ error: `no delivery ${request.params.id}` });
        return {
          ...toDelivery(found.delivery),
          attempts: found.attempts.map((attempt) => ({ ...attempt, created_at: new Date(attempt.created_at).toISOString() })),
        };
      });

    app.post("/deliveries/:id/replay", { schema: { tags: ["deliveries"], summary: "Send a delivery again (its attempt numbers continue)", params: IdParams, response: { 202: ReplayAnswer, ...errors } } },
      async (request, reply) => {
        const status = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<{ status: z.infer<typeof ReplayAnswer>["status"] }>("select webhooks.replay($1) as status", [request.params.id])).rows[0]!.status);
        return reply.code(202).send({ status });
      });

    app.post("/webhooks/:id/recover", { schema: { tags: ["deliveries"], summary: "Send again every failed or dead delivery of this webhook created in a window", params: IdParams, body: RecoverBody, response: { 202: z.object({ queued: z.number().int() }), ...errors } } },
      async (request, reply) => {
        const queued = await asOrganization(pool, request.organizationId, async (client) =>
          (await client.query<{ queued: number }>("select webhooks.recover($1, $2, coalesce($3::timestamptz, now())) as queued",
            [request.params.id, request.body.since, request.body.until ?? null])).rows[0]!.queued);
        return reply.code(202).send({ queued });
      });
  };
}
