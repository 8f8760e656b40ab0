-- The webhooks schema: catalog, endpoint configurations, outbox, events, deliveries, attempt logs.

-- The schema itself is created by the migrator before the first migration (it holds webhooks.migrations).
comment on schema webhooks is 'pg-webhooks: configurations, captured events, deliveries and attempt logs.';

-- Every event type a configuration may subscribe to. The 17 catalog types ship here (docs/events.md);
-- webhooks.track() adds <entity>.created/.updated/.deleted for an application's own tables.
create table webhooks.event_types (
  name        text primary key,
  description text not null,
  source      text not null default 'catalog' check (source in ('catalog', 'tracked'))
);
comment on table webhooks.event_types is 'Event types that webhook_configurations.events may name (besides *).';

insert into webhooks.event_types (name, description) values
  ('contact.created', 'a contact was inserted'),
  ('contact.updated', 'a contact changed (a column other than updated_at)'),
  ('contact.assigned', 'a contact''s assigned_to became a non-null value'),
  ('deal.created', 'a deal was inserted'),
  ('deal.updated', 'a deal changed (a column other than updated_at)'),
  ('deal.assigned', 'a deal''s assigned_to became a non-null value'),
  ('deal.stage.changed', 'a deal''s stage changed'),
  ('conversation.created', 'a conversation was inserted'),
  ('conversation.assigned', 'a conversation''s assigned_to became a non-null value'),
  ('conversation.status.changed', 'a conversation''s status changed'),
  ('message.received', 'an inbound message was inserted'),
  ('message.sent', 'an outbound message''s status became sent'),
  ('message.delivered', 'an outbound message''s status became delivered'),
  ('message.read', 'an outbound message''s status became read'),
  ('message.failed', 'an outbound message''s status became failed'),
  ('broadcast.response', 'an inbound message answering a broadcast (broadcast_id not null) was inserted'),
  ('zoom.recording.completed', 'raised by the application through webhooks.emit'),
  ('webhook.test', 'sent by webhooks.send_test to one endpoint');

create table webhooks.webhook_configurations (
  id                         uuid primary key default gen_random_uuid(),
  organization_id            uuid not null,
  name                       text not null,
  url                        text not null,
  events                     text[] not null,
  secret                     text,
  signature_scheme           text not null default 'standard',
  signature_header           text not null default 'X-Webhook-Signature',
  is_active                  boolean not null default true,
  max_retries                int not null default 5,
  retry_base_seconds         int not null default 1,
  filter                     jsonb,
  previous_secret            text,
  previous_secret_expires_at timestamptz,
  timeout_seconds            int not null default 5,
  headers                    jsonb not null default '{}',
  disabled_reason            text,
  created_at                 timestamptz not null default now(),
  updated_at                 timestamptz not null default now()
);
comment on table webhooks.webhook_configurations is 'One row per endpoint: inserting a row creates a webhook.';
create index webhook_configurations_active_idx
  on webhooks.webhook_configurations (organization_id) where is_active;

-- Raises a check_violation that names the offending column (and never echoes a secret).
create function webhooks._refuse(column_name text, message text, hint text default null) returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  raise exception using
    errcode = 'check_violation',
    message = format('webhook_configurations.%s %s', column_name, message),
    column = column_name,
    table = 'webhook_configurations',
    schema = 'webhooks',
    hint = coalesce(hint, '');
end
$$;
comment on function webhooks._refuse(text, text, text) is 'Private: raise a check_violation naming a webhook_configurations column.';

create function webhooks._generate_secret() returns text
language sql volatile set search_path = pg_catalog, pg_temp as $$
  -- 32 bytes from two v4 UUIDs (244 random bits), in the Standard Webhooks whsec_ form.
  select 'whsec_' || encode(decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'), 'base64')
$$;
comment on function webhooks._generate_secret() is 'Private: a new signing secret, whsec_ + base64 of 32 random bytes.';

create function webhooks._validate_webhook_configuration() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  unknown text[];
  header_name text;
  header_value jsonb;
begin
  if new.organization_id is null then
    perform webhooks._refuse('organization_id', 'must not be null');
  end if;
  if new.name is null or btrim(new.name) = '' then
    perform webhooks._refuse('name', 'must not be empty');
  end if;
  if new.url is null
     or length(new.url) > 2048
     or new.url !~* '^https?://[a-z0-9._~%!$&''()*+,;=:\[\]-]+([/?#][^[:space:]]*)?$'
     or new.url ~ '^[^/]*//[^/?#]*@' then
    perform webhooks._refuse('url', 'must be an absolute http:// or https:// URL without credentials',
      'for example https://example.com/hooks/crm');
  end if;
  if new.events is null or cardinality(new.events) = 0 or array_position(new.events, null) is not null then
    perform webhooks._refuse('events', 'must list at least one event type (or {*} for all)');
  end if;
  select array_agg(e) into unknown
    from unnest(new.events) e
   where e <> '*' and not exists (select 1 from webhooks.event_types t where t.name = e);
  if unknown is not null then
    perform webhooks._refuse('events', format('names unknown event types: %s', array_to_string(unknown, ', ')),
      'see select name from webhooks.event_types');
  end if;
  if new.signature_scheme is null
     or new.signature_scheme not in ('standard', 'hmac-hex', 'hmac-prefixed', 'hmac-timestamped') then
    perform webhooks._refuse('signature_scheme', 'must be one of standard, hmac-hex, hmac-prefixed, hmac-timestamped');
  end if;
  if new.signature_header is null or new.signature_header !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' then
    perform webhooks._refuse('signature_header', 'must be a valid HTTP header name');
  end if;
  if new.max_retries is null or new.max_retries not between 0 and 25 then
    perform webhooks._refuse('max_retries', 'must be between 0 and 25');
  end if;
  if new.retry_base_seconds is null or new.retry_base_seconds not between 1 and 86400 then
    perform webhooks._refuse('retry_base_seconds', 'must be between 1 and 86400');
  end if;
  if new.timeout_seconds is null or new.timeout_seconds not between 1 and 60 then
    perform webhooks._refuse('timeout_seconds', 'must be between 1 and 60');
  end if;
  if new.filter is not null and jsonb_typeof(new.filter) <> 'object' then
    perform webhooks._refuse('filter', 'must be a JSON object (deliveries require payload @> filter)');
  end if;
  if new.headers is null or jsonb_typeof(new.headers) <> 'object' then
    perform webhooks._refuse('headers', 'must be a JSON object of header name to string value');
  end if;
  for header_name, header_value in select key, value from jsonb_each(new.headers) loop
    if header_name !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' or jsonb_typeof(header_value) <> 'string'
       or header_value #>> '{}' ~ '[\r\n\x00]' then
      perform webhooks._refuse('headers', format('has an invalid entry %L (names must be HTTP tokens, values strings without line breaks)', header_name));
    end if;
    if lower(header_name) in ('content-type', 'content-length', 'host', 'user-agent', 'idempotency-key',
                              'transfer-encoding', 'connection')
       or lower(header_name) like 'webhook-%' or lower(header_name) like 'x-webhook-%'
       or lower(header_name) = lower(new.signature_header) then
      perform webhooks._refuse('headers', format('must not set %L: pg-webhooks sets it', header_name));
    end if;
  end loop;

  if new.secret is null or new.secret = '' then
    new.secret := webhooks._generate_secret();
  end if;
  if new.signature_scheme = 'standard'
     and (new.secret !~ '^whsec_[A-Za-z0-9+/]{22,}={0,2}$' or length(new.secret) % 4 <> 2) then
    -- 'whsec_' is 6 characters, so a well-padded base64 body leaves length % 4 = 2.
    perform webhooks._refuse('secret', 'must be whsec_ followed by base64 of at least 16 bytes for the standard scheme',
      'leave it null to have one generated');
  end if;

  if tg_op = 'UPDATE' then
    new.updated_at := now();
    -- Rotation: a new secret keeps the old one valid for 24 h unless the caller says otherwise.
    if new.secret is distinct from old.secret and new.previous_secret is not distinct from old.previous_secret then
      new.previous_secret := old.secret;
      new.previous_secret_expires_at := coalesce(
        nullif(new.previous_secret_expires_at, old.previous_secret_expires_at), now() + interval '24 hours');
    end if;
    if new.is_active and not old.is_active then
      new.disabled_reason := null;
    end if;
  end if;
  return new;
end
$$;
comment on function webhooks._validate_webhook_configuration() is
  'Private trigger: validates a configuration row, naming the offending column; generates the secret when absent.';

create trigger validate before insert or update on webhooks.webhook_configurations
  for each row execute function webhooks._validate_webhook_configuration();

-- The outbox: capture triggers append here in the application's transaction; the dispatcher
-- moves each row into webhooks.events and fans it out. Kept lean (one index) on purpose:
-- every application write pays for this insert.
create table webhooks.outbox (
  id              bigint generated always as identity primary key,
  event_id        uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  event_type      text not null,
  data            jsonb not null,
  old_data        jsonb,
  occurred_at     timestamptz not null default now(),
  webhook_id      uuid
);
comment on table webhooks.outbox is 'Captured events not yet fanned out. Rows leave it in the dispatcher transaction that creates their deliveries.';
comment on column webhooks.outbox.webhook_id is 'When set (webhook.test), the event goes to this endpoint only.';

-- Every captured event, with the exact body that is signed, sent and logged.
create table webhooks.events (
  id              text primary key,
  organization_id uuid not null,
  event_type      text not null,
  body            text not null,
  occurred_at     timestamptz not null,
  dispatched_at   timestamptz not null default now(),
  webhook_id      uuid
);
comment on table webhooks.events is 'Captured events after fan-out; body is the serialized payload, sent byte for byte.';
create index events_organization_id_occurred_at_idx on webhooks.events (organization_id, occurred_at desc);

-- One row per (event, endpoint): the delivery's state and schedule. Written on the hot path
-- (fan-out inserts it, every attempt updates it), so it has no foreign keys (events and
-- deliveries are created together by the dispatcher) and no index on a column an attempt
-- changes: with fillfactor headroom, an attempt's update stays a HOT update.
create table webhooks.deliveries (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  event_id        text not null,
  webhook_id      uuid not null,
  state           text not null default 'pending' check (state in ('pending', 'succeeded', 'failed', 'dead')),
  attempts        int not null default 0,
  next_attempt_at timestamptz default now(),
  last_status     int,
  last_error      text,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  completed_at    timestamptz,
  unique (event_id, webhook_id)
) with (fillfactor = 80);
comment on table webhooks.deliveries is 'One row per (event, endpoint). state: pending (not tried yet), failed (retry scheduled at next_attempt_at), succeeded, dead (retries exhausted).';
create index deliveries_webhook_id_idx on webhooks.deliveries (webhook_id);

-- Deleting an endpoint deletes its deliveries (there is no foreign key to cascade).
create function webhooks._delete_deliveries_of_deleted_webhooks() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  delete from webhooks.deliveries d using deleted_configurations c where d.webhook_id = c.id;
  return null;
end
$$;
comment on function webhooks._delete_deliveries_of_deleted_webhooks() is 'Private trigger: deliveries follow their endpoint when it is deleted.';
create trigger delete_deliveries after delete on webhooks.webhook_configurations
  referencing old table as deleted_configurations
  for each statement execute function webhooks._delete_deliveries_of_deleted_webhooks();

-- One row per HTTP attempt, written by the daemon, never updated.
create table webhooks.webhook_logs (
  id               bigint generated always as identity primary key,
  organization_id  uuid not null,
  webhook_id       uuid not null,
  event_id         text not null,
  delivery_id      uuid not null,
  event_type       text not null,
  attempt          int not null,
  url              text not null,
  request_headers  jsonb not null,
  request_body     text,
  response_status  int,
  response_headers jsonb,
  response_body    text,
  error            text,
  duration_ms      int,
  success          boolean not null,
  created_at       timestamptz not null default now()
);
comment on table webhooks.webhook_logs is 'One row per delivery attempt. Append-only. request_headers keep signature values, never a secret; response_body holds at most the first 16 KiB.';
create index webhook_logs_organization_id_created_at_idx on webhooks.webhook_logs (organization_id, created_at desc);
create index webhook_logs_webhook_id_created_at_idx on webhooks.webhook_logs (webhook_id, created_at desc);
create index webhook_logs_delivery_id_idx on webhooks.webhook_logs (delivery_id);

create function webhooks._refuse_log_update() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  raise exception using
    errcode = 'feature_not_supported',
    message = 'webhooks.webhook_logs is append-only: rows are never updated',
    hint = 'delete old rows to prune the log';
end
$$;
comment on function webhooks._refuse_log_update() is 'Private trigger: keeps webhook_logs append-only.';
create trigger append_only before update on webhooks.webhook_logs
  for each row execute function webhooks._refuse_log_update();

-- Running daemons: heartbeats let a live daemon release the jobs of a crashed one.
create table webhooks.daemons (
  id             text primary key,
  worker_pool_id text,
  hostname       text not null,
  pid            int not null,
  started_at     timestamptz not null default now(),
  heartbeat_at   timestamptz not null default now()
);
comment on table webhooks.daemons is 'One row per running daemon, refreshed by its heartbeat; a stale row is a crashed daemon whose jobs get unlocked.';

-- Wake-up state read by capture triggers to decide whether a NOTIFY is needed (see 000003).
create table webhooks._dispatcher_wake (
  singleton       boolean primary key default true check (singleton),
  awake_until     timestamptz not null default '-infinity',
  listening_until timestamptz not null default '-infinity'
);
comment on table webhooks._dispatcher_wake is
  'Private. awake_until: a dispatcher is polling the outbox until then, so writers need not NOTIFY. listening_until: some dispatcher is alive (heartbeat) until then; with none alive, nobody would hear a NOTIFY.';
insert into webhooks._dispatcher_wake default values;

create view webhooks.webhook_stats as
select c.id as webhook_id,
       c.organization_id,
       c.name,
       count(l.id) as attempts_24h,
       count(l.id) filter (where l.success) as succeeded_24h,
       count(l.id) filter (where not l.success) as failed_24h,
       round(100.0 * count(l.id) filter (where l.success) / nullif(count(l.id), 0), 2) as success_rate_pct,
       percentile_cont(0.5) within group (order by l.duration_ms) as p50_ms,
       percentile_cont(0.95) within group (order by l.duration_ms) as p95_ms
  from webhooks.webhook_configurations c
  left join webhooks.webhook_logs l
    on l.webhook_id = c.id and l.created_at > now() - interval '24 hours'
 group by c.id, c.organization_id, c.name;
comment on view webhooks.webhook_stats is 'Per-webhook attempts, success rate and p50/p95 latency over the last 24 hours.';
