import type { z } from "zod";
import type { Pool } from "../db/pool.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { asOrganization } from "./organization-transaction.js";
import type { Attempt, DeliveriesQuery, Delivery, DeliveryWithAttempts, ReplayAnswer } from "./schemas.js";

/**
 * What one organization reads and does with its deliveries, for the API's routes and the admin
 * page alike: lists newest first by keyset cursor, one with its attempts (request and response of
 * each, from webhook_logs), replay, and recovery of a window. Each call is a transaction of that
 * organization as webhooks_app (organization-transaction.ts).
 */

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

/**
 * A delivery's event type, by the event's id and partition key: a fan-out dispatches an event and
 * creates its deliveries in one statement, so the event's dispatched_at is the delivery's
 * created_at (one probe into one partition); by id alone otherwise (null once expired).
 */
const EVENT_TYPE = `coalesce((select e.event_type from webhooks.events e where e.id = d.event_id and e.dispatched_at = d.created_at),
                              (select e.event_type from webhooks.events e where e.id = d.event_id limit 1))`;

/** A delivery as listed, from FROM: the deliveries and each one's event type. */
const SELECTED = `d.id, d.webhook_id, d.event_id, t.event_type,
                  d.state, d.attempts, d.last_status, d.last_error, d.next_attempt_at, d.created_at, d.completed_at,
                  d.created_at::text as created_at_key`;
const FROM = `webhooks.deliveries d cross join lateral (select ${EVENT_TYPE} as event_type) t`;

export type DeliveryView = z.infer<typeof Delivery>;
export type DeliveriesFilter = z.infer<typeof DeliveriesQuery>;

function toDelivery(row: DeliveryRow): DeliveryView {
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

/** A page of deliveries, newest first: of one webhook, or of all (webhookId null). */
export async function listDeliveries(pool: Pool, organizationId: string, webhookId: string | null, query: DeliveriesFilter) {
  const [at, id] = decodeCursor(query.cursor);
  const rows = await asOrganization(pool, organizationId, async (client) =>
    (await client.query<DeliveryRow>(
      // Newest first by the (organization_id | webhook_id, created_at, id) indexes (sql/000022);
      // the statement timeout bounds a filter that matches little of a long history.
      `select ${SELECTED} from ${FROM}
        where ($1::uuid is null or d.webhook_id = $1)
          and ($2::text is null or d.state = $2)
          and ($3::text is null or t.event_type = $3)
          and ($4::timestamptz is null or (d.created_at, d.id) < ($4::timestamptz, $5::uuid))
        order by d.created_at desc, d.id desc limit $6`,
      [webhookId, query.status ?? null, query.event_type ?? null, at, id, query.limit + 1])).rows);
  const page = rows.slice(0, query.limit);
  const last = page.at(-1);
  return { data: page.map(toDelivery), next_cursor: rows.length > page.length && last ? encodeCursor(last.created_at_key, last.id) : null };
}

/** One delivery with every attempt, oldest first; undefined when not the organization's. */
export async function getDelivery(pool: Pool, organizationId: string, id: string): Promise<z.infer<typeof DeliveryWithAttempts> | undefined> {
  const found = await asOrganization(pool, organizationId, async (client) => {
    const delivery = (await client.query<DeliveryRow>(`select ${SELECTED} from ${FROM} where d.id = $1`, [id])).rows[0];
    if (!delivery) return undefined;
    const { rows: attempts } = await client.query<z.infer<typeof Attempt> & { created_at: Date }>(
      `select attempt, created_at, url, success, duration_ms, error, request_headers, request_body,
              response_status, response_headers, response_body
         from webhooks.webhook_logs where delivery_id = $1 order by attempt, id`,
      [id]);
    return { delivery, attempts };
  });
  return found && {
    ...toDelivery(found.delivery),
    attempts: found.attempts.map((attempt) => ({ ...attempt, created_at: new Date(attempt.created_at).toISOString() })),
  };
}

/** Sends a delivery again (webhooks.replay). Not the organization's, or expired: P0002. */
export async function replayDelivery(pool: Pool, organizationId: string, id: string): Promise<z.infer<typeof ReplayAnswer>["status"]> {
  return asOrganization(pool, organizationId, async (client) =>
    (await client.query<{ status: z.infer<typeof ReplayAnswer>["status"] }>("select webhooks.replay($1) as status", [id])).rows[0]!.status);
}

/** Sends again every failed or dead delivery of the webhook created in [since, until ?? now); how many. */
export async function recoverWindow(pool: Pool, organizationId: string, webhookId: string, window: { since: string; until?: string | undefined }): Promise<number> {
  return asOrganization(pool, organizationId, async (client) =>
    (await client.query<{ queued: number }>("select webhooks.recover($1, $2, coalesce($3::timestamptz, now())) as queued",
      [webhookId, window.since, window.until ?? null])).rows[0]!.queued);
}
