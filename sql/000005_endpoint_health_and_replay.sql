-- Endpoint health and operations (docs/guarantees.md): 410 Gone and continuous failure disable an endpoint;
-- dead deliveries are listed by a view and re-queued by webhooks.replay / webhooks.replay_dead.

-- Continuous failure. The daemon sets failing_since on an endpoint's first failed attempt after a
-- success and clears it on the next success, in the statement that records the attempts (so a
-- healthy endpoint costs no write), and disables the endpoint once failing_since is older than
-- WEBHOOKS_DISABLE_AFTER_FAILING_HOURS.
alter table webhooks.webhook_configurations add column failing_since timestamptz;
comment on column webhooks.webhook_configurations.failing_since is
  'Start of the endpoint''s current run of failed attempts (null once an attempt succeeds). An endpoint failing for longer than WEBHOOKS_DISABLE_AFTER_FAILING_HOURS is disabled.';

-- Replay gives a delivery a fresh retry budget while its attempt numbers continue: retries and
-- backoff count the attempts made after the last replay. Not indexed: attempts stay HOT updates.
alter table webhooks.deliveries add column attempts_before_replay int not null default 0;
comment on column webhooks.deliveries.attempts_before_replay is
  'Attempts made before the last webhooks.replay: max_retries and the backoff count from here, attempt numbers continue.';

-- Re-activating an endpoint starts its failure count afresh (000002's trigger clears disabled_reason).
create function webhooks._reset_failing_since() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  if new.is_active and not old.is_active then
    new.failing_since := null;
  end if;
  return new;
end
$$;
comment on function webhooks._reset_failing_since() is
  'Private trigger: an endpoint made active again is no longer counted as failing.';
create trigger reset_failing_since before update of is_active on webhooks.webhook_configurations
  for each row execute function webhooks._reset_failing_since();

-- Re-queues deliveries: pending again, a fresh retry budget, one deliver job each. Runs with the
-- privileges of the replay function that calls it, which has checked the tenant.
create function webhooks._requeue(delivery_ids uuid[]) returns int
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
    returning d.id
  )
  select count(*) into queued
    from graphile_worker.add_jobs(array(
      select row('webhooks.deliver', json_build_object('deliveryId', r.id), null, null, null, null, null, null)::graphile_worker.job_spec
        from requeued r));
  return queued;
end
$$;
comment on function webhooks._requeue(uuid[]) is
  'Private: set deliveries pending with a fresh retry budget and queue a deliver job for each; returns how many.';

create function webhooks._refuse_inactive(config webhooks.webhook_configurations, what text) returns void
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
  if not config.is_active then
    raise exception using errcode = 'object_not_in_prerequisite_state',
      message = format('%s: webhook %s is inactive (%s)', what, config.id, coalesce(config.disabled_reason, 'disabled')),
      hint = 'update webhooks.webhook_configurations set is_active = true where id = ... and replay again';
  end if;
end
$$;
comment on function webhooks._refuse_inactive(webhooks.webhook_configurations, text) is
  'Private: refuse replaying to an inactive endpoint (the delivery would only die again).';

create function webhooks.replay(delivery_id uuid) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  delivery webhooks.deliveries;
  config webhooks.webhook_configurations;
begin
  select * into delivery from webhooks.deliveries d where d.id = replay.delivery_id;
  -- Another organization's delivery gets the same answer as a missing one: nothing is disclosed.
  if not found or delivery.organization_id is distinct from
                  coalesce(webhooks.current_organization_id(), delivery.organization_id) then
    raise exception using errcode = 'no_data_found', message = format('webhooks.replay: no delivery %s', delivery_id);
  end if;
  perform webhooks._assert_tenant(delivery.organization_id, 'webhooks.replay');
  select * into config from webhooks.webhook_configurations c where c.id = delivery.webhook_id;
  perform webhooks._refuse_inactive(config, 'webhooks.replay');
  perform webhooks._requeue(array[delivery.id]);
end
$$;
comment on function webhooks.replay(uuid) is
  'Public: deliver one delivery again, whatever its state. It becomes pending with a fresh retry budget (max_retries more retries); attempt numbers continue in webhook_logs. A delivery with a retry already scheduled gets an extra attempt now.';

create function webhooks.replay_dead(webhook_id uuid) returns int
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = replay_dead.webhook_id;
  if not found or config.organization_id is distinct from
                  coalesce(webhooks.current_organization_id(), config.organization_id) then
    raise exception using errcode = 'no_data_found', message = format('webhooks.replay_dead: no webhook %s', webhook_id);
  end if;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay_dead');
  perform webhooks._refuse_inactive(config, 'webhooks.replay_dead');
  return webhooks._requeue(array(
    select d.id from webhooks.deliveries d where d.webhook_id = config.id and d.state = 'dead'));
end
$$;
comment on function webhooks.replay_dead(uuid) is
  'Public: replay every dead delivery of one webhook (see webhooks.replay); returns how many were queued.';

-- The dead-letter queue. Not indexed by state (an attempt changes state; see deliveries), so it
-- reads the deliveries table; filter by organization_id or webhook_id.
create view webhooks.dead_deliveries as
select d.id as delivery_id,
       d.organization_id,
       d.webhook_id,
       c.name as webhook_name,
       c.url,
       d.event_id,
       e.event_type,
       d.attempts,
       d.last_status,
       d.last_error,
       d.created_at,
       d.completed_at as dead_at
  from webhooks.deliveries d
  join webhooks.events e on e.id = d.event_id
  join webhooks.webhook_configurations c on c.id = d.webhook_id
 where d.state = 'dead';
comment on view webhooks.dead_deliveries is
  'Deliveries whose retries are exhausted (or whose endpoint was disabled), with event type, endpoint and last error. Replay with webhooks.replay(delivery_id) or webhooks.replay_dead(webhook_id).';

-- Privileges: nothing for PUBLIC; the replay functions check the tenant themselves.
revoke execute on function webhooks._reset_failing_since(), webhooks._requeue(uuid[]),
                           webhooks._refuse_inactive(webhooks.webhook_configurations, text),
                           webhooks.replay(uuid), webhooks.replay_dead(uuid) from public;
grant execute on function webhooks.replay(uuid), webhooks.replay_dead(uuid) to webhooks_app, webhooks_dispatcher;
-- Fires as the writer, like 000004's validation trigger.
grant execute on function webhooks._reset_failing_since() to webhooks_app, webhooks_dispatcher;
grant select on webhooks.dead_deliveries to webhooks_dispatcher;

-- The replay functions run as the owner; RLS is forced, so it needs to update deliveries (it
-- already reads them and configurations, 000004). graphile_worker does not force RLS.
do $$
begin
  execute format('create policy replay on webhooks.deliveries for update to %I using (true) with check (true)', current_user);
  -- Like webhook_stats: read as the caller (PostgreSQL 15+), else withheld from applications.
  if current_setting('server_version_num')::int >= 150000 then
    execute 'alter view webhooks.dead_deliveries set (security_invoker = true)';
    execute 'grant select on webhooks.dead_deliveries to webhooks_app';
  end if;
end
$$;
