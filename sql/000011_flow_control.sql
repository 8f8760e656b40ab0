-- Flow control per endpoint, across every daemon (README "Flow control"): max_in_flight,
-- rate_limit_per_second, paused, and a circuit breaker.
--
-- Deliveries are queued in webhooks.delivery_queue (one row per delivery waiting for or in its
-- next attempt) instead of one graphile-worker job each. A daemon claims queued deliveries in a
-- transaction that first locks the endpoints' rows in webhooks.endpoint_states (FOR UPDATE SKIP
-- LOCKED), then takes at most as many as the endpoint has room for: max_in_flight minus the
-- attempts in flight, fewer under a rate limit, none while paused or while the breaker is open.
-- Each daemon knows its own attempts in flight exactly; it publishes them per endpoint in
-- webhooks.endpoint_claims whenever it claims (under the endpoint's lock, so every other
-- daemon's published figure is the latest one). A published figure can only be too high (the
-- attempts it counts may have finished since), never too low: the limit holds, and finishing
-- an attempt writes nothing shared. So the limits hold whatever the number of daemons,
-- an endpoint that is slow or dead only ever holds its own max_in_flight attempts, and a paused
-- endpoint's deliveries cost nothing while they wait.

alter table webhooks.webhook_configurations
  add column max_in_flight int not null default 256,
  add column rate_limit_per_second numeric,
  add column paused boolean not null default false;
comment on column webhooks.webhook_configurations.max_in_flight is
  'Attempts open to this endpoint at once, across all daemons (1–1000, default 256).';
comment on column webhooks.webhook_configurations.rate_limit_per_second is
  'Attempts started per second for this endpoint, across all daemons (null: no limit). Bursts up to one second''s worth.';
comment on column webhooks.webhook_configurations.paused is
  'Paused: deliveries are created and kept pending (nothing sent, no retries spent) until paused is false again.';

create function webhooks._validate_flow_control() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if new.max_in_flight is null or new.max_in_flight not between 1 and 1000 then
    perform webhooks._refuse('max_in_flight', 'must be between 1 and 1000');
  end if;
  if new.rate_limit_per_second is not null and new.rate_limit_per_second not between 0.01 and 10000 then
    perform webhooks._refuse('rate_limit_per_second', 'must be null (no limit) or between 0.01 and 10000');
  end if;
  if new.paused is null then
    perform webhooks._refuse('paused', 'must be true or false');
  end if;
  return new;
end
$$;
comment on function webhooks._validate_flow_control() is
  'Private trigger: validates max_in_flight, rate_limit_per_second and paused, naming the column.';
create trigger validate_flow_control before insert or update on webhooks.webhook_configurations
  for each row execute function webhooks._validate_flow_control();

-- An endpoint's shared delivery state. Written by the daemons only; readable with SQL.
create table webhooks.endpoint_states (
  webhook_id           uuid primary key references webhooks.webhook_configurations (id) on delete cascade,
  organization_id      uuid not null,
  consecutive_failures int not null default 0,
  circuit              text not null default 'closed' check (circuit in ('closed', 'open', 'probing')),
  circuit_until        timestamptz,
  circuit_trips        int not null default 0,
  rate_tokens          float8 not null default 'Infinity',  -- a new bucket starts full (capped at one second's worth)
  rate_refilled_at     timestamptz not null default now()
);
comment on table webhooks.endpoint_states is
  'One row per endpoint: its circuit breaker and rate-limit bucket, shared by every daemon. circuit: closed (deliver), open (nothing is sent until circuit_until; the queued deliveries wait and keep their retries), probing (one attempt decides: success closes, failure opens again for twice as long).';
comment on column webhooks.endpoint_states.consecutive_failures is
  'Failed attempts since the last success; 10 in a row open the circuit.';
comment on column webhooks.endpoint_states.circuit_trips is
  'Times the circuit opened since the last success: it stays open 5 s × 2^(trips − 1), at most 5 minutes.';

create function webhooks._create_endpoint_state() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  insert into webhooks.endpoint_states (webhook_id, organization_id) values (new.id, new.organization_id);
  return null;
end
$$;
comment on function webhooks._create_endpoint_state() is 'Private trigger: every new endpoint gets its endpoint_states row.';
create trigger create_endpoint_state after insert on webhooks.webhook_configurations
  for each row execute function webhooks._create_endpoint_state();
insert into webhooks.endpoint_states (webhook_id, organization_id)
select id, organization_id from webhooks.webhook_configurations;

-- Attempts in flight per endpoint and daemon, as each daemon last published them (see above).
create table webhooks.endpoint_claims (
  webhook_id uuid not null references webhooks.endpoint_states (webhook_id) on delete cascade,
  daemon_id  text not null,
  in_flight  int not null,
  primary key (webhook_id, daemon_id)
);
comment on table webhooks.endpoint_claims is
  'Attempts in flight per endpoint and daemon, as of that daemon''s last claim for the endpoint (an upper bound). An endpoint''s in flight: select sum(in_flight) … where webhook_id = …';

-- Deliveries waiting for their next attempt, or in it (claimed_by: the daemon making it).
-- Small (only unfinished deliveries) and written on the hot path: one insert at fan-out, one
-- claim (a HOT update: no indexed column changes), one delete (or a reschedule) per attempt.
create table webhooks.delivery_queue (
  delivery_id     uuid primary key,
  webhook_id      uuid not null,
  organization_id uuid not null,
  due_at          timestamptz not null default now(),
  retry           boolean not null default false,
  claimed_by      text,
  claimed_at      timestamptz
);
comment on table webhooks.delivery_queue is
  'Deliveries waiting for their next attempt (due_at) or in it (claimed_by names the daemon). A row leaves when its delivery succeeds or dies.';
-- Each endpoint's queue in claim order, fresh deliveries and retries apart (claims interleave them).
create index delivery_queue_webhook_id_retry_due_at_idx on webhooks.delivery_queue (webhook_id, retry, due_at);

-- Deleting an endpoint deletes its queued deliveries too.
create or replace function webhooks._delete_deliveries_of_deleted_webhooks() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  delete from webhooks.deliveries d using deleted_configurations c where d.webhook_id = c.id;
  delete from webhooks.delivery_queue q using deleted_configurations c where q.webhook_id = c.id;
  return null;
end
$$;

-- Replay queues the delivery again (a delivery already queued keeps its place and claim).
create or replace function webhooks._requeue(delivery_ids uuid[]) returns int
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  queued int;
begin
  with requeued as (
    update webhooks.deliveries d
       set state = 'pending',
           next_attempt_at = now(),
           completed_at = null,
           attempts_before_replay = d.attempts,
           updated_at = now()
     where d.id = any (delivery_ids)
    returning d.id, d.webhook_id, d.organization_id
  ), queue as (
    insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id)
    select r.id, r.webhook_id, r.organization_id from requeued r
    on conflict (delivery_id) do update set due_at = least(webhooks.delivery_queue.due_at, now()), retry = false
    returning 1
  )
  select count(*) into queued from queue;
  if queued > 0 then
    perform pg_notify('webhooks_deliveries', '');
  end if;
  return queued;
end
$$;

-- Upgrade: the deliveries an older release queued as graphile-worker jobs move to the queue.
insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, due_at, retry)
select d.id, d.webhook_id, d.organization_id, coalesce(d.next_attempt_at, now()), d.attempts > 0
  from webhooks.deliveries d
 where d.state in ('pending', 'failed');
delete from graphile_worker._private_jobs j
 using graphile_worker._private_tasks t
 where t.id = j.task_id and t.identifier = 'webhooks.deliver';

-- Privileges and row-level security.
revoke execute on function webhooks._validate_flow_control(), webhooks._create_endpoint_state() from public;
-- The validation trigger runs as the writer, like 000004's; _create_endpoint_state is the owner's.
grant execute on function webhooks._validate_flow_control() to webhooks_app, webhooks_dispatcher;
grant select on webhooks.endpoint_states to webhooks_app;
grant select, insert, update, delete on webhooks.endpoint_states, webhooks.endpoint_claims, webhooks.delivery_queue to webhooks_dispatcher;
do $$
declare
  t regclass;
begin
  foreach t in array array['webhooks.endpoint_states', 'webhooks.endpoint_claims', 'webhooks.delivery_queue']::regclass[] loop
    execute format('alter table %s enable row level security', t);
    execute format('alter table %s force row level security', t);
    execute format('create policy dispatcher on %s for all to webhooks_dispatcher using (true) with check (true)', t);
    -- The owner, for the definer functions above (a superuser owner bypasses RLS anyway).
    execute format('create policy owner_functions on %s for all to %I using (true) with check (true)', t, current_user);
  end loop;
end
$$;
-- The tenant expression exactly as 000004 writes it for every application policy.
create policy tenant_isolation on webhooks.endpoint_states for select to webhooks_app
  using (organization_id = nullif(current_setting('app.organization_id', true), '')::uuid);
