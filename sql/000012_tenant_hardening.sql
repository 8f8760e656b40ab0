-- Tenant hardening (README "Tenancy"): four findings of an outside security review.
--
-- 1. The tenant check of the SECURITY DEFINER functions follows the role the caller acts as
--    (SET [LOCAL] ROLE, else the session user), not the login: a superuser pool that does
--    `set local role webhooks_app` is an application. One helper, webhooks._assert_tenant,
--    answers for every function: no organization set, another organization's row, a missing row.
-- 2. A row of one organization never references a row of another: composite foreign keys on
--    (organization_id, …) in the reference CRM, and in the webhooks schema an endpoint's state
--    follows its configuration's organization and a webhook id reused by another organization
--    never inherits what the previous owner left behind. An upgrade detaches (and records) the
--    references across organizations that the previous release let through.
-- 3. A delivery has at most one attempt in flight and its attempt numbers are unique: replay of
--    a delivery already queued or in flight sends nothing more and says so; the queue row numbers
--    attempts as they are claimed; webhook_logs refuses a second row under one number.
-- 4. No secret where it can be read: static header values are redacted from webhook_logs (by
--    the daemon, src/delivery/attempt.ts, and here from the rows logged before), and a NOT NULL
--    column left null is refused by name before PostgreSQL would answer "Failing row contains
--    (…)" with the row's secret and headers in it.

do $$
begin
  -- ON DELETE SET NULL (column) below keeps organization_id when a contact is deleted.
  if current_setting('server_version_num')::int < 150000 then
    raise exception using
      message = format('pg-webhooks needs PostgreSQL 15 or later from this release on (this server is %s)', current_setting('server_version')),
      hint = 'the composite foreign keys of migration 000012 use ON DELETE SET NULL (column)';
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. Who the caller is.

-- Definer functions check their caller with this. The caller acts for every organization when
-- the role it acts as is a superuser, has BYPASSRLS, or has the privileges of webhooks_dispatcher
-- (pg_has_role … 'usage', the test row-level security applies to a policy's roles) — the roles
-- that see every organization's webhooks rows. Otherwise it acts for the organization of its
-- transaction only, and without one for none.
--
-- The role it acts as: the role of SET [LOCAL] ROLE (the `role` setting), else the session user
-- (SET SESSION AUTHORIZATION's, else the login). Neither changes inside a SECURITY DEFINER
-- function (current_user is the function's owner there, and SET ROLE is refused inside one), so
-- a chain of definer functions, ours or anyone's, answers for the session that called it.
--
-- organization_id is the organization of the row acted on (null: no such row). When `missing`
-- is given, another organization's row is answered exactly like a missing one (no_data_found,
-- "<what>: <missing>"), so nothing about it is disclosed; without it (emit, which names the
-- organization itself), with insufficient_privilege.
drop function webhooks._assert_tenant(uuid, text);
create function webhooks._assert_tenant(organization_id uuid, what text, missing text default null) returns void
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
declare
  tenant constant uuid := webhooks.current_organization_id();
  acting_as constant text := case when current_setting('role') = 'none' then session_user::text else current_setting('role') end;
  for_everyone boolean;
begin
  if tenant is null then
    select r.rolsuper or r.rolbypassrls or pg_has_role(r.oid, 'webhooks_dispatcher', 'usage')
      into for_everyone
      from pg_roles r where r.rolname = acting_as;
    if not coalesce(for_everyone, false) then
      raise exception using errcode = 'insufficient_privilege',
        message = format('%s: no organization set for this transaction', what),
        hint = 'select set_config(''app.organization_id'', <organization id>, true) inside the transaction';
    end if;
  end if;
  if organization_id is null or organization_id is distinct from coalesce(tenant, organization_id) then
    if missing is not null then
      raise exception using errcode = 'no_data_found', message = format('%s: %s', what, missing);
    end if;
    raise exception using errcode = 'insufficient_privilege',
      message = format('%s: organization %s is not the organization of this transaction', what, organization_id);
  end if;
end
$$;
comment on function webhooks._assert_tenant(uuid, text, text) is
  'Private: may the caller (the role it acts as, not its login) act on a row of this organization? Raises insufficient_privilege without an organization set, no_data_found naming `missing` for another organization''s or a missing row.';
revoke execute on function webhooks._assert_tenant(uuid, text, text) from public;

-- emit (000004) calls _assert_tenant(organization_id, 'webhooks.emit') and is unchanged. The
-- others look their row up and leave every answer to the helper.

create or replace function webhooks.send_test(webhook_id uuid) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = send_test.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.send_test', format('no webhook %s', webhook_id));
  return webhooks._enqueue(config.organization_id, array['webhook.test'],
    jsonb_build_object('webhook_id', config.id, 'name', config.name, 'message', 'This is a test event from pg-webhooks.'),
    null, config.id);
end
$$;

create or replace function webhooks.rotate_secret(webhook_id uuid) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
  rotated text;
begin
  select * into config from webhooks.webhook_configurations c where c.id = rotate_secret.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.rotate_secret', format('no webhook %s', webhook_id));
  -- whsec_ + base64 of 32 bytes: valid for every scheme (the HMAC schemes key on its UTF-8 bytes).
  update webhooks.webhook_configurations c
     set secret = webhooks._generate_secret()
   where c.id = config.id
  returning c.secret into rotated;
  return rotated;
end
$$;

create or replace function webhooks._set_aside_row(set_aside_id bigint, what text) returns webhooks.outbox_set_aside
language plpgsql stable set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  row webhooks.outbox_set_aside;
begin
  select * into row from webhooks.outbox_set_aside s where s.id = set_aside_id;
  perform webhooks._assert_tenant(row.organization_id, what, format('no set-aside event %s', set_aside_id));
  return row;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- 2. References stay within one organization.
--
-- A foreign key's checks and actions run as the table's owner, past row-level security: with
-- contact_id → contacts (id), organization A could attach a deal to B's contact, B's delete then
-- reached A's rows, and the error told A whether an id of B's existed. Keyed on
-- (organization_id, id), another organization's row is not a candidate at all: the same error
-- as for a row that does not exist, and deletes stay within the organization.

-- References the previous release let through are detached (set to null; the referencing row
-- itself is kept in its organization) and recorded here, for the DBA. Nothing a tenant could
-- read is lost: row-level security never let it see the row it referenced.
create table webhooks.detached_references (
  id                         bigint generated always as identity primary key,
  table_name                 text not null,
  row_id                     uuid not null,
  organization_id            uuid not null,
  column_name                text not null,
  referenced_id              uuid not null,
  referenced_organization_id uuid not null,
  detached_at                timestamptz not null default now()
);
comment on table webhooks.detached_references is
  'References from one organization''s row to another organization''s that the upgrade to 000012 set to null (table_name.column_name of row_id used to hold referenced_id). For the DBA; applications are not granted it.';
alter table webhooks.detached_references enable row level security;
alter table webhooks.detached_references force row level security;
do $$
begin
  -- The owner writes it below (a superuser owner bypasses RLS anyway).
  execute format('create policy owner on webhooks.detached_references for all to %I using (true) with check (true)', current_user);
end
$$;

do $$
declare
  crm constant regclass[] := array['public.contacts', 'public.deals', 'public.conversations', 'public.messages']::regclass[];
  t regclass;
  enabled record;
  detached int;
begin
  -- The owner runs the migrations, and RLS is forced on these tables (000004): lifted for this
  -- transaction's repair, forced again at its end. The repair is no change of the tenant's data
  -- (no updated_at, no captured event), so the tables' enabled triggers are off meanwhile.
  foreach t in array crm loop
    execute format('alter table %s no force row level security', t);
  end loop;
  create temporary table enabled_triggers on commit drop as
    select tg.tgrelid::regclass as relation, tg.tgname as name
      from pg_trigger tg
     where tg.tgrelid = any (crm[2:4]) and not tg.tgisinternal and tg.tgenabled <> 'D';
  for enabled in select * from enabled_triggers loop
    execute format('alter table %s disable trigger %I', enabled.relation, enabled.name);
  end loop;

  with crossing as (
    select 'public.deals' as table_name, d.id as row_id, d.organization_id, 'contact_id' as column_name,
           c.id as referenced_id, c.organization_id as referenced_organization_id
      from public.deals d join public.contacts c on c.id = d.contact_id
     where c.organization_id <> d.organization_id
    union all
    select 'public.conversations', v.id, v.organization_id, 'contact_id', c.id, c.organization_id
      from public.conversations v join public.contacts c on c.id = v.contact_id
     where c.organization_id <> v.organization_id
    union all
    select 'public.messages', m.id, m.organization_id, 'conversation_id', v.id, v.organization_id
      from public.messages m join public.conversations v on v.id = m.conversation_id
     where v.organization_id <> m.organization_id
  )
  insert into webhooks.detached_references (table_name, row_id, organization_id, column_name, referenced_id, referenced_organization_id)
  select * from crossing;
  get diagnostics detached = row_count;

  update public.deals d set contact_id = null
    from webhooks.detached_references r where r.table_name = 'public.deals' and r.row_id = d.id;
  update public.conversations v set contact_id = null
    from webhooks.detached_references r where r.table_name = 'public.conversations' and r.row_id = v.id;
  update public.messages m set conversation_id = null
    from webhooks.detached_references r where r.table_name = 'public.messages' and r.row_id = m.id;

  for enabled in select * from enabled_triggers loop
    execute format('alter table %s enable trigger %I', enabled.relation, enabled.name);
  end loop;
  foreach t in array crm loop
    execute format('alter table %s force row level security', t);
  end loop;
  if detached > 0 then
    raise warning using message = format(
      'detached %s references to another organization''s rows (set to null; each one is listed in webhooks.detached_references)', detached);
  end if;
end
$$;

-- The unique keys the composite references point at. Each replaces the index on
-- organization_id alone, which it serves as well: no more index upkeep per write than before.
alter table public.contacts add constraint contacts_organization_id_id_key unique (organization_id, id);
drop index public.contacts_organization_id_idx;
alter table public.conversations add constraint conversations_organization_id_id_key unique (organization_id, id);
drop index public.conversations_organization_id_idx;

-- Deleting a contact still clears its deals' and conversations' contact_id (and keeps their
-- organization_id); deleting a conversation still deletes its messages.
alter table public.deals
  drop constraint deals_contact_id_fkey,
  add constraint deals_contact_id_fkey foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete set null (contact_id);
alter table public.conversations
  drop constraint conversations_contact_id_fkey,
  add constraint conversations_contact_id_fkey foreign key (organization_id, contact_id)
    references public.contacts (organization_id, id) on delete set null (contact_id);
alter table public.messages
  drop constraint messages_conversation_id_fkey,
  add constraint messages_conversation_id_fkey foreign key (organization_id, conversation_id)
    references public.conversations (organization_id, id) on delete cascade;

-- The webhooks schema. Applications write only configurations and inbound integrations there;
-- an inbound integration's organization_id → organizations is held to the caller's organization
-- by its policy's WITH CHECK, which fails before any foreign-key check. Deliveries, queue rows
-- and logs carry their event's organization and a webhook id, without foreign keys (they are
-- written on the hot path, see 000002). A tenant may choose a new configuration's id, so an id
-- another organization has just deleted can come back as someone else's endpoint: what the
-- previous owner left under it must never become the new endpoint's work.

-- An endpoint's state (000011) carries its configuration's organization, now keyed on both:
-- claims compare it with the queued delivery's (src/delivery/claim-statement.ts), and a
-- configuration's organization can no longer change under it (an update is refused, as an update
-- of its id already was; a webhook belongs to one organization for good).
alter table webhooks.webhook_configurations
  add constraint webhook_configurations_organization_id_id_key unique (organization_id, id);
update webhooks.endpoint_states s set organization_id = c.organization_id
  from webhooks.webhook_configurations c where c.id = s.webhook_id and c.organization_id <> s.organization_id;
alter table webhooks.endpoint_states
  drop constraint endpoint_states_webhook_id_fkey,
  add constraint endpoint_states_webhook_id_fkey foreign key (organization_id, webhook_id)
    references webhooks.webhook_configurations (organization_id, id) on delete cascade;

-- Deleting a configuration deletes its deliveries and queue rows (000011), but a fan-out that
-- read the configuration before the delete committed can still create one. Such leftovers of
-- another organization go when the id is taken again; and claims only ever pair a queued
-- delivery with an endpoint of its own organization (src/delivery/claim-statement.ts).
create or replace function webhooks._create_endpoint_state() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  delete from webhooks.delivery_queue q where q.webhook_id = new.id and q.organization_id <> new.organization_id;
  delete from webhooks.deliveries d where d.webhook_id = new.id and d.organization_id <> new.organization_id;
  insert into webhooks.endpoint_states (webhook_id, organization_id) values (new.id, new.organization_id);
  return null;
end
$$;
comment on function webhooks._create_endpoint_state() is
  'Private trigger: every new endpoint gets its endpoint_states row; deliveries another organization left under the same id are deleted.';

-- The two views that join deliveries or logs to configurations by webhook id match the
-- organization too: a configuration never counts or lists what another organization left under
-- its id. (Both read as their caller, 000004 and 000005; the option is restated, as CREATE OR
-- REPLACE VIEW resets it.)
create or replace view webhooks.webhook_stats with (security_invoker = true) as
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
    on l.webhook_id = c.id and l.organization_id = c.organization_id and l.created_at > now() - interval '24 hours'
 group by c.id, c.organization_id, c.name;

create or replace view webhooks.dead_deliveries with (security_invoker = true) as
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
  join webhooks.webhook_configurations c on c.id = d.webhook_id and c.organization_id = d.organization_id
 where d.state = 'dead';

-- ---------------------------------------------------------------------------------------------
-- 3. One attempt in flight, unique attempt numbers.
--
-- A delivery waits for and makes its attempts through its one row in webhooks.delivery_queue
-- (primary key delivery_id): a claim marks the row (claimed_by), and only the claim's holder
-- finishes or reschedules it. 000005's replay queued one job per call, so three replays in one
-- transaction sent three requests, all logged as attempt 2. Now:
-- - replay queues a delivery only when it has no queue row; already queued, it becomes due at
--   once; being attempted, nothing changes. It says which ('queued', 'already queued',
--   'in flight').
-- - the queue row numbers attempts: each claim takes the next number, so a claim given back
--   while its attempt still runs (its daemon taken for dead) never leads to a second attempt
--   under the same number.
-- - webhook_logs refuses a second row under one (delivery_id, attempt). Its unique index
--   replaces the index on delivery_id, which it serves as well: one index per log row, as before.

alter table webhooks.delivery_queue add column attempts int not null default 0;
comment on column webhooks.delivery_queue.attempts is
  'Attempts of the delivery so far, counting one in flight: each claim takes the next number (attempts + 1), so no number is used twice.';
update webhooks.delivery_queue q set attempts = d.attempts from webhooks.deliveries d where d.id = q.delivery_id;

-- Queues deliveries that have no queue row: pending again, a fresh retry budget (attempt
-- numbers continue). Returns how many it queued; one already queued counts for nothing. Runs
-- with the privileges of the replay function that calls it, which has checked the tenant.
create or replace function webhooks._requeue(delivery_ids uuid[]) returns int
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  queued int;
begin
  -- The queue row first (its primary key decides between concurrent replays; the loser waits
  -- for the winner's commit and inserts nothing), then the delivery: the order the daemon's
  -- record statement locks them in.
  with entered as (
    insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, attempts)
    select d.id, d.webhook_id, d.organization_id, d.attempts from webhooks.deliveries d where d.id = any (delivery_ids)
    on conflict (delivery_id) do nothing
    returning delivery_id
  ), requeued as (
    update webhooks.deliveries d
       set state = 'pending',
           next_attempt_at = now(),
           completed_at = null,
           attempts_before_replay = d.attempts,
           updated_at = now()
      from entered e
     where d.id = e.delivery_id
    returning d.id
  )
  select count(*) into queued from requeued;
  if queued > 0 then
    perform pg_notify('webhooks_deliveries', '');
  end if;
  return queued;
end
$$;

-- The return type changes (void → text), so the function is dropped and made again.
drop function webhooks.replay(uuid);
create function webhooks.replay(delivery_id uuid) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  delivery webhooks.deliveries;
  config webhooks.webhook_configurations;
  queued webhooks.delivery_queue;
begin
  select * into delivery from webhooks.deliveries d where d.id = replay.delivery_id;
  select * into config from webhooks.webhook_configurations c
   where c.id = delivery.webhook_id and c.organization_id = delivery.organization_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay', format('no delivery %s', delivery_id));
  perform webhooks._refuse_inactive(config, 'webhooks.replay');

  -- Locked: claims skip locked rows, so none takes it while this decides.
  select * into queued from webhooks.delivery_queue q where q.delivery_id = delivery.id for update;
  if found and queued.claimed_by is not null then
    return 'in flight';
  elsif found then
    update webhooks.delivery_queue q set due_at = least(q.due_at, now()), retry = false where q.delivery_id = delivery.id;
    update webhooks.deliveries d
       set state = 'pending', next_attempt_at = now(), attempts_before_replay = d.attempts, updated_at = now()
     where d.id = delivery.id;
    return 'already queued';
  elsif webhooks._requeue(array[delivery.id]) = 1 then
    return 'queued';
  end if;
  -- A concurrent replay queued it first (its row was not committed when this looked).
  select * into queued from webhooks.delivery_queue q where q.delivery_id = delivery.id;
  return case when queued.claimed_by is null then 'already queued' else 'in flight' end;
end
$$;
comment on function webhooks.replay(uuid) is
  'Public: deliver one delivery again. Returns ''queued'' (it had finished, succeeded or dead: pending again with a fresh retry budget of max_retries, attempt numbers continuing in webhook_logs), ''already queued'' (it was waiting for an attempt: due at once, with a fresh retry budget, still one attempt at a time) or ''in flight'' (an attempt is being made: nothing changes; replay again once it is logged). Never a second attempt at once.';
revoke execute on function webhooks.replay(uuid) from public;
grant execute on function webhooks.replay(uuid) to webhooks_app, webhooks_dispatcher;

create or replace function webhooks.replay_dead(webhook_id uuid) returns int
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = replay_dead.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay_dead', format('no webhook %s', webhook_id));
  perform webhooks._refuse_inactive(config, 'webhooks.replay_dead');
  return webhooks._requeue(array(
    select d.id from webhooks.deliveries d
     where d.webhook_id = config.id and d.organization_id = config.organization_id and d.state = 'dead'));
end
$$;
comment on function webhooks.replay_dead(uuid) is
  'Public: replay every dead delivery of one webhook (see webhooks.replay); returns how many were queued (one already queued again counts for nothing).';

-- Attempt numbers an older release used twice for one delivery (see above) are renumbered in
-- the order the attempts were logged, and the delivery's count follows, so that the unique key
-- can be built and the next attempt continues after the last one logged. webhook_logs is
-- append-only (000002's trigger) and RLS is forced on it without a policy for the owner: both
-- are lifted for this transaction's repair only.
do $$
declare
  renumbered int;
  renumbered_deliveries int;
begin
  alter table webhooks.webhook_logs no force row level security;
  alter table webhooks.webhook_logs disable trigger append_only;
  create temporary table renumbered_attempts on commit drop as
    select l.id, l.delivery_id, row_number() over (partition by l.delivery_id order by l.id)::int as attempt
      from webhooks.webhook_logs l
     where l.delivery_id in (select delivery_id from webhooks.webhook_logs group by delivery_id, attempt having count(*) > 1);
  update webhooks.webhook_logs l set attempt = n.attempt
    from renumbered_attempts n where l.id = n.id and l.attempt <> n.attempt;
  get diagnostics renumbered = row_count;
  update webhooks.deliveries d set attempts = greatest(d.attempts, n.last)
    from (select delivery_id, max(attempt) as last from renumbered_attempts group by delivery_id) n
   where d.id = n.delivery_id;
  get diagnostics renumbered_deliveries = row_count;
  update webhooks.delivery_queue q set attempts = d.attempts
    from webhooks.deliveries d where d.id = q.delivery_id and q.attempts <> d.attempts;
  alter table webhooks.webhook_logs enable trigger append_only;
  alter table webhooks.webhook_logs force row level security;
  if renumbered > 0 then
    raise warning using message = format(
      'renumbered %s attempts of %s %s in webhook_logs: an older release logged them under a number already used; they now follow the order they were logged',
      renumbered, renumbered_deliveries, case when renumbered_deliveries = 1 then 'delivery' else 'deliveries' end);
  end if;
end
$$;

drop index webhooks.webhook_logs_delivery_id_idx;
alter table webhooks.webhook_logs add constraint webhook_logs_delivery_id_attempt_key unique (delivery_id, attempt);

-- ---------------------------------------------------------------------------------------------
-- 4. No secret where it can be read.
--
-- PostgreSQL answers a NOT NULL violation with "Failing row contains (…)": the whole row, with a
-- configuration's secret and static headers or an integration's signing secret, sent to the
-- client and written to the server's log. (Roles under row-level security get no such detail;
-- superusers and the owner do.) Every NOT NULL column left null is refused here first, by name.
create function webhooks._refuse_null_columns() returns trigger
language plpgsql set search_path = pg_catalog, pg_temp as $$
declare
  columns constant jsonb := to_jsonb(new);
  column_name name;
begin
  for column_name in
    select a.attname from pg_attribute a
     where a.attrelid = tg_relid and a.attnum > 0 and a.attnotnull and not a.attisdropped
     order by a.attnum
  loop
    if columns -> column_name = 'null'::jsonb then
      raise exception using errcode = 'not_null_violation',
        message = format('%s.%s must not be null', tg_table_name, column_name),
        column = column_name, table = tg_table_name, schema = tg_table_schema;
    end if;
  end loop;
  return new;
end
$$;
comment on function webhooks._refuse_null_columns() is
  'Private trigger: refuses a NOT NULL column left null by name, before PostgreSQL''s own error would show the row (and its secrets).';
revoke execute on function webhooks._refuse_null_columns() from public;
-- Runs as the writer, like 000004's validation trigger.
grant execute on function webhooks._refuse_null_columns() to webhooks_app, webhooks_dispatcher;
-- Named to fire after the validate triggers (alphabetical order), which fill in what they generate.
create trigger validate_not_null before insert or update on webhooks.webhook_configurations
  for each row execute function webhooks._refuse_null_columns();
create trigger validate_not_null before insert or update on webhooks.inbound_integrations
  for each row execute function webhooks._refuse_null_columns();

-- Attempts logged before this release hold static header values (the daemon redacts them from
-- now on: src/delivery/attempt.ts). Every request header in webhook_logs that pg-webhooks did not
-- set itself is a configuration's static header (000010 keeps their names apart), so each one's
-- value becomes "[redacted]" too: the headers of src/delivery/attempt.ts and sign.ts stay, and
-- the hmac-hex / hmac-prefixed signature under its configuration's signature_header when it looks
-- like one (a signature of a deleted configuration, or under a since-renamed header, is redacted
-- with the rest: it proves nothing any more). Only rows that change are rewritten.
do $$
declare
  redacted int;
begin
  alter table webhooks.webhook_logs no force row level security;
  alter table webhooks.webhook_logs disable trigger append_only;
  with recomputed as (
    select l.id,
           (select jsonb_object_agg(h.key, case
                     when h.key in ('content-type', 'user-agent', 'x-webhook-event', 'x-webhook-delivery-id',
                                    'webhook-id', 'webhook-timestamp', 'webhook-signature',
                                    'x-webhook-timestamp', 'x-webhook-signature', 'idempotency-key')
                       or (h.key = lower(c.signature_header) and h.value #>> '{}' ~ '^(sha256=)?[0-9a-f]{64}$')
                       then h.value
                     else '"[redacted]"'::jsonb end)
              from jsonb_each(l.request_headers) h) as headers
      from webhooks.webhook_logs l
      left join webhooks.webhook_configurations c on c.id = l.webhook_id and c.organization_id = l.organization_id
     where l.request_headers <> '{}'::jsonb
  )
  update webhooks.webhook_logs l set request_headers = r.headers
    from recomputed r
   where r.id = l.id and r.headers <> l.request_headers;
  get diagnostics redacted = row_count;
  alter table webhooks.webhook_logs enable trigger append_only;
  alter table webhooks.webhook_logs force row level security;
  if redacted > 0 then
    raise warning using message = format(
      'redacted the static header values of %s attempts in webhook_logs.request_headers (names kept, values "[redacted]"); credentials sent in static headers were readable there until now',
      redacted);
  end if;
end
$$;
