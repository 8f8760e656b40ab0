-- Poison isolation: no captured row can stop fan-out for anyone else (docs/isolation in README).
--
-- 1. The payload is built by Postgres, byte for byte from the row's jsonb: no JavaScript parse
--    or stringify (a 6,000-deep array overflowed the daemon's stack; big numbers lost precision
--    as doubles). The exact bytes built here are stored in webhooks.events, signed, sent, logged.
-- 2. Capture bounds what it stores: an event whose row is larger than 8 MiB (as jsonb) keeps only
--    the row's id and its size; it is delivered to nobody, and every matching endpoint logs one
--    failed attempt saying why. The application's write itself always succeeds.
-- 3. A payload over 256 KiB is not sent (the same rule as before, now decided at fan-out):
--    events.not_sent_reason says why, and the stored body keeps only the row's id.
-- 4. A row that still makes the fan-out statement fail is set aside into
--    webhooks.outbox_set_aside with the error, after the daemon has retried the batch without it;
--    webhooks.release_set_aside(id) puts it back, webhooks.discard_set_aside(id) drops it.

-- The payload functions below are inlined into the fan-out statement, so they set no
-- search_path (a SET clause prevents inlining; they are neither SECURITY DEFINER nor triggers)
-- and name their own schema's functions in full.

-- The changed columns of an update, {column: {"old": …, "new": …}}; a missing key counts as null.
create function webhooks._changes(old_data jsonb, new_data jsonb) returns jsonb
language sql stable parallel safe as $$
  select coalesce(jsonb_object_agg(key, jsonb_build_object('old', coalesce(o.value, 'null'), 'new', coalesce(n.value, 'null'))), '{}')
    from jsonb_each(new_data) n
    full join jsonb_each(old_data) o using (key)
   where coalesce(n.value, 'null') is distinct from coalesce(o.value, 'null')
$$;
comment on function webhooks._changes(jsonb, jsonb) is 'Private: the payload''s changes object of an update.';

-- The payload's id: evt_ + the capture uuid without dashes, the same on every endpoint and retry.
create function webhooks._payload_event_id(event_id uuid) returns text
language sql stable parallel safe as $$
  select 'evt_' || replace(event_id::text, '-', '')
$$;
comment on function webhooks._payload_event_id(uuid) is 'Private: evt_ + the event uuid''s hex.';

-- The timestamp as JavaScript's toISOString writes it (milliseconds, Z).
create function webhooks._payload_timestamp(at timestamptz) returns text
language sql stable parallel safe as $$
  select to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;
comment on function webhooks._payload_timestamp(timestamptz) is 'Private: an ISO 8601 UTC timestamp with milliseconds.';

-- The body that is signed, sent and logged. Keys in the documented order: id, event, timestamp,
-- organization_id, data, changes (updates only). data is the row's jsonb text as Postgres writes
-- it: every number exactly as stored.
create function webhooks._event_body(event_id uuid, event_type text, occurred_at timestamptz,
                                     organization_id uuid, data jsonb, old_data jsonb) returns text
language sql stable parallel safe as $$
  select '{"id":"' || webhooks._payload_event_id(event_id)
      || '","event":' || to_json(event_type)::text
      || ',"timestamp":"' || webhooks._payload_timestamp(occurred_at)
      || '","organization_id":"' || organization_id::text
      || '","data":' || data::text
      || case when old_data is null then '' else ',"changes":' || webhooks._changes(old_data, data)::text end
      || '}'
$$;
comment on function webhooks._event_body(uuid, text, timestamptz, uuid, jsonb, jsonb) is
  'Private: the serialized payload of a captured event (the exact bytes signed and sent).';

-- The same payload as jsonb, for configurations' filter (payload @> filter).
create function webhooks._event_payload(event_id uuid, event_type text, occurred_at timestamptz,
                                        organization_id uuid, data jsonb, old_data jsonb) returns jsonb
language sql stable parallel safe as $$
  select jsonb_build_object('id', webhooks._payload_event_id(event_id), 'event', event_type,
                            'timestamp', webhooks._payload_timestamp(occurred_at),
                            'organization_id', organization_id, 'data', data)
      || case when old_data is null then '{}'::jsonb else jsonb_build_object('changes', webhooks._changes(old_data, data)) end
$$;
comment on function webhooks._event_payload(uuid, text, timestamptz, uuid, jsonb, jsonb) is
  'Private: the payload as jsonb, matched against webhook_configurations.filter.';

-- Why an event is not sent (null: it is). Its body then keeps only the row's id.
alter table webhooks.events add column not_sent_reason text;
comment on column webhooks.events.not_sent_reason is
  'Set when the payload is too large to send (over 256 KiB, or a row over 8 MiB at capture): every matching endpoint logs one failed attempt with this reason, and body keeps only the row''s id.';

-- Capture's bound: the size of the row's jsonb when it was larger than 8 MiB (its data is then
-- only its id).
alter table webhooks.outbox add column oversized_bytes int;
comment on column webhooks.outbox.oversized_bytes is
  'Set when the captured row (new and old, as jsonb) exceeded 8 MiB: data then holds only the row''s id, and the event is logged as not sent.';

create or replace function webhooks._enqueue(
  organization_id uuid, event_types text[], data jsonb, old_data jsonb, webhook_id uuid default null
) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  first_event_id uuid;
  wake record;
  now_ts timestamptz;
  -- The datum size of a jsonb built in this transaction: constant time, nothing serialized.
  row_bytes constant bigint := pg_column_size(data)::bigint + coalesce(pg_column_size(old_data), 0);
  oversized int;
begin
  if row_bytes > 8 * 1024 * 1024 then
    oversized := least(row_bytes, 2147483647)::int;
    data := jsonb_build_object('id', data->'id');
    old_data := null;
  end if;
  if cardinality(event_types) = 1 then
    insert into webhooks.outbox (organization_id, event_type, data, old_data, webhook_id, oversized_bytes)
    values (organization_id, event_types[1], data, old_data, webhook_id, oversized)
    returning event_id into first_event_id;
  else
    with inserted as (
      insert into webhooks.outbox (organization_id, event_type, data, old_data, webhook_id, oversized_bytes)
      select organization_id, t, data, old_data, webhook_id, oversized from unnest(event_types) with ordinality as u(t, n) order by n
      returning id, event_id
    )
    select event_id into first_event_id from inserted order by id limit 1;
  end if;

  select awake_until, listening_until into wake from webhooks._dispatcher_wake;
  now_ts := clock_timestamp();
  if now_ts >= wake.awake_until and now_ts < wake.listening_until then
    perform pg_notify('webhooks_outbox', '');
  end if;
  return first_event_id;
end
$$;

-- Outbox rows the fan-out could not process, with the error. Not retried on their own.
create table webhooks.outbox_set_aside (
  id              bigint primary key,
  event_id        uuid not null,
  organization_id uuid not null,
  event_type      text not null,
  data            jsonb not null,
  old_data        jsonb,
  occurred_at     timestamptz not null,
  webhook_id      uuid,
  oversized_bytes int,
  error           text not null,
  set_aside_at    timestamptz not null default now()
);
comment on table webhooks.outbox_set_aside is
  'Captured events the fan-out failed on (error says why), set aside so that every other event flows. webhooks.release_set_aside(id) retries one, webhooks.discard_set_aside(id) drops it.';
create index outbox_set_aside_organization_id_idx on webhooks.outbox_set_aside (organization_id);

-- The set-aside row a public function acts on: another organization's id gets the same answer
-- as a missing one (nothing is disclosed), and a caller without a tenant must be the daemon's role.
create function webhooks._set_aside_row(set_aside_id bigint, what text) returns webhooks.outbox_set_aside
language plpgsql stable set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  row webhooks.outbox_set_aside;
begin
  select * into row from webhooks.outbox_set_aside s where s.id = set_aside_id;
  if not found or row.organization_id is distinct from coalesce(webhooks.current_organization_id(), row.organization_id) then
    raise exception using errcode = 'no_data_found', message = format('%s: no set-aside event %s', what, set_aside_id);
  end if;
  perform webhooks._assert_tenant(row.organization_id, what);
  return row;
end
$$;
comment on function webhooks._set_aside_row(bigint, text) is
  'Private: the set-aside row with this id, if the caller''s organization may act on it.';

-- Move a set-aside row back into the outbox (it keeps its event id).
create function webhooks.release_set_aside(set_aside_id bigint) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  row constant webhooks.outbox_set_aside := webhooks._set_aside_row(set_aside_id, 'webhooks.release_set_aside');
begin
  delete from webhooks.outbox_set_aside s where s.id = row.id;
  insert into webhooks.outbox (event_id, organization_id, event_type, data, old_data, occurred_at, webhook_id, oversized_bytes)
  values (row.event_id, row.organization_id, row.event_type, row.data, row.old_data, row.occurred_at, row.webhook_id, row.oversized_bytes);
  perform pg_notify('webhooks_outbox', '');
  return row.event_id;
end
$$;
comment on function webhooks.release_set_aside(bigint) is
  'Public: put a set-aside event back into the outbox (after fixing what made it fail); returns its event id.';

create function webhooks.discard_set_aside(set_aside_id bigint) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  delete from webhooks.outbox_set_aside s
   where s.id = (webhooks._set_aside_row(set_aside_id, 'webhooks.discard_set_aside')).id;
end
$$;
comment on function webhooks.discard_set_aside(bigint) is 'Public: drop a set-aside event for good.';

revoke execute on function webhooks._changes(jsonb, jsonb), webhooks._payload_event_id(uuid),
                           webhooks._payload_timestamp(timestamptz),
                           webhooks._event_body(uuid, text, timestamptz, uuid, jsonb, jsonb),
                           webhooks._event_payload(uuid, text, timestamptz, uuid, jsonb, jsonb),
                           webhooks._set_aside_row(bigint, text),
                           webhooks.release_set_aside(bigint), webhooks.discard_set_aside(bigint) from public;
grant execute on function webhooks._changes(jsonb, jsonb), webhooks._payload_event_id(uuid),
                          webhooks._payload_timestamp(timestamptz),
                          webhooks._event_body(uuid, text, timestamptz, uuid, jsonb, jsonb),
                          webhooks._event_payload(uuid, text, timestamptz, uuid, jsonb, jsonb)
  to webhooks_dispatcher;
grant execute on function webhooks.release_set_aside(bigint), webhooks.discard_set_aside(bigint)
  to webhooks_app, webhooks_dispatcher;

grant select on webhooks.outbox_set_aside to webhooks_app;
grant select, insert, delete on webhooks.outbox_set_aside to webhooks_dispatcher;
alter table webhooks.outbox_set_aside enable row level security;
alter table webhooks.outbox_set_aside force row level security;
-- The tenant expression exactly as 000004 writes it for every application policy.
create policy tenant_isolation on webhooks.outbox_set_aside for select to webhooks_app
  using (organization_id = nullif(current_setting('app.organization_id', true), '')::uuid);
create policy dispatcher on webhooks.outbox_set_aside for all to webhooks_dispatcher using (true) with check (true);
do $$
begin
  -- The owner, for release_set_aside and discard_set_aside (a superuser owner bypasses RLS anyway).
  execute format('create policy release on webhooks.outbox_set_aside for all to %I using (true) with check (true)', current_user);
end
$$;
