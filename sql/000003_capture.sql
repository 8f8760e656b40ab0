-- Capture: row triggers append to webhooks.outbox in the writer's transaction (docs/events.md).
--
-- Wake-ups. A NOTIFY takes a cluster-wide lock from pre-commit to commit, serialising every
-- notifying transaction, so writers only NOTIFY when it can matter: some dispatcher is alive
-- (listening_until) and none is currently polling the outbox (awake_until). A dispatcher that
-- stops polling clears awake_until, waits until every transaction that could have read the old
-- value has ended, and polls once more; the periodic sweep backs all of this up.

create function webhooks._enqueue(
  organization_id uuid, event_types text[], data jsonb, old_data jsonb, webhook_id uuid default null
) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  first_event_id uuid;
  wake record;
  now_ts timestamptz;
begin
  if cardinality(event_types) = 1 then
    insert into webhooks.outbox (organization_id, event_type, data, old_data, webhook_id)
    values (organization_id, event_types[1], data, old_data, webhook_id)
    returning event_id into first_event_id;
  else
    with inserted as (
      insert into webhooks.outbox (organization_id, event_type, data, old_data, webhook_id)
      select organization_id, t, data, old_data, webhook_id from unnest(event_types) with ordinality as u(t, n) order by n
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
comment on function webhooks._enqueue(uuid, text[], jsonb, jsonb, uuid) is
  'Private: append one outbox row per event type and wake a dispatcher if none is polling.';

-- The capture trigger of the reference CRM tables. tg_argv[0] is the entity: contact, deal,
-- conversation or message. Emits exactly the catalog of docs/events.md.
create function webhooks._capture_crm_change() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  entity    constant text := tg_argv[0];
  new_row   constant jsonb := to_jsonb(new);
  old_row   jsonb;
  types     text[] := '{}';
begin
  if tg_op = 'UPDATE' then
    old_row := to_jsonb(old);
    if (new_row - 'updated_at') = (old_row - 'updated_at') then
      return null;  -- nothing but updated_at changed
    end if;
  end if;

  if entity = 'message' then
    if tg_op = 'INSERT' and new.direction = 'inbound' then
      types := array['message.received'];
      if new.broadcast_id is not null then
        types := types || 'broadcast.response'::text;
      end if;
    elsif new.direction = 'outbound' and new.status in ('sent', 'delivered', 'read', 'failed')
          and (tg_op = 'INSERT' or old_row->'status' is distinct from new_row->'status') then
      types := array['message.' || new.status];
    end if;
  else
    if tg_op = 'INSERT' then
      types := array[entity || '.created'];
    elsif entity <> 'conversation' then
      types := array[entity || '.updated'];
    end if;
    if new_row->>'assigned_to' is not null
       and (tg_op = 'INSERT' or old_row->'assigned_to' is distinct from new_row->'assigned_to') then
      types := types || (entity || '.assigned');
    end if;
    if tg_op = 'UPDATE' and entity = 'deal' and old_row->'stage' is distinct from new_row->'stage' then
      types := types || 'deal.stage.changed'::text;
    end if;
    if tg_op = 'UPDATE' and entity = 'conversation' and old_row->'status' is distinct from new_row->'status' then
      types := types || 'conversation.status.changed'::text;
    end if;
  end if;

  if cardinality(types) > 0 then
    perform webhooks._enqueue(new.organization_id, types, new_row, old_row);
  end if;
  return null;
end
$$;
comment on function webhooks._capture_crm_change() is
  'Private trigger: turns writes to the reference CRM tables into catalog events (docs/events.md).';

create trigger webhooks_capture after insert or update on public.contacts
  for each row execute function webhooks._capture_crm_change('contact');
create trigger webhooks_capture after insert or update on public.deals
  for each row execute function webhooks._capture_crm_change('deal');
create trigger webhooks_capture after insert or update on public.conversations
  for each row execute function webhooks._capture_crm_change('conversation');
create trigger webhooks_capture after insert or update on public.messages
  for each row execute function webhooks._capture_crm_change('message');

-- Capture for an application's own table: <entity>.created / .updated / .deleted.
create function webhooks._capture_tracked_change() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  entity  constant text := tg_argv[0];
  new_row jsonb;
  old_row jsonb;
begin
  if (case when tg_op = 'DELETE' then old.organization_id else new.organization_id end) is null then
    raise exception using errcode = 'not_null_violation',
      message = format('%s.organization_id must not be null: webhooks.track() captures this table and every event belongs to an organization', tg_table_name),
      column = 'organization_id', table = tg_table_name, schema = tg_table_schema;
  end if;
  if tg_op = 'INSERT' then
    new_row := to_jsonb(new);
    perform webhooks._enqueue((new_row->>'organization_id')::uuid, array[entity || '.created'], new_row, null);
  elsif tg_op = 'UPDATE' then
    new_row := to_jsonb(new);
    old_row := to_jsonb(old);
    if (new_row - 'updated_at') <> (old_row - 'updated_at') then
      perform webhooks._enqueue((new_row->>'organization_id')::uuid, array[entity || '.updated'], new_row, old_row);
    end if;
  else
    old_row := to_jsonb(old);
    perform webhooks._enqueue((old_row->>'organization_id')::uuid, array[entity || '.deleted'], old_row, null);
  end if;
  return null;
end
$$;
comment on function webhooks._capture_tracked_change() is
  'Private trigger installed by webhooks.track(): emits <entity>.created/.updated/.deleted.';

create function webhooks.track(target regclass, entity text) returns void
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if entity is null or entity !~ '^[a-z][a-z0-9_]*$' then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.track: entity %L must be lower-case letters, digits and _', entity),
      hint = 'for example: select webhooks.track(''public.invoices'', ''invoice'')';
  end if;
  if not exists (select 1 from pg_attribute
                  where attrelid = target and attname = 'organization_id' and not attisdropped) then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.track: table %s has no organization_id column', target),
      hint = 'events belong to an organization; add an organization_id uuid column';
  end if;
  insert into webhooks.event_types (name, description, source)
  select entity || suffix, format('%s on %s', op, target), 'tracked'
    from (values ('.created', 'INSERT'), ('.updated', 'UPDATE'), ('.deleted', 'DELETE')) v(suffix, op)
  on conflict (name) do nothing;
  -- webhooks_track, not webhooks_capture: tracking a reference CRM table must not replace its catalog capture.
  execute format('drop trigger if exists webhooks_track on %s', target);
  execute format('create trigger webhooks_track after insert or update or delete on %s
                  for each row execute function webhooks._capture_tracked_change(%L)', target, entity);
end
$$;
comment on function webhooks.track(regclass, text) is
  'Public: capture INSERT/UPDATE/DELETE on an application table (which must have organization_id) as <entity>.created/.updated/.deleted events.';

create function webhooks.untrack(target regclass) returns void
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  execute format('drop trigger if exists webhooks_track on %s', target);
end
$$;
comment on function webhooks.untrack(regclass) is 'Public: stop capturing a table that webhooks.track() attached.';

create function webhooks.emit(organization_id uuid, event_type text, data jsonb) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if organization_id is null then
    raise exception using errcode = 'not_null_violation', message = 'webhooks.emit: organization_id must not be null';
  end if;
  if event_type = 'webhook.test' or not exists (select 1 from webhooks.event_types t where t.name = event_type) then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.emit: unknown event type %L', event_type),
      hint = 'see select name from webhooks.event_types (webhook.test is sent with webhooks.send_test)';
  end if;
  return webhooks._enqueue(organization_id, array[event_type], coalesce(data, '{}'::jsonb), null);
end
$$;
comment on function webhooks.emit(uuid, text, jsonb) is
  'Public: raise an application event (e.g. zoom.recording.completed) from SQL; returns the event id (payload id is evt_ + its hex).';

create function webhooks.send_test(webhook_id uuid) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = send_test.webhook_id;
  if not found then
    raise exception using errcode = 'no_data_found', message = format('webhooks.send_test: no webhook %s', webhook_id);
  end if;
  return webhooks._enqueue(config.organization_id, array['webhook.test'],
    jsonb_build_object('webhook_id', config.id, 'name', config.name, 'message', 'This is a test event from pg-webhooks.'),
    null, config.id);
end
$$;
comment on function webhooks.send_test(uuid) is 'Public: send a webhook.test event to this one endpoint; returns the event id.';
