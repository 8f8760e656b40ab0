-- API keys for the management API (README "API keys"): a key acts as one organization. A key is
-- shown once, when it is created; only its sha256 is stored. Keys are 244 random bits, so an
-- unsalted hash is as strong as the key (the practice for API tokens); a leaked table does not
-- give a usable key.

create table webhooks.api_keys (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null,
  key_sha256 text not null unique check (key_sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
comment on table webhooks.api_keys is
  'API keys of the management API, one organization each. key_sha256: the key''s sha256 (the key itself is shown once, by webhooks.create_api_key). Revoked keys stay, with revoked_at.';
create index on webhooks.api_keys (organization_id, created_at);

-- A key: pgwh_ + 64 hex characters (two v4 UUIDs: 244 random bits).
create function webhooks._key_sha256(key text) returns text
language sql immutable strict set search_path = pg_catalog, pg_temp as $$
  select encode(sha256(convert_to(key, 'UTF8')), 'hex')
$$;
comment on function webhooks._key_sha256(text) is 'Private: the stored form of an API key.';

-- At most this many keys in use per organization: a tenant cannot grow the table without bound.
create function webhooks.create_api_key(organization_id uuid, name text) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  key text := 'pgwh_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
begin
  perform webhooks._assert_tenant(
    (select o.id from public.organizations o where o.id = create_api_key.organization_id),
    'webhooks.create_api_key', format('no organization %s', create_api_key.organization_id));
  if create_api_key.name is null or btrim(create_api_key.name) = '' or length(create_api_key.name) > 200 then
    perform webhooks._refuse_column('api_keys', 'name', 'must be 1 to 200 characters');
  end if;
  -- One key created at a time per organization: the count below stays true.
  perform pg_advisory_xact_lock(hashtextextended('pg-webhooks:api-keys:' || create_api_key.organization_id::text, 0));
  if (select count(*) from webhooks.api_keys k
       where k.organization_id = create_api_key.organization_id and k.revoked_at is null) >= 100 then
    perform webhooks._refuse_column('api_keys', 'organization_id', 'has 100 keys in use already',
      'revoke unused ones with webhooks.revoke_api_key(id)');
  end if;
  insert into webhooks.api_keys (organization_id, name, key_sha256)
  values (create_api_key.organization_id, btrim(create_api_key.name), webhooks._key_sha256(key));
  return key;
end
$$;
comment on function webhooks.create_api_key(uuid, text) is
  'Public: a new API key for the organization (the caller''s own, for an application), returned once: only its hash is kept. At most 100 keys in use per organization.';

create function webhooks.revoke_api_key(id uuid) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  perform webhooks._assert_tenant((select k.organization_id from webhooks.api_keys k where k.id = revoke_api_key.id),
                                  'webhooks.revoke_api_key', format('no api key %s', revoke_api_key.id));
  update webhooks.api_keys k set revoked_at = coalesce(k.revoked_at, now()) where k.id = revoke_api_key.id;
end
$$;
comment on function webhooks.revoke_api_key(uuid) is
  'Public: revokes an API key of the caller''s organization at once (idempotent); the row stays, with revoked_at.';

-- The daemon's check of a request's key: the key's id and organization, or no row (unknown or
-- revoked). last_used_at is written at most once a minute per key: a busy client does not turn
-- every request into a write.
create function webhooks.authenticate_api_key(key text, out api_key_id uuid, out organization_id uuid)
returns setof record
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if key is null or key !~ '^pgwh_[0-9a-f]{64}$' then
    return;
  end if;
  return query
    update webhooks.api_keys k set last_used_at = now()
     where k.key_sha256 = webhooks._key_sha256(key) and k.revoked_at is null
       and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute')
    returning k.id, k.organization_id;
  if not found then
    return query select k.id, k.organization_id from webhooks.api_keys k
                  where k.key_sha256 = webhooks._key_sha256(key) and k.revoked_at is null;
  end if;
end
$$;
comment on function webhooks.authenticate_api_key(text) is
  'For the daemon: the id and organization of a key in use, or no row for an unknown or revoked one.';

alter table webhooks.api_keys enable row level security, force row level security;
do $$
declare
  tenant constant text := 'organization_id = nullif(current_setting(''app.organization_id'', true), '''')::uuid';
begin
  execute format('create policy tenant_isolation on webhooks.api_keys for select to webhooks_app using (%s)', tenant);
  -- The functions above run as the owner.
  execute format('create policy owner_functions on webhooks.api_keys for all to %I using (true) with check (true)', current_user);
end
$$;
create policy dispatcher on webhooks.api_keys for select to webhooks_dispatcher using (true);

-- An application reads its keys' names and dates, never their hashes; keys are made and revoked
-- through the functions.
grant select (id, organization_id, name, created_at, last_used_at, revoked_at) on webhooks.api_keys to webhooks_app;
grant select (id, organization_id, name, created_at, last_used_at, revoked_at) on webhooks.api_keys to webhooks_dispatcher;
revoke execute on function webhooks._key_sha256(text), webhooks.create_api_key(uuid, text), webhooks.revoke_api_key(uuid),
                           webhooks.authenticate_api_key(text) from public;
grant execute on function webhooks.create_api_key(uuid, text), webhooks.revoke_api_key(uuid) to webhooks_app, webhooks_dispatcher;
grant execute on function webhooks.authenticate_api_key(text) to webhooks_dispatcher;

-- The daemon serves the management API as the application of each request's organization (SET
-- LOCAL ROLE webhooks_app, then its organization): a daemon logged in as a member of
-- webhooks_dispatcher may take that role, without inheriting its privileges.
-- Cluster-wide roles: changed only when not yet so (another database on the server may have done
-- it), and a migrating owner that may not change them is told what to ask for.
do $$
begin
  if (select r.rolinherit from pg_roles r where r.rolname = 'webhooks_dispatcher') then
    alter role webhooks_dispatcher noinherit;
  end if;
  if not exists (select 1 from pg_auth_members m
                  where m.roleid = 'webhooks_app'::regrole and m.member = 'webhooks_dispatcher'::regrole) then
    grant webhooks_app to webhooks_dispatcher;
  end if;
exception
  when insufficient_privilege then
    raise warning 'the management API needs: alter role webhooks_dispatcher noinherit; grant webhooks_app to webhooks_dispatcher; (as a superuser); until then a daemon logged in as a member of webhooks_dispatcher answers its requests with 500';
  when others then
    -- Another database's migration changed the same roles at the same moment, to the same end.
    if sqlerrm <> 'tuple concurrently updated' then
      raise;
    end if;
end
$$;
