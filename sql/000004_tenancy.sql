-- Tenancy (README, "Tenancy"): roles, grants and row-level security.
--
-- webhooks_app         what applications log in as (or grant to their own login role): CRUD on
--                      its organization's CRM rows and webhook configurations, SELECT on its
--                      deliveries and logs. The organization is the transaction-local setting
--                      app.organization_id; unset or empty sees nothing.
-- webhooks_dispatcher  the daemon: explicit policies on the webhooks tables (no superuser, no
--                      BYPASSRLS needed), full use of graphile_worker.
-- The table owner (whoever runs the migrations) owns the SECURITY DEFINER functions; because RLS
-- is FORCEd, it gets the narrow policies those functions need (outbox inserts, reading
-- configurations) and nothing else.

-- Roles are cluster-wide: a second database on the same server reuses them, and two databases
-- migrating at once must not trip over each other.
do $$
declare
  role_name text;
begin
  foreach role_name in array array['webhooks_app', 'webhooks_dispatcher'] loop
    if not exists (select 1 from pg_roles where rolname = role_name) then
      begin
        execute format('create role %I nologin', role_name);
      exception when duplicate_object or unique_violation then
        null; -- created concurrently by another database's migration
      end;
    end if;
  end loop;
end
$$;

-- The tenant of the current transaction, as the policies read it.
create function webhooks.current_organization_id() returns uuid
language sql stable set search_path = pg_catalog, pg_temp as $$
  select nullif(current_setting('app.organization_id', true), '')::uuid
$$;
comment on function webhooks.current_organization_id() is
  'Public: the organization of this transaction (app.organization_id), or null when unset.';

-- Definer functions check their caller's tenant with this: a caller with a tenant acts only on
-- that tenant; a caller without one must be the dispatcher, a BYPASSRLS role or a superuser.
create function webhooks._assert_tenant(organization_id uuid, what text) returns void
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
declare
  tenant uuid := nullif(current_setting('app.organization_id', true), '')::uuid;
begin
  if tenant is not null then
    if organization_id is distinct from tenant then
      raise exception using errcode = 'insufficient_privilege',
        message = format('%s: organization %s is not the organization of this transaction', what, organization_id);
    end if;
  elsif not exists (select 1 from pg_roles r
                     where r.rolname = session_user
                       and (r.rolsuper or r.rolbypassrls or pg_has_role(session_user, 'webhooks_dispatcher', 'member'))) then
    raise exception using errcode = 'insufficient_privilege',
      message = format('%s: no organization set for this transaction', what),
      hint = 'select set_config(''app.organization_id'', <organization id>, true) inside the transaction';
  end if;
end
$$;
comment on function webhooks._assert_tenant(uuid, text) is 'Private: refuse acting on another organization from a SECURITY DEFINER function.';

-- emit and send_test run as the owner (they write the outbox); they act only within the caller's tenant.
create or replace function webhooks.emit(organization_id uuid, event_type text, data jsonb) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if organization_id is null then
    raise exception using errcode = 'not_null_violation', message = 'webhooks.emit: organization_id must not be null';
  end if;
  perform webhooks._assert_tenant(organization_id, 'webhooks.emit');
  if event_type = 'webhook.test' or not exists (select 1 from webhooks.event_types t where t.name = event_type) then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.emit: unknown event type %L', event_type),
      hint = 'see select name from webhooks.event_types (webhook.test is sent with webhooks.send_test)';
  end if;
  return webhooks._enqueue(organization_id, array[event_type], coalesce(data, '{}'::jsonb), null);
end
$$;

create or replace function webhooks.send_test(webhook_id uuid) returns uuid
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = send_test.webhook_id;
  -- Another organization's webhook gets the same answer as a missing one: nothing is disclosed.
  if not found or config.organization_id is distinct from
                  coalesce(webhooks.current_organization_id(), config.organization_id) then
    raise exception using errcode = 'no_data_found', message = format('webhooks.send_test: no webhook %s', webhook_id);
  end if;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.send_test');
  return webhooks._enqueue(config.organization_id, array['webhook.test'],
    jsonb_build_object('webhook_id', config.id, 'name', config.name, 'message', 'This is a test event from pg-webhooks.'),
    null, config.id);
end
$$;

-- Functions: nothing is executable by PUBLIC unless it is meant to be.
revoke execute on all functions in schema webhooks from public;
grant usage on schema webhooks to webhooks_app, webhooks_dispatcher;
grant execute on function webhooks.emit(uuid, text, jsonb), webhooks.send_test(uuid),
                          webhooks.current_organization_id()
  to webhooks_app, webhooks_dispatcher;
-- Needed by the validation trigger, which runs as the writer.
grant execute on function webhooks._refuse(text, text, text), webhooks._generate_secret(),
                          webhooks._validate_webhook_configuration()
  to webhooks_app, webhooks_dispatcher;

-- Application privileges.
grant select, insert, update, delete on public.organizations, public.contacts, public.deals,
                                        public.conversations, public.messages to webhooks_app;
grant select, insert, update, delete on webhooks.webhook_configurations to webhooks_app;
grant select on webhooks.webhook_logs, webhooks.deliveries, webhooks.events, webhooks.event_types,
                webhooks.webhook_stats to webhooks_app;

-- Dispatcher privileges.
grant select on webhooks.event_types, webhooks.migrations, webhooks.webhook_stats to webhooks_dispatcher;
grant select, update on webhooks.webhook_configurations, webhooks._dispatcher_wake to webhooks_dispatcher;
-- UPDATE on one column only so fan-out can lock rows (select … for update skip locked); an
-- identity column cannot be updated, so this grants the lock and nothing more.
grant select, delete, update (id) on webhooks.outbox to webhooks_dispatcher;
grant select, insert, delete on webhooks.events to webhooks_dispatcher;
grant select, insert, update, delete on webhooks.deliveries, webhooks.daemons to webhooks_dispatcher;
grant select, insert, delete on webhooks.webhook_logs to webhooks_dispatcher;
grant usage, select on all sequences in schema webhooks to webhooks_dispatcher;
grant usage on schema graphile_worker to webhooks_dispatcher;
grant select, insert, update, delete on all tables in schema graphile_worker to webhooks_dispatcher;
grant usage, select on all sequences in schema graphile_worker to webhooks_dispatcher;
grant execute on all functions in schema graphile_worker to webhooks_dispatcher;
alter default privileges in schema graphile_worker grant select, insert, update, delete on tables to webhooks_dispatcher;
alter default privileges in schema graphile_worker grant usage, select on sequences to webhooks_dispatcher;
alter default privileges in schema graphile_worker grant execute on functions to webhooks_dispatcher;
-- graphile-worker enables (without forcing) row-level security on its tables and creates no
-- policies, so only their owner could queue or take jobs. The dispatcher works every job.
do $$
declare
  t regclass;
begin
  for t in select c.oid::regclass from pg_class c
            where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind in ('r', 'p') and c.relrowsecurity loop
    execute format('create policy webhooks_dispatcher on %s for all to webhooks_dispatcher using (true) with check (true)', t);
  end loop;
end
$$;

-- Deleting a configuration deletes its deliveries (000002's statement trigger). The application
-- may only read deliveries, so the trigger runs as the owner; the configurations it was handed
-- were already limited to the caller's organization by RLS.
alter function webhooks._delete_deliveries_of_deleted_webhooks() security definer;

-- The stats view reads as its caller, so RLS on the logs applies to it. security_invoker needs
-- PostgreSQL 15; before that a view reads as its owner, so applications are not given it there
-- (they query webhook_logs, which RLS protects).
do $$
begin
  if current_setting('server_version_num')::int >= 150000 then
    execute 'alter view webhooks.webhook_stats set (security_invoker = true)';
  else
    execute 'revoke select on webhooks.webhook_stats from webhooks_app';
  end if;
end
$$;

-- Row-level security, enabled and forced on every table holding tenant data.
do $$
declare
  t regclass;
  -- %I is the tenant column: organization_id, or id for organizations.
  tenant constant text := '%I = nullif(current_setting(''app.organization_id'', true), '''')::uuid';
begin
  foreach t in array array['public.organizations', 'public.contacts', 'public.deals', 'public.conversations',
                           'public.messages', 'webhooks.webhook_configurations', 'webhooks.outbox',
                           'webhooks.events', 'webhooks.deliveries', 'webhooks.webhook_logs']::regclass[] loop
    execute format('alter table %s enable row level security', t);
    execute format('alter table %s force row level security', t);
  end loop;

  -- Applications: their organization only, and rows cannot be created in or moved to another.
  foreach t in array array['public.contacts', 'public.deals', 'public.conversations', 'public.messages',
                           'webhooks.webhook_configurations']::regclass[] loop
    execute format('create policy tenant_isolation on %s for all to webhooks_app using (%s) with check (%s)',
                   t, format(tenant, 'organization_id'), format(tenant, 'organization_id'));
  end loop;
  execute format('create policy tenant_isolation on public.organizations for all to webhooks_app using (%s) with check (%s)',
                 format(tenant, 'id'), format(tenant, 'id'));
  foreach t in array array['webhooks.events', 'webhooks.deliveries', 'webhooks.webhook_logs']::regclass[] loop
    execute format('create policy tenant_isolation on %s for select to webhooks_app using (%s)', t, format(tenant, 'organization_id'));
  end loop;

  -- The dispatcher works for every organization.
  foreach t in array array['webhooks.webhook_configurations', 'webhooks.outbox', 'webhooks.events',
                           'webhooks.deliveries', 'webhooks.webhook_logs']::regclass[] loop
    execute format('create policy dispatcher on %s for all to webhooks_dispatcher using (true) with check (true)', t);
  end loop;

  -- The owner, for its SECURITY DEFINER functions: capture appends to the outbox, send_test
  -- reads the configuration it tests, _delete_deliveries_of_deleted_webhooks (above) deletes the
  -- deliveries of a deleted configuration.
  -- (A superuser owner bypasses RLS anyway.)
  execute format('create policy capture on webhooks.outbox for all to %I using (true) with check (true)', current_user);
  execute format('create policy send_test on webhooks.webhook_configurations for select to %I using (true)', current_user);
  execute format('create policy deleted_webhook on webhooks.deliveries for delete to %I using (true)', current_user);
  execute format('create policy deleted_webhook_read on webhooks.deliveries for select to %I using (true)', current_user);
end
$$;
