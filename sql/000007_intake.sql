-- Inbound lead intake (docs/intake.md), database layer. The HTTP route verifies the signature and then
-- calls webhooks._accept_lead, which records the request and queues a webhooks.process_lead job
-- in the same transaction (so a crash right after the 202 still produces the lead); the job calls
-- webhooks._process_lead, which upserts the contact and opens the deal. Every request, accepted
-- or not, leaves one row in webhooks.intake_activity.

-- Raises a check_violation naming table.column (never echoing the value, which may be a secret).
create function webhooks._refuse_column(table_name text, column_name text, message text, hint text default null) returns void
language plpgsql set search_path = pg_catalog, pg_temp as $$
begin
  raise exception using
    errcode = 'check_violation',
    message = format('%s.%s %s', table_name, column_name, message),
    column = column_name,
    table = table_name,
    schema = 'webhooks',
    hint = coalesce(hint, '');
end
$$;
comment on function webhooks._refuse_column(text, text, text, text) is
  'Private: raise a check_violation naming a column of a webhooks table.';

-- 64 hex characters (244 random bits from two v4 UUIDs), no prefix: the sender keys HMAC-SHA256
-- with the UTF-8 bytes of the string exactly as stored.
create function webhooks._generate_intake_secret() returns text
language sql volatile set search_path = pg_catalog, pg_temp as $$
  select replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
$$;
comment on function webhooks._generate_intake_secret() is
  'Private: a new inbound signing secret, 64 random hex characters (used as-is, UTF-8, as the HMAC key).';

create table webhooks.inbound_integrations (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name            text not null,
  signing_secret  text not null,
  is_active       boolean not null default true,
  lead_stage      text not null default 'new',
  assignee_pool   uuid[] not null default '{}',
  leads_assigned  bigint not null default 0,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
comment on table webhooks.inbound_integrations is
  'One row per inbound lead source (POST /v2/webhook/integration/:id). The HTTP layer (webhooks_dispatcher) reads id, organization_id, signing_secret, is_active to verify a request; leads open deals at lead_stage, assigned round-robin over assignee_pool.';
comment on column webhooks.inbound_integrations.signing_secret is
  'HMAC-SHA256 key (its UTF-8 bytes) of <timestamp>.<raw body>.<idempotency-key>; generated as 64 hex characters when not given.';
comment on column webhooks.inbound_integrations.assignee_pool is
  'Users (uuid) the deals of this integration are assigned to, in turn; empty leaves deals unassigned.';
comment on column webhooks.inbound_integrations.leads_assigned is
  'Round-robin counter, maintained by webhooks._process_lead: the next lead goes to assignee_pool[leads_assigned % cardinality + 1].';

create function webhooks._validate_inbound_integration() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if new.organization_id is null then
    perform webhooks._refuse_column('inbound_integrations', 'organization_id', 'must not be null');
  end if;
  if new.name is null or btrim(new.name) = '' then
    perform webhooks._refuse_column('inbound_integrations', 'name', 'must not be empty');
  end if;
  if new.signing_secret is null and tg_op = 'INSERT' then
    new.signing_secret := webhooks._generate_intake_secret();
  elsif new.signing_secret is null or length(new.signing_secret) < 16 or new.signing_secret ~ '\s' then
    perform webhooks._refuse_column('inbound_integrations', 'signing_secret',
      'must be at least 16 characters without whitespace', 'leave it null on insert to have one generated');
  end if;
  if new.lead_stage is null or btrim(new.lead_stage) = '' then
    perform webhooks._refuse_column('inbound_integrations', 'lead_stage', 'must not be empty');
  end if;
  if new.assignee_pool is null or array_position(new.assignee_pool, null) is not null then
    perform webhooks._refuse_column('inbound_integrations', 'assignee_pool', 'must not contain null',
      'use ''{}'' for no assignee');
  end if;
  if new.leads_assigned is null or new.leads_assigned < 0 then
    perform webhooks._refuse_column('inbound_integrations', 'leads_assigned', 'must be 0 or more');
  end if;
  -- A lead taking its turn (leads_assigned) is not a change of the integration.
  if tg_op = 'UPDATE' and (to_jsonb(new) - 'leads_assigned' - 'updated_at') <> (to_jsonb(old) - 'leads_assigned' - 'updated_at') then
    new.updated_at := now();
  end if;
  return new;
end
$$;
comment on function webhooks._validate_inbound_integration() is
  'Private trigger: validates an inbound integration, naming the offending column; generates signing_secret when absent; maintains updated_at.';
create trigger validate before insert or update on webhooks.inbound_integrations
  for each row execute function webhooks._validate_inbound_integration();
create index inbound_integrations_organization_id_idx on webhooks.inbound_integrations (organization_id);

create table webhooks.intake_activity (
  id              bigint generated always as identity primary key,
  request_id      text not null unique check (request_id ~ '^req_[A-Za-z0-9_-]{1,100}$'),
  integration_id  uuid references webhooks.inbound_integrations (id) on delete set null,
  organization_id uuid references public.organizations (id) on delete cascade,
  event_id        text check (event_id ~ '^ev_[0-9a-f]{32}$'),
  idempotency_key text,
  body_sha256     text,
  http_status     int not null check (http_status between 100 and 599),
  outcome         text not null check (outcome in ('accepted', 'duplicate', 'conflict', 'refused', 'processed', 'failed')),
  error           text,
  body            jsonb,
  contact_id      uuid,
  deal_id         uuid,
  received_at     timestamptz not null default now(),
  processed_at    timestamptz
);
comment on table webhooks.intake_activity is
  'One row per inbound request. outcome: accepted (202, lead queued) → processed (contact_id, deal_id) or failed (error); duplicate (200, event_id of the original); conflict (409); refused (4xx, error). body is kept for accepted leads only.';
comment on column webhooks.intake_activity.event_id is
  'ev_ + 32 hex. Set on the accepted row (outcome accepted/processed/failed) and repeated on its duplicates; null on conflicts and refusals.';
create index intake_activity_dedup_idx on webhooks.intake_activity (integration_id, idempotency_key, received_at desc)
  where event_id is not null;
create unique index intake_activity_event_idx on webhooks.intake_activity (event_id)
  where outcome in ('accepted', 'processed', 'failed');
create index intake_activity_organization_idx on webhooks.intake_activity (organization_id, received_at desc);

-- Phone numbers as contacts are matched: spaces, dashes, parentheses, dots (any non-digit) are
-- dropped; a leading + is kept; without one, 10 digits are a North-American number (+1…), 11
-- digits starting with 1 get a +, and anything else is kept as + and its digits. No digits: null.
create function webhooks._normalize_phone(phone text) returns text
language sql immutable strict parallel safe set search_path = pg_catalog, pg_temp as $$
  select case
           when digits = '' then null
           when btrim(phone) like '+%' then '+' || digits
           when length(digits) = 10 then '+1' || digits
           else '+' || digits
         end
    from (select regexp_replace(phone, '[^0-9]', '', 'g') as digits) d
$$;
comment on function webhooks._normalize_phone(text) is
  'Private: E.164-style form of a phone number for matching contacts: non-digits dropped, leading + kept, 10 digits → +1…, otherwise + and the digits; null without digits.';
create index contacts_normalized_phone_idx on public.contacts (organization_id, webhooks._normalize_phone(phone));

-- Records a request the HTTP layer refused itself (400, 401, 404, 405, 413, …).
create function webhooks._refuse_request(request_id text, integration_id uuid, http_status int, error text) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
#variable_conflict use_column
declare
  organization uuid;
begin
  if _refuse_request.request_id is null or _refuse_request.request_id !~ '^req_[A-Za-z0-9_-]{1,100}$' then
    perform webhooks._refuse_column('intake_activity', 'request_id', 'must be req_ followed by 1 to 100 of [A-Za-z0-9_-]');
  end if;
  if _refuse_request.http_status is null or _refuse_request.http_status not between 400 and 599 then
    perform webhooks._refuse_column('intake_activity', 'http_status', 'must be an error status (400-599)');
  end if;
  if _refuse_request.error is null or btrim(_refuse_request.error) = '' then
    perform webhooks._refuse_column('intake_activity', 'error', 'must say why the request was refused');
  end if;
  select i.organization_id into organization from webhooks.inbound_integrations i where i.id = _refuse_request.integration_id;
  insert into webhooks.intake_activity (request_id, integration_id, organization_id, http_status, outcome, error)
  values (_refuse_request.request_id, case when organization is null then null else _refuse_request.integration_id end,
          organization, _refuse_request.http_status, 'refused', _refuse_request.error);
end
$$;
comment on function webhooks._refuse_request(text, uuid, int, text) is
  'Private (webhooks_dispatcher): record a request refused by the HTTP layer as outcome refused. integration_id may be null or unknown (then recorded as null); request_id is req_…, unique.';

-- Accepts a lead whose signature the HTTP layer has verified.
create function webhooks._accept_lead(integration_id uuid, request_id text, idempotency_key text, body_sha256 text, body jsonb)
returns table (http_status int, status text, event_id text)
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
#variable_conflict use_column
declare
  integration webhooks.inbound_integrations;
  original webhooks.intake_activity;
  new_event text;
begin
  if current_setting('transaction_isolation') <> 'read committed' then
    raise exception using errcode = 'invalid_transaction_state',
      message = 'webhooks._accept_lead must run at READ COMMITTED: its idempotency check reads rows committed while it waited for the key''s lock';
  end if;
  if _accept_lead.request_id is null or _accept_lead.request_id !~ '^req_[A-Za-z0-9_-]{1,100}$' then
    perform webhooks._refuse_column('intake_activity', 'request_id', 'must be req_ followed by 1 to 100 of [A-Za-z0-9_-]');
  end if;
  if _accept_lead.idempotency_key is null or _accept_lead.idempotency_key !~ '^[A-Za-z0-9_-]{1,200}$' then
    perform webhooks._refuse_column('intake_activity', 'idempotency_key', 'must match [A-Za-z0-9_-]{1,200}');
  end if;
  if _accept_lead.body_sha256 is null or _accept_lead.body_sha256 !~ '^[0-9a-f]{64}$' then
    perform webhooks._refuse_column('intake_activity', 'body_sha256', 'must be 64 lower-case hex characters');
  end if;
  if _accept_lead.body is null or jsonb_typeof(_accept_lead.body) <> 'object' then
    perform webhooks._refuse_column('intake_activity', 'body', 'must be a JSON object');
  end if;

  select * into integration from webhooks.inbound_integrations i where i.id = _accept_lead.integration_id;
  if not found or not integration.is_active then
    insert into webhooks.intake_activity (request_id, integration_id, organization_id, idempotency_key, body_sha256, http_status, outcome, error)
    values (_accept_lead.request_id, integration.id, integration.organization_id, _accept_lead.idempotency_key,
            _accept_lead.body_sha256, 404, 'refused',
            case when integration.id is null then 'unknown integration' else 'inactive integration' end);
    return query select 404, 'not_found'::text, null::text;
    return;
  end if;

  -- One request per (integration, key) at a time; the next one sees what this one committed.
  perform pg_advisory_xact_lock(hashtextextended(
    'pg-webhooks:intake:' || integration.id::text || ':' || _accept_lead.idempotency_key, 0));

  select * into original from webhooks.intake_activity a
   where a.integration_id = integration.id and a.idempotency_key = _accept_lead.idempotency_key
     and a.event_id is not null and a.outcome in ('accepted', 'processed', 'failed')
     and a.received_at > now() - interval '24 hours'
   order by a.received_at desc
   limit 1;

  if found and original.body_sha256 = _accept_lead.body_sha256 then
    insert into webhooks.intake_activity (request_id, integration_id, organization_id, event_id, idempotency_key, body_sha256, http_status, outcome)
    values (_accept_lead.request_id, integration.id, integration.organization_id, original.event_id,
            _accept_lead.idempotency_key, _accept_lead.body_sha256, 200, 'duplicate');
    return query select 200, 'duplicate'::text, original.event_id;
  elsif found then
    insert into webhooks.intake_activity (request_id, integration_id, organization_id, idempotency_key, body_sha256, http_status, outcome, error)
    values (_accept_lead.request_id, integration.id, integration.organization_id, _accept_lead.idempotency_key,
            _accept_lead.body_sha256, 409, 'conflict',
            format('idempotency key already used within 24 hours with a different body (event %s)', original.event_id));
    return query select 409, 'conflict'::text, null::text;
  else
    new_event := 'ev_' || replace(gen_random_uuid()::text, '-', '');
    insert into webhooks.intake_activity (request_id, integration_id, organization_id, event_id, idempotency_key, body_sha256, http_status, outcome, body)
    values (_accept_lead.request_id, integration.id, integration.organization_id, new_event,
            _accept_lead.idempotency_key, _accept_lead.body_sha256, 202, 'accepted', _accept_lead.body);
    perform graphile_worker.add_job('webhooks.process_lead', json_build_object('eventId', new_event));
    return query select 202, 'accepted'::text, new_event;
  end if;
end
$$;
comment on function webhooks._accept_lead(uuid, text, text, text, jsonb) is
  'Private (webhooks_dispatcher), called by the HTTP layer after the signature, JSON and customer_phone checks, in its own READ COMMITTED transaction (autocommit). Returns one row (http_status, status, event_id): 202 accepted with a new ev_… (activity row with the body, and a graphile job webhooks.process_lead {"eventId"} queued in the same transaction); 200 duplicate with the original event_id (same idempotency_key and body_sha256 within 24 h of the original); 409 conflict (same key, different body_sha256, event_id null); 404 not_found (unknown or inactive integration, event_id null). Every call records one intake_activity row; concurrent identical calls are serialised by an advisory lock on (integration, key). Raises check_violation naming idempotency_key, body_sha256, body or request_id on bad input.';

-- Turns an accepted lead into a contact and a deal. The CRM capture triggers emit
-- contact.created/updated(/assigned) and deal.created/assigned by themselves.
create function webhooks._process_lead(event_id text) returns table (contact_id uuid, deal_id uuid)
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
#variable_conflict use_column
declare
  known_fields constant text[] := array['customer_phone', 'first_name', 'last_name', 'email', 'business_name',
                                        'address', 'city', 'source'];
  activity webhooks.intake_activity;
  integration webhooks.inbound_integrations;
  normalized_phone text;
  extra jsonb;
  assignee uuid;
  contact uuid;
  deal uuid;
begin
  -- The row lock makes a second, concurrent call wait and then see the lead processed.
  select * into activity from webhooks.intake_activity a
   where a.event_id = _process_lead.event_id and a.outcome in ('accepted', 'processed', 'failed')
   for update;
  if not found then
    raise exception using errcode = 'no_data_found', column = 'event_id', table = 'intake_activity', schema = 'webhooks',
      message = format('webhooks._process_lead: no accepted lead with intake_activity.event_id %L', _process_lead.event_id);
  end if;
  if activity.outcome = 'processed' then
    return query select activity.contact_id, activity.deal_id;
    return;
  elsif activity.outcome = 'failed' then
    return;
  end if;

  select * into integration from webhooks.inbound_integrations i where i.id = activity.integration_id;
  normalized_phone := webhooks._normalize_phone(activity.body->>'customer_phone');
  if integration.id is null or normalized_phone is null then
    update webhooks.intake_activity a
       set outcome = 'failed', processed_at = now(),
           error = case when integration.id is null then 'the integration was deleted' else 'customer_phone has no digits' end
     where a.id = activity.id;
    return;
  end if;

  -- One contact per normalised phone and organization, even when leads for it are processed at once.
  perform pg_advisory_xact_lock(hashtextextended(
    'pg-webhooks:intake-contact:' || integration.organization_id::text || ':' || normalized_phone, 0));

  -- Round-robin: the row lock on the integration hands out each turn exactly once.
  update webhooks.inbound_integrations i
     set leads_assigned = i.leads_assigned + 1
   where i.id = integration.id and cardinality(i.assignee_pool) > 0
  returning i.assignee_pool[(i.leads_assigned - 1) % cardinality(i.assignee_pool) + 1] into assignee;

  extra := activity.body - known_fields;
  select c.id into contact from public.contacts c
   where c.organization_id = integration.organization_id and webhooks._normalize_phone(c.phone) = normalized_phone
   order by c.created_at, c.id
   limit 1
   for update;
  if found then
    update public.contacts c
       set first_name    = coalesce(nullif(btrim(activity.body->>'first_name'), ''), c.first_name),
           last_name     = coalesce(nullif(btrim(activity.body->>'last_name'), ''), c.last_name),
           email         = coalesce(nullif(btrim(activity.body->>'email'), ''), c.email),
           business_name = coalesce(nullif(btrim(activity.body->>'business_name'), ''), c.business_name),
           address       = coalesce(nullif(btrim(activity.body->>'address'), ''), c.address),
           city          = coalesce(nullif(btrim(activity.body->>'city'), ''), c.city),
           source        = coalesce(nullif(btrim(activity.body->>'source'), ''), c.source),
           custom_fields = c.custom_fields || extra
     where c.id = contact;
  else
    insert into public.contacts (organization_id, first_name, last_name, email, phone, business_name, address, city,
                                 source, assigned_to, custom_fields)
    values (integration.organization_id,
            nullif(btrim(activity.body->>'first_name'), ''), nullif(btrim(activity.body->>'last_name'), ''),
            nullif(btrim(activity.body->>'email'), ''), normalized_phone,
            nullif(btrim(activity.body->>'business_name'), ''), nullif(btrim(activity.body->>'address'), ''),
            nullif(btrim(activity.body->>'city'), ''), nullif(btrim(activity.body->>'source'), ''),
            assignee, extra)
    returning id into contact;
  end if;

  insert into public.deals (organization_id, contact_id, title, stage, assigned_to)
  values (integration.organization_id, contact, 'Lead from ' || integration.name, integration.lead_stage, assignee)
  returning id into deal;

  update webhooks.intake_activity a
     set outcome = 'processed', contact_id = contact, deal_id = deal, processed_at = now(), error = null
   where a.id = activity.id;
  return query select contact, deal;
end
$$;
comment on function webhooks._process_lead(text) is
  'Private (webhooks_dispatcher), called by the graphile task webhooks.process_lead with payload {"eventId"}. Upserts the contact by webhooks._normalize_phone(customer_phone) within the organization (an existing one gets the given first_name, last_name, email, business_name, address, city, source; other body fields are merged into custom_fields; a new one gets assigned_to), opens a deal "Lead from <integration name>" at lead_stage assigned round-robin from assignee_pool, and marks the activity processed. Returns (contact_id, deal_id). Idempotent: an already processed event returns the same ids and changes nothing. A permanent problem (integration deleted, no digits in customer_phone) marks the activity failed with error and returns no row (do not retry). Raises no_data_found for an unknown event id.';

-- Privileges: nothing for PUBLIC; the private functions are the dispatcher's.
revoke execute on function webhooks._refuse_column(text, text, text, text), webhooks._generate_intake_secret(),
                           webhooks._validate_inbound_integration(), webhooks._normalize_phone(text),
                           webhooks._refuse_request(text, uuid, int, text),
                           webhooks._accept_lead(uuid, text, text, text, jsonb), webhooks._process_lead(text)
  from public;
grant execute on function webhooks._refuse_request(text, uuid, int, text),
                          webhooks._accept_lead(uuid, text, text, text, jsonb), webhooks._process_lead(text)
  to webhooks_dispatcher;
-- Run as the writer: the validation trigger and what it calls, and the contacts index expression.
grant execute on function webhooks._refuse_column(text, text, text, text), webhooks._generate_intake_secret(),
                          webhooks._validate_inbound_integration(), webhooks._normalize_phone(text)
  to webhooks_app, webhooks_dispatcher;

-- Applications manage their integrations (not the round-robin counter) and read their activity.
grant select, delete on webhooks.inbound_integrations to webhooks_app;
grant insert (id, organization_id, name, signing_secret, is_active, lead_stage, assignee_pool),
      update (name, signing_secret, is_active, lead_stage, assignee_pool)
   on webhooks.inbound_integrations to webhooks_app;
grant select on webhooks.intake_activity to webhooks_app;
-- The daemon reads integrations (with their secrets) to verify requests; it writes only through the functions.
grant select on webhooks.inbound_integrations, webhooks.intake_activity to webhooks_dispatcher;

do $$
declare
  tenant constant text := 'organization_id = nullif(current_setting(''app.organization_id'', true), '''')::uuid';
begin
  alter table webhooks.inbound_integrations enable row level security;
  alter table webhooks.inbound_integrations force row level security;
  alter table webhooks.intake_activity enable row level security;
  alter table webhooks.intake_activity force row level security;

  execute format('create policy tenant_isolation on webhooks.inbound_integrations for all to webhooks_app using (%s) with check (%s)',
                 tenant, tenant);
  execute format('create policy tenant_isolation on webhooks.intake_activity for select to webhooks_app using (%s)', tenant);
  create policy dispatcher on webhooks.inbound_integrations for select to webhooks_dispatcher using (true);
  create policy dispatcher on webhooks.intake_activity for select to webhooks_dispatcher using (true);

  -- The owner, for the definer functions above (a superuser owner bypasses RLS anyway). They act
  -- for the organization of the integration a request names, never for a caller-given one:
  -- _accept_lead/_refuse_request record activity; _process_lead reads the integration, takes its
  -- round-robin turn, upserts the contact, opens the deal and marks the activity processed.
  execute format('create policy intake on webhooks.intake_activity for all to %I using (true) with check (true)', current_user);
  execute format('create policy intake_read on webhooks.inbound_integrations for select to %I using (true)', current_user);
  execute format('create policy intake_turn on webhooks.inbound_integrations for update to %I using (true) with check (true)', current_user);
  execute format('create policy intake_read on public.contacts for select to %I using (true)', current_user);
  execute format('create policy intake_insert on public.contacts for insert to %I with check (true)', current_user);
  execute format('create policy intake_update on public.contacts for update to %I using (true) with check (true)', current_user);
  execute format('create policy intake_read on public.deals for select to %I using (true)', current_user);
  execute format('create policy intake_insert on public.deals for insert to %I with check (true)', current_user);
end
$$;
