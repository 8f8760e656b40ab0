-- Ordered delivery lanes (README "Ordered delivery"): webhook_configurations.ordering = 'fifo'
-- sends the deliveries that concern one resource (the payload's data.id) one at a time, in the
-- order their writes committed; the next waits until the previous one succeeded or is dead.
--
-- The order: a captured write's outbox row takes its id (an identity, cache 1) in the row
-- trigger, after the writer got the row's lock; a later write of the same row waits for that lock
-- until the earlier one committed, so its id is larger, and the earlier outbox row was visible
-- before the later one existed. Each queue row keeps its outbox row's id as lane_position. Fan-out
-- daemons run side by side, so the delivery of a later write may be queued before that of an
-- earlier one is: a fifo delivery is claimed only when no outbox row with a smaller id is left
-- (every write that committed before it has been fanned out) and no delivery of its lane has a
-- smaller position (claim-statement.ts).
--
-- Cost: a queue row that waits behind its lane's head is due at 'infinity', so claims never scan
-- it (the head's end makes the next one due: record-statement.ts); `none` endpoints' rows carry a
-- position and no lane, and are indexed as before.

alter table webhooks.webhook_configurations add column ordering text not null default 'none';
comment on column webhooks.webhook_configurations.ordering is
  'none, or fifo: deliveries concerning one resource (payload data.id; events without one share one lane) are attempted one at a time, in commit order; the next waits until the previous succeeded or is dead.';

create function webhooks._validate_ordering() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if new.ordering is null or new.ordering not in ('none', 'fifo') then
    perform webhooks._refuse('ordering', 'must be none or fifo');
  end if;
  return new;
end
$$;
comment on function webhooks._validate_ordering() is 'Private trigger: validates ordering, naming the column.';
create trigger validate_ordering before insert or update of ordering on webhooks.webhook_configurations
  for each row execute function webhooks._validate_ordering();

alter table webhooks.delivery_queue
  add column lane text,
  -- The daemon always sets it; 0 only for rows queued before this migration (they go first).
  add column lane_position bigint not null default 0;
comment on column webhooks.delivery_queue.lane is
  'A fifo endpoint''s lane: the payload''s data.id (an md5 of it when longer than 200 characters; '''' without one). Null for none endpoints.';
comment on column webhooks.delivery_queue.lane_position is
  'The order within a lane: the id of the event''s outbox row (commit order for writes of one row), or a later value for a replay.';
create index delivery_queue_lanes on webhooks.delivery_queue (webhook_id, lane, lane_position) where lane is not null;

-- A lane's key, from a payload's data: bounded, whatever a tenant put in its id.
create function webhooks._lane(data jsonb) returns text
language sql immutable set search_path = pg_catalog, pg_temp as $$
  select case
           when data -> 'id' is null or jsonb_typeof(data -> 'id') = 'null' then ''
           when length(data ->> 'id') <= 200 then data ->> 'id'
           else 'md5:' || md5(data ->> 'id')
         end
$$;
comment on function webhooks._lane(jsonb) is 'Private: the fifo lane of an event, from its payload''s data.';

-- The next position for a replayed delivery: after every write captured so far, so a replay
-- never jumps ahead of a later delivery still queued in its lane.
create function webhooks._next_lane_position() returns bigint
language sql volatile set search_path = pg_catalog, pg_temp as $$
  select nextval(pg_get_serial_sequence('webhooks.outbox', 'id'))
$$;
comment on function webhooks._next_lane_position() is 'Private: a lane position after every outbox row taken so far.';

-- A replay or recovery queues a delivery with both partition keys, a new lane position, its lane
-- (fifo endpoints) and, behind a waiting lane, due at 'infinity'; a delivery whose event has
-- expired is not queued (it could not be sent).
create or replace function webhooks._requeue(delivery_ids uuid[]) returns integer
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  queued int;
begin
  -- The queue row first (its primary key decides between concurrent replays; the loser waits
  -- for the winner's commit and inserts nothing), then the delivery: the order the daemon's
  -- record statement locks them in. Positions follow the deliveries' creation.
  with chosen as (
    select d.id, d.webhook_id, d.organization_id, d.attempts, d.created_at, e.dispatched_at,
           case when c.ordering = 'fifo' then webhooks._lane((e.body::jsonb) -> 'data') end as lane
      from webhooks.deliveries d
      join webhooks.events e on e.id = d.event_id
      join webhooks.webhook_configurations c on c.id = d.webhook_id
     where d.id = any (delivery_ids)
       and not exists (select 1 from webhooks.delivery_queue q where q.delivery_id = d.id)
     order by d.created_at, d.id
  ), positioned as (
    select c.*, webhooks._next_lane_position() as lane_position from chosen c
  ), entered as (
    insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, attempts, delivery_created_at,
                                         event_dispatched_at, lane, lane_position, due_at)
    select p.id, p.webhook_id, p.organization_id, p.attempts, p.created_at, p.dispatched_at, p.lane, p.lane_position,
           case when p.lane is not null
                 and (exists (select 1 from webhooks.delivery_queue w
                               where w.webhook_id = p.webhook_id and w.lane = p.lane)
                      or row_number() over (partition by p.webhook_id, p.lane order by p.lane_position) > 1)
                then 'infinity'::timestamptz else now() end
      from positioned p
    on conflict (delivery_id) do nothing
    returning delivery_id, delivery_created_at
  ), requeued as (
    update webhooks.deliveries d
       set state = 'pending',
           next_attempt_at = now(),
           completed_at = null,
           attempts_before_replay = d.attempts,
           updated_at = now()
      from entered e
     where d.id = e.delivery_id and d.created_at = e.delivery_created_at
    returning d.id
  )
  select count(*) into queued from requeued;
  if queued > 0 then
    perform pg_notify('webhooks_deliveries', '');
  end if;
  return queued;
end
$$;

-- Lanes whose first delivery waits with nothing ahead of it become due: the repair of a race
-- between a fan-out queuing behind a head and the record statement ending that head at the same
-- moment (neither sees the other's row). Every daemon runs it with its heartbeat; rows another
-- statement holds are left for the next run.
create function webhooks._advance_lanes() returns integer
language sql set search_path = pg_catalog, webhooks, pg_temp as $$
  with head as (
    select distinct on (q.webhook_id, q.lane) q.delivery_id, q.due_at, q.claimed_by
      from webhooks.delivery_queue q
     where q.lane is not null
     order by q.webhook_id, q.lane, q.lane_position
  ), stuck as (
    select q.delivery_id from webhooks.delivery_queue q
      join head h using (delivery_id)
     where h.due_at = 'infinity' and h.claimed_by is null
       for update of q skip locked
  ), advanced as (
    update webhooks.delivery_queue q set due_at = now()
      from stuck s
     where q.delivery_id = s.delivery_id and q.due_at = 'infinity'
    returning 1
  )
  select count(*)::int from advanced
$$;
comment on function webhooks._advance_lanes() is
  'Private, for the daemon: makes due the first delivery of each fifo lane that waits with nothing ahead of it; returns how many.';

-- An endpoint that changes its ordering while deliveries are queued: to fifo, its queued
-- deliveries get their lanes and wait behind each lane's first (attempts in flight finish as they
-- are); to none, every one is due as it was.
create function webhooks._ordering_changed() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if new.ordering = 'fifo' then
    update webhooks.delivery_queue q
       set lane = webhooks._lane((e.body::jsonb) -> 'data')
      from webhooks.deliveries d, webhooks.events e
     where q.webhook_id = new.id and q.lane is null
       and d.id = q.delivery_id and d.created_at = q.delivery_created_at
       and e.id = d.event_id and e.dispatched_at = q.event_dispatched_at;
    update webhooks.delivery_queue q set due_at = 'infinity'
     where q.webhook_id = new.id and q.lane is not null and q.claimed_by is null
       and exists (select 1 from webhooks.delivery_queue w
                    where w.webhook_id = q.webhook_id and w.lane = q.lane and w.lane_position < q.lane_position);
  else
    update webhooks.delivery_queue q
       set lane = null, due_at = case when q.due_at = 'infinity' then now() else q.due_at end
     where q.webhook_id = new.id and q.lane is not null;
  end if;
  perform pg_notify('webhooks_deliveries', '');
  return null;
end
$$;
comment on function webhooks._ordering_changed() is
  'Private trigger: gives an endpoint''s queued deliveries their lanes (fifo) or takes them away (none).';
create trigger ordering_changed after update of ordering on webhooks.webhook_configurations
  for each row when (old.ordering is distinct from new.ordering)
  execute function webhooks._ordering_changed();

revoke execute on function webhooks._lane(jsonb), webhooks._next_lane_position(), webhooks._advance_lanes(),
                           webhooks._validate_ordering(), webhooks._ordering_changed() from public;
grant execute on function webhooks._lane(jsonb), webhooks._advance_lanes() to webhooks_dispatcher;
