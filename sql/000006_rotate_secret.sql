-- Secret rotation (docs/signatures.md): webhooks.rotate_secret gives an endpoint a new secret and keeps the
-- old one signing for 24 hours. The 24-hour window is 000002's validation trigger, which fires on
-- any change of secret (a plain UPDATE too); this function only generates the secret.

create function webhooks.rotate_secret(webhook_id uuid) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
  rotated text;
begin
  select * into config from webhooks.webhook_configurations c where c.id = rotate_secret.webhook_id;
  -- Another organization's webhook gets the same answer as a missing one: nothing is disclosed.
  if not found or config.organization_id is distinct from
                  coalesce(webhooks.current_organization_id(), config.organization_id) then
    raise exception using errcode = 'no_data_found', message = format('webhooks.rotate_secret: no webhook %s', webhook_id);
  end if;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.rotate_secret');
  -- whsec_ + base64 of 32 bytes: valid for every scheme (the HMAC schemes key on its UTF-8 bytes).
  update webhooks.webhook_configurations c
     set secret = webhooks._generate_secret()
   where c.id = config.id
  returning c.secret into rotated;
  return rotated;
end
$$;
comment on function webhooks.rotate_secret(uuid) is
  'Public: give a webhook a new generated secret and return it. The old secret becomes previous_secret and keeps signing (standard scheme) until previous_secret_expires_at, 24 hours from now; rotating again within 24 hours drops the older one.';

revoke execute on function webhooks.rotate_secret(uuid) from public;
grant execute on function webhooks.rotate_secret(uuid) to webhooks_app, webhooks_dispatcher;

-- rotate_secret runs as the owner; RLS is forced, so it needs to update configurations (it
-- already reads them, 000004's send_test policy). A superuser owner bypasses RLS anyway.
do $$
begin
  execute format('create policy rotate_secret on webhooks.webhook_configurations for update to %I using (true) with check (true)', current_user);
end
$$;
