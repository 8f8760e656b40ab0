-- Tenant hardening (README "Tenancy"): four findings of an outside security review.
--
-- 1. The tenant check of the SECURITY DEFINER functions follows the role the caller acts as
--    (SET [LOCAL] ROLE, else the session user), not the login: a superuser pool that does
--    `set local role webhooks_app` is an application. One helper, webhooks._assert_tenant,
--    answers for every function: no organization set, another organization's row, a missing row.

-- ---------------------------------------------------------------------------------------------
-- 1. Who the caller is.

-- Definer functions check their caller with this. The caller acts for every organization when
-- the role it acts as is a superuser, has BYPASSRLS, or is a member of webhooks_dispatcher —
-- exactly the roles row-level security lets see every organization's rows. Otherwise it acts for
-- the organization of its transaction only, and without one for none.
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
    select r.rolsuper or r.rolbypassrls or pg_has_role(r.oid, 'webhooks_dispatcher', 'member')
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

-- replay and replay_dead (000005) as well.
create or replace function webhooks.replay(delivery_id uuid) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  delivery webhooks.deliveries;
  config webhooks.webhook_configurations;
begin
  select * into delivery from webhooks.deliveries d where d.id = replay.delivery_id;
  perform webhooks._assert_tenant(delivery.organization_id, 'webhooks.replay', format('no delivery %s', delivery_id));
  select * into config from webhooks.webhook_configurations c where c.id = delivery.webhook_id;
  perform webhooks._refuse_inactive(config, 'webhooks.replay');
  perform webhooks._requeue(array[delivery.id]);
end
$$;

create or replace function webhooks.replay_dead(webhook_id uuid) returns int
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  select * into config from webhooks.webhook_configurations c where c.id = replay_dead.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay_dead', format('no webhook %s', webhook_id));
  perform webhooks._refuse_inactive(config, 'webhooks.replay_dead');
  return webhooks._requeue(array(select d.id from webhooks.deliveries d where d.webhook_id = config.id and d.state = 'dead'));
end
$$;
