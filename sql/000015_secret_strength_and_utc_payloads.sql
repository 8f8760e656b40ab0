-- Follow-ups of the security review (README "Security"):
-- 1. A secret a tenant chooses for an HMAC scheme is at least 16 characters, like an inbound
--    integration's signing secret: a one-letter key signs nothing worth verifying. Checked when a
--    secret is set or changed; a configuration stored earlier with a shorter one keeps working
--    until its secret changes (webhooks.rotate_secret gives it a generated one).
-- 2. Row timestamps in a payload's data are written in UTC, whatever TimeZone the writing session
--    has: the same row reads the same from every writer (before, +09:00 from one and +00:00 from
--    another).
-- 3. The NOT NULL trigger of 000012 is a trigger function like the others: nobody needs EXECUTE on it.

create function webhooks._refuse_weak_secret() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  -- Null or empty: the validate trigger generates a strong one. The standard scheme's whsec_
  -- format already demands 16 bytes of key.
  if new.signature_scheme <> 'standard' and new.secret <> ''
     and (tg_op = 'INSERT' or new.secret is distinct from old.secret)
     and length(new.secret) < 16 then
    perform webhooks._refuse('secret', 'must be at least 16 characters',
      'leave it null to have a strong secret generated');
  end if;
  return new;
end
$$;
comment on function webhooks._refuse_weak_secret() is
  'Private trigger: refuses an HMAC secret shorter than 16 characters when it is set or changed (sql/000015).';
revoke execute on function webhooks._refuse_weak_secret() from public;
create trigger refuse_weak_secret before insert or update of secret, signature_scheme on webhooks.webhook_configurations
  for each row execute function webhooks._refuse_weak_secret();

alter function webhooks._capture_crm_change() set timezone = 'UTC';
alter function webhooks._capture_tracked_change() set timezone = 'UTC';

revoke execute on function webhooks._refuse_null_columns() from webhooks_app, webhooks_dispatcher;
