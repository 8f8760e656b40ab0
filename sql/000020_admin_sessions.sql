-- Sessions of the admin page (README "API and admin page"). Signing in with an API key opens a
-- session of 12 hours: the browser keeps a random session token in an HttpOnly cookie (never the
-- key), the database its sha256. A session ends at sign-out, when it expires, and at once when its
-- key is revoked (authenticate_admin_session checks the key too). Only these functions touch the
-- table; the daemon calls them.

create table webhooks.admin_sessions (
  id uuid primary key default gen_random_uuid(),
  api_key_id uuid not null references webhooks.api_keys (id) on delete cascade,
  token_sha256 text not null unique check (token_sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
comment on table webhooks.admin_sessions is
  'Sessions of the admin page, one API key each. token_sha256: the sha256 of the browser''s session cookie. Ended sessions are deleted.';
create index on webhooks.admin_sessions (api_key_id, created_at);
create index on webhooks.admin_sessions (expires_at);

alter table webhooks.admin_sessions enable row level security, force row level security;
do $$
begin
  execute format('create policy owner_functions on webhooks.admin_sessions for all to %I using (true) with check (true)', current_user);
end
$$;
revoke all on webhooks.admin_sessions from public;

-- A token: pgwhs_ + 64 hex characters (244 random bits), stored as its sha256 like a key.
-- Signing in removes the expired sessions of every key (an index range) and keeps at most 20 open
-- per key: someone signing in in a loop with a valid key cannot grow the table.
create function webhooks.create_admin_session(key text, out token text, out organization_id uuid, out expires_at timestamptz)
returns setof record
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  signed_in record;
begin
  select k.id, k.organization_id into signed_in
    from webhooks.authenticate_api_key(key) k (id, organization_id);
  if not found then
    return;
  end if;
  delete from webhooks.admin_sessions s where s.expires_at <= now();
  delete from webhooks.admin_sessions s
   where s.id in (select s2.id from webhooks.admin_sessions s2 where s2.api_key_id = signed_in.id
                   order by s2.created_at desc offset 19);
  token := 'pgwhs_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  organization_id := signed_in.organization_id;
  expires_at := now() + interval '12 hours';
  insert into webhooks.admin_sessions (api_key_id, token_sha256, expires_at)
  values (signed_in.id, webhooks._key_sha256(token), create_admin_session.expires_at);
  return next;
end
$$;
comment on function webhooks.create_admin_session(text) is
  'For the daemon: a session of the admin page for an API key in use (its token, organization and expiry), or no row for an unknown or revoked key.';

create function webhooks.authenticate_admin_session(token text, out api_key_id uuid, out organization_id uuid)
returns setof record
language sql stable security definer set search_path = pg_catalog, webhooks, pg_temp as $$
  select k.id, k.organization_id
    from webhooks.admin_sessions s
    join webhooks.api_keys k on k.id = s.api_key_id
   where token ~ '^pgwhs_[0-9a-f]{64}$'
     and s.token_sha256 = webhooks._key_sha256(token)
     and s.expires_at > now()
     and k.revoked_at is null
$$;
comment on function webhooks.authenticate_admin_session(text) is
  'For the daemon: the key and organization of an open session, or no row (unknown, expired, or its key revoked).';

create function webhooks.end_admin_session(token text) returns void
language sql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
  delete from webhooks.admin_sessions s where s.token_sha256 = webhooks._key_sha256(token)
$$;
comment on function webhooks.end_admin_session(text) is 'For the daemon: signs a session out (idempotent).';

revoke execute on function webhooks.create_admin_session(text), webhooks.authenticate_admin_session(text),
                           webhooks.end_admin_session(text) from public;
grant execute on function webhooks.create_admin_session(text), webhooks.authenticate_admin_session(text),
                          webhooks.end_admin_session(text) to webhooks_dispatcher;
