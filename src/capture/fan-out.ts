import { withTransaction, type Pool } from "../db/pool.js";
import { serializePayload } from "./payload.js";

/** graphile-worker task that delivers one (event, endpoint) pair. */
export const DELIVER_TASK = "webhooks.deliver";

export interface FanOutResult {
  events: number;
  deliveries: number;
}

interface OutboxRow {
  event_id: string;
  organization_id: string;
  event_type: string;
  data: Record<string, unknown>;
  old_data: Record<string, unknown> | null;
  occurred_at: Date;
  webhook_id: string | null;
}

/** A cheap check (one primary-key probe) before a fan-out transaction. */
export async function outboxHasEvents(pool: Pool): Promise<boolean> {
  const { rowCount } = await pool.query({ name: "pg-webhooks:outbox-has-events", text: "select 1 from webhooks.outbox order by id limit 1" });
  return (rowCount ?? 0) > 0;
}

/**
 * Moves up to `limit` outbox rows into webhooks.events and creates one delivery and one job per
 * matching active endpoint, all in one transaction. `for update skip locked` lets several
 * daemons fan out side by side without ever taking the same event twice.
 */
export async function fanOut(pool: Pool, limit: number): Promise<FanOutResult> {
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<OutboxRow>({
      name: "pg-webhooks:take-outbox",
      text: `delete from webhooks.outbox
        where id in (select id from webhooks.outbox order by id limit $1 for update skip locked)
       returning event_id, organization_id, event_type, data, old_data, occurred_at, webhook_id`,
      values: [limit],
    });
    if (rows.length === 0) return { events: 0, deliveries: 0 };

    const ids: string[] = [];
    const bodies: string[] = [];
    for (const row of rows) {
      const { id, body } = serializePayload({
        eventId: row.event_id,
        organizationId: row.organization_id,
        eventType: row.event_type,
        data: row.data,
        oldData: row.old_data,
        occurredAt: row.occurred_at,
      });
      ids.push(id);
      bodies.push(body);
    }
    const { rows: result } = await client.query<{ deliveries: number }>({
      name: "pg-webhooks:fan-out",
      text: `with event as (
         insert into webhooks.events (id, organization_id, event_type, body, occurred_at, webhook_id)
         -- The bodies travel as one JSON array of strings (one native JSON.stringify per batch, not
         -- an escaped array literal of JSON texts); ROWS FROM zips the columns by position.
         select * from rows from (unnest($1::text[]), unnest($2::uuid[]), unnest($3::text[]),
                json_array_elements_text($4::json), unnest($5::timestamptz[]), unnest($6::uuid[]))
         returning id, organization_id, event_type, body, webhook_id
       ), delivery as (
         insert into webhooks.deliveries (organization_id, event_id, webhook_id)
         select event.organization_id, event.id, config.id
           from event
           join webhooks.webhook_configurations config
             on config.organization_id = event.organization_id
            and case
                  when event.webhook_id is not null then config.id = event.webhook_id
                  else config.is_active
                       and (config.events @> array[event.event_type] or '*' = any (config.events))
                       and event.event_type <> 'webhook.test'
                       and (config.filter is null or event.body::jsonb @> config.filter)
                end
         returning id
       )
       select count(*)::int as deliveries
         from graphile_worker.add_jobs(array(
           select row($7, json_build_object('deliveryId', delivery.id), null, null, null, null, null, null)::graphile_worker.job_spec
             from delivery))`,
      values: [
        ids,
        rows.map((row) => row.organization_id),
        rows.map((row) => row.event_type),
        JSON.stringify(bodies),
        rows.map((row) => row.occurred_at),
        rows.map((row) => row.webhook_id),
        DELIVER_TASK,
      ],
    });
    return { events: rows.length, deliveries: result[0]?.deliveries ?? 0 };
  });
}
