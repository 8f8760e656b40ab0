/**
 * The fan-out statement, built here and nowhere else (pure: unit-tested without a database).
 *
 * One statement moves outbox rows into webhooks.events and creates one delivery and one queue
 * row per matching endpoint. Postgres builds each payload from the row's jsonb
 * (webhooks._event_body), so the bytes stored, signed and sent are exactly the row's values: no
 * JavaScript parse or stringify, no number rounded through a double, no nesting limit of ours.
 * `for update skip locked` lets several daemons fan out side by side without taking an event twice.
 */

/** A payload over 256 KiB is not sent; its deliveries log why (README, Isolation). */
export const MAX_PAYLOAD_BYTES = 256 * 1024;

/** Which outbox rows a fan-out takes: the oldest `limit`, or exactly `ids` (when isolating a failure). */
export type OutboxSelection = { limit: number } | { ids: number[] };

export interface Statement {
  name?: string;
  text: string;
  values: unknown[];
}

const TAKE_OLDEST = "select id from webhooks.outbox order by id limit $1 for update skip locked";
const TAKE_IDS = "select id from webhooks.outbox where id = any ($1::bigint[]) order by id for update skip locked";

/** The captured row's columns, as the payload functions take them. */
const PAYLOAD_ARGUMENTS = "j.event_id, j.event_type, j.occurred_at, j.organization_id";

export function fanOutStatement(selection: OutboxSelection): Statement {
  const byIds = "ids" in selection;
  return {
    // Named: parsed and planned once per connection.
    name: byIds ? "pg-webhooks:fan-out-ids" : "pg-webhooks:fan-out",
    text: `with taken as (
       -- = any (array(…)): one primary-key probe per row taken, never a scan of the whole outbox.
       delete from webhooks.outbox
        where id = any (array(${byIds ? TAKE_IDS : TAKE_OLDEST}))
       returning id as outbox_id, event_id, organization_id, event_type, data, old_data, occurred_at, webhook_id, oversized_bytes
     ), built as (
       select t.*, webhooks._payload_event_id(t.event_id) as id,
              webhooks._event_body(t.event_id, t.event_type, t.occurred_at, t.organization_id, t.data, t.old_data) as body
         from taken t
     ), judged as (
       select b.*,
              case when b.oversized_bytes is not null
                     then format('the captured row is %s bytes as jsonb, over the 8 MiB capture limit; not sent', b.oversized_bytes)
                   when octet_length(b.body) > ${MAX_PAYLOAD_BYTES}
                     then format('payload of %s bytes exceeds the 256 KiB limit; not sent', octet_length(b.body))
              end as not_sent_reason
         from built b
     ), event as (
       -- dispatched_at is now(), like the delivery's created_at (below): the queue row carries
       -- both, its event's and its delivery's partition keys.
       insert into webhooks.events (id, organization_id, event_type, body, occurred_at, webhook_id, not_sent_reason, dispatched_at)
       -- An event that is not sent keeps only its row's id: the log stays small whatever was written.
       select j.id, j.organization_id, j.event_type,
              case when j.not_sent_reason is null then j.body
                   else webhooks._event_body(${PAYLOAD_ARGUMENTS}, jsonb_build_object('id', j.data->'id'), null) end,
              j.occurred_at, j.webhook_id, j.not_sent_reason, now()
         from judged j
     ), target as (
       -- Each matching endpoint's delivery, its id made here: the delivery and its queue row are
       -- inserted from this one list. A fifo endpoint's delivery gets its lane (data.id).
       select gen_random_uuid() as delivery_id, j.organization_id, j.id as event_id, config.id as webhook_id, j.outbox_id,
              case when config.ordering = 'fifo' then webhooks._lane(j.data) end as lane
         from judged j
         join webhooks.webhook_configurations config
           on config.organization_id = j.organization_id
          and case
                when j.webhook_id is not null then config.id = j.webhook_id
                else config.is_active
                     and (config.events @> array[j.event_type] or '*' = any (config.events))
                     and j.event_type <> 'webhook.test'
                     and (config.filter is null
                          or webhooks._event_payload(${PAYLOAD_ARGUMENTS}, j.data, j.old_data) @> config.filter)
              end
     ), delivery as (
       insert into webhooks.deliveries (id, organization_id, event_id, webhook_id, created_at)
       select t.delivery_id, t.organization_id, t.event_id, t.webhook_id, now() from target t
     ), queued as (
       -- lane_position: the outbox row's id, the commit order of one row's writes (sql/000021).
       -- A fifo delivery with an earlier one of its lane queued (or earlier in this batch) waits
       -- at 'infinity', out of the claims' way, until the one before it ends (record-statement.ts).
       insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, delivery_created_at, event_dispatched_at,
                                            lane, lane_position, due_at)
       select t.delivery_id, t.webhook_id, t.organization_id, now(), now(), t.lane, t.outbox_id,
              case when t.lane is not null
                    and (row_number() over (partition by t.webhook_id, t.lane order by t.outbox_id) > 1
                         or exists (select 1 from webhooks.delivery_queue w
                                     where w.webhook_id = t.webhook_id and w.lane = t.lane and w.lane_position < t.outbox_id))
                   then 'infinity'::timestamptz else now() end
         from target t
       returning 1
     )
     select (select count(*) from judged)::int as events, (select count(*) from queued)::int as deliveries`,
    values: [byIds ? selection.ids : selection.limit],
  };
}

/** The ids a fan-out of the oldest `limit` would take (read without locking, to isolate a failure). */
export function oldestOutboxIdsStatement(limit: number): Statement {
  return { text: "select id from webhooks.outbox order by id limit $1", values: [limit] };
}

/** Moves one outbox row that the fan-out cannot process into webhooks.outbox_set_aside. */
export function setAsideStatement(id: number, error: string): Statement {
  return {
    text: `with moved as (delete from webhooks.outbox where id = $1 returning *)
     insert into webhooks.outbox_set_aside (id, event_id, organization_id, event_type, data, old_data, occurred_at,
                                            webhook_id, oversized_bytes, error)
     select id, event_id, organization_id, event_type, data, old_data, occurred_at, webhook_id, oversized_bytes, $2
       from moved
     returning event_id`,
    values: [id, error],
  };
}
