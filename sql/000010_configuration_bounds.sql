-- Bounds on every tenant-controlled column of webhooks.webhook_configurations. 000002's checks
-- said what a value must look like but not how big it may be: a tenant (webhooks_app) could store
-- a 50 MB header, a million-entry events array (which every fan-out then scans) or a port of 99999.
-- The validation trigger now refuses those too, always through webhooks._refuse (check_violation
-- naming the column), and sizes and counts are checked before anything loops over a value, so a
-- huge value is refused without being walked. Rows stored by older releases that break a bound
-- are disabled once, below.
--
-- Limits: name 1..200 characters; url at most 2048 characters, an explicit port 1..65535;
-- events 1..100 entries; headers at most 20 entries, names HTTP tokens of at most 100 characters,
-- values strings of visible ASCII and spaces of at most 1024 bytes, names and values together at
-- most 8 KiB; signature_header an HTTP token of at most 100 characters that HTTP or pg-webhooks
-- does not set; filter at most 4 KiB; secret and previous_secret at most 512 characters;
-- disabled_reason at most 4096 characters (the daemon's own reasons quote the url, which may be
-- 2048 characters long, so 2000 would make the daemon's update of a failing endpoint fail).

-- Headers a configuration may neither add (headers) nor sign into (signature_header): the ones
-- HTTP and its client manage, and the ones pg-webhooks sets on every request.
create function webhooks._http_managed_header(header_name text) returns boolean
language sql immutable set search_path = pg_catalog, pg_temp as $$
  select lower(header_name) in ('host', 'content-type', 'content-length', 'transfer-encoding', 'connection',
                                'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'expect',
                                'user-agent', 'idempotency-key')
$$;
comment on function webhooks._http_managed_header(text) is
  'Private: whether a header name (any case) is one HTTP or pg-webhooks sets, so a configuration may not.';

create or replace function webhooks._validate_webhook_configuration() returns trigger
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  unknown text[];
  port text;
  header_name text;
  header_value jsonb;
  header_text text;
  header_bytes bigint := 0;
begin
  if new.organization_id is null then
    perform webhooks._refuse('organization_id', 'must not be null');
  end if;

  -- name: octet_length is O(1); 200 characters take at most 800 bytes in UTF-8.
  if new.name is null then
    perform webhooks._refuse('name', 'must not be empty');
  end if;
  if octet_length(new.name) > 800 or length(new.name) > 200 then
    perform webhooks._refuse('name', 'must be at most 200 characters');
  end if;
  if btrim(new.name) = '' then
    perform webhooks._refuse('name', 'must not be empty');
  end if;

  if new.url is not null and (octet_length(new.url) > 8192 or length(new.url) > 2048) then
    perform webhooks._refuse('url', 'must be at most 2048 characters');
  end if;
  if new.url is null
     or new.url !~* '^https?://[a-z0-9._~%!$&''()*+,;=:\[\]-]+([/?#][^[:space:]]*)?$'
     or new.url ~ '^[^/]*//[^/?#]*@' then
    perform webhooks._refuse('url', 'must be an absolute http:// or https:// URL without credentials',
      'for example https://example.com/hooks/crm');
  end if;
  -- The port is what follows the authority's last colon outside [brackets] (IPv6 literals).
  port := substring(substring(new.url from '^[A-Za-z]+://([^/?#]*)') from ':([^]:]*)$');
  if port is not null and (port !~ '^[0-9]{1,5}$' or case when port ~ '^[0-9]{1,5}$' then port::int not between 1 and 65535 end) then
    perform webhooks._refuse('url', 'must have a port between 1 and 65535 when it names one',
      'for example https://example.com:8443/hooks/crm');
  end if;

  -- events: cardinality is O(1), so a huge array is refused before unnest walks it.
  if new.events is not null and cardinality(new.events) > 100 then
    perform webhooks._refuse('events', 'must list at most 100 event types', 'use {*} to subscribe to all of them');
  end if;
  if new.events is null or cardinality(new.events) = 0 or array_position(new.events, null) is not null then
    perform webhooks._refuse('events', 'must list at least one event type (or {*} for all)');
  end if;
  select array_agg(e) into unknown
    from unnest(new.events) e
   where e <> '*' and not exists (select 1 from webhooks.event_types t where t.name = e);
  if unknown is not null then
    -- At most 100 names, each cut to 100 characters: the message stays small whatever was sent.
    perform webhooks._refuse('events', format('names unknown event types: %s',
        (select string_agg(left(u, 100), ', ') from unnest(unknown) u)),
      'see select name from webhooks.event_types');
  end if;

  if new.signature_scheme is null
     or new.signature_scheme not in ('standard', 'hmac-hex', 'hmac-prefixed', 'hmac-timestamped') then
    perform webhooks._refuse('signature_scheme', 'must be one of standard, hmac-hex, hmac-prefixed, hmac-timestamped');
  end if;
  if new.signature_header is null or octet_length(new.signature_header) > 100
     or new.signature_header !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' then
    perform webhooks._refuse('signature_header', 'must be a valid HTTP header name (a token of at most 100 characters)');
  end if;
  if webhooks._http_managed_header(new.signature_header)
     or lower(new.signature_header) in ('x-webhook-event', 'x-webhook-delivery-id', 'x-webhook-timestamp',
                                        'webhook-id', 'webhook-timestamp', 'webhook-signature') then
    perform webhooks._refuse('signature_header',
      format('must not be %L: HTTP or pg-webhooks sets that header', new.signature_header),
      'for example X-Webhook-Signature (the default) or X-Acme-Signature');
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

  -- filter: the stored size first (O(1)), then the JSON text (bounded by the first check).
  if new.filter is not null and (pg_column_size(new.filter) > 4096 or octet_length(new.filter::text) > 4096) then
    perform webhooks._refuse('filter', 'must be at most 4 KiB');
  end if;
  if new.filter is not null and jsonb_typeof(new.filter) <> 'object' then
    perform webhooks._refuse('filter', 'must be a JSON object (deliveries require payload @> filter)');
  end if;

  -- headers: the stored size first (O(1); 20 entries of 8 KiB in all take well under 16 KiB as
  -- jsonb), then the number of entries, and only then the loop, which also adds up the exact
  -- bytes (a value read back compressed from another table may be bigger than it is stored).
  if new.headers is null or jsonb_typeof(new.headers) <> 'object' then
    perform webhooks._refuse('headers', 'must be a JSON object of header name to string value');
  end if;
  if pg_column_size(new.headers) > 16384 then
    perform webhooks._refuse('headers', 'must be at most 8 KiB (header names and values together)');
  end if;
  if (select count(*) from jsonb_object_keys(new.headers)) > 20 then
    perform webhooks._refuse('headers', 'must have at most 20 entries');
  end if;
  for header_name, header_value in select key, value from jsonb_each(new.headers) loop
    if header_name !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' or jsonb_typeof(header_value) <> 'string'
       or header_value #>> '{}' ~ '[\r\n\x00]' then
      perform webhooks._refuse('headers', format('has an invalid entry %L (names must be HTTP tokens, values strings without line breaks)', header_name));
    end if;
    header_text := header_value #>> '{}';
    if octet_length(header_text) > 1024 then
      perform webhooks._refuse('headers', format('has a value for %L longer than 1024 bytes', header_name));
    end if;
    if header_text !~ '^[ -~]*$' then
      perform webhooks._refuse('headers', format(
        'has a value for %L with a character other than visible ASCII or space (no tabs, control or non-ASCII characters)',
        header_name));
    end if;
    if webhooks._http_managed_header(header_name)
       or lower(header_name) like 'webhook-%' or lower(header_name) like 'x-webhook-%'
       or lower(header_name) = lower(new.signature_header) then
      perform webhooks._refuse('headers', format('must not set %L: pg-webhooks sets it', header_name));
    end if;
    header_bytes := header_bytes + octet_length(header_name) + octet_length(header_text);
  end loop;
  if header_bytes > 8192 then
    perform webhooks._refuse('headers', 'must be at most 8 KiB (header names and values together)');
  end if;

  if new.secret is null or new.secret = '' then
    new.secret := webhooks._generate_secret();
  end if;
  if octet_length(new.secret) > 2048 or length(new.secret) > 512 then
    perform webhooks._refuse('secret', 'must be at most 512 characters');
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
    -- A secret over 512 characters (stored before 000010) is dropped rather than kept, so that
    -- replacing it is possible.
    if new.secret is distinct from old.secret and new.previous_secret is not distinct from old.previous_secret then
      if length(old.secret) <= 512 then
        new.previous_secret := old.secret;
        new.previous_secret_expires_at := coalesce(
          nullif(new.previous_secret_expires_at, old.previous_secret_expires_at), now() + interval '24 hours');
      else
        new.previous_secret := null;
        new.previous_secret_expires_at := null;
      end if;
    end if;
    if new.is_active and not old.is_active then
      new.disabled_reason := null;
    end if;
  end if;

  if new.previous_secret is not null and (octet_length(new.previous_secret) > 2048 or length(new.previous_secret) > 512) then
    perform webhooks._refuse('previous_secret', 'must be at most 512 characters');
  end if;
  if new.disabled_reason is not null and (octet_length(new.disabled_reason) > 16384 or length(new.disabled_reason) > 4096) then
    perform webhooks._refuse('disabled_reason', 'must be at most 4096 characters');
  end if;
  return new;
end
$$;
comment on function webhooks._validate_webhook_configuration() is
  'Private trigger: validates a configuration row (formats and size bounds), naming the offending column; generates the secret when absent.';

-- Rows stored before these bounds: each one that breaks a bound is disabled (fan-out skips
-- inactive endpoints) with a disabled_reason naming the columns. Headers and signature_header
-- still travel with a test send (webhooks.send_test reaches inactive endpoints), so offending
-- ones are reset to '{}' and the default; other values are kept for the tenant to correct,
-- which the trigger asks for before the endpoint can be made active again. failing_since is
-- cleared, so the daemon, which only updates active or failing endpoints, leaves these rows alone.
-- Runs as the table's owner (ALTER TABLE ... DISABLE TRIGGER: the trigger would refuse the row).
create function webhooks._disable_out_of_bounds_configurations() returns int
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  disabled int;
begin
  alter table webhooks.webhook_configurations disable trigger validate;
  with checked as (
    select c.id,
           length(c.name) > 200 as long_name,
           length(c.url) > 2048
             or coalesce((select p !~ '^[0-9]{1,5}$' or case when p ~ '^[0-9]{1,5}$' then p::int not between 1 and 65535 end
                            from substring(substring(c.url from '^[A-Za-z]+://([^/?#]*)') from ':([^]:]*)$') p), false) as bad_url,
           cardinality(c.events) > 100 as many_events,
           case
             when jsonb_typeof(c.headers) is distinct from 'object' then true
             when pg_column_size(c.headers) > 16384 then true
             else (select count(*) > 20
                          or coalesce(sum(octet_length(key) + octet_length(value #>> '{}')), 0) > 8192
                          or coalesce(bool_or(jsonb_typeof(value) <> 'string'
                                              or key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$'
                                              or octet_length(value #>> '{}') > 1024
                                              or (value #>> '{}') !~ '^[ -~]*$'
                                              or webhooks._http_managed_header(key)
                                              or lower(key) like 'webhook-%' or lower(key) like 'x-webhook-%'), false)
                     from jsonb_each(c.headers))
           end as bad_headers,
           c.signature_header !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$'
             or webhooks._http_managed_header(c.signature_header)
             or lower(c.signature_header) in ('x-webhook-event', 'x-webhook-delivery-id', 'x-webhook-timestamp',
                                              'webhook-id', 'webhook-timestamp', 'webhook-signature') as bad_signature_header,
           pg_column_size(c.filter) > 4096 or octet_length(c.filter::text) > 4096 as big_filter,
           length(c.secret) > 512 as long_secret,
           length(c.previous_secret) > 512 as long_previous_secret,
           length(c.disabled_reason) > 4096 as long_disabled_reason
      from webhooks.webhook_configurations c
  ), offending as (
    select id, bad_headers, bad_signature_header,
           array_remove(array[
             case when long_name then 'name exceeds the 200-character limit' end,
             case when bad_url then 'url exceeds the 2048-character limit or names a port outside 1..65535' end,
             case when many_events then 'events exceeds the 100-entry limit' end,
             case when bad_headers then 'headers exceeds the limits (20 entries, values of visible ASCII of at most 1024 bytes, 8 KiB in all, no header HTTP or pg-webhooks sets) and was reset to {}' end,
             case when bad_signature_header then 'signature_header names a header HTTP or pg-webhooks sets and was reset to X-Webhook-Signature' end,
             case when big_filter then 'filter exceeds the 4 KiB limit' end,
             case when long_secret then 'secret exceeds the 512-character limit' end,
             case when long_previous_secret then 'previous_secret exceeds the 512-character limit' end,
             case when long_disabled_reason then 'disabled_reason exceeded the 4096-character limit' end
           ], null) as reasons
      from checked
  )
  update webhooks.webhook_configurations c
     set is_active = false,
         failing_since = null,
         disabled_reason = 'disabled on upgrade: ' || array_to_string(o.reasons, '; '),
         headers = case when o.bad_headers then '{}'::jsonb else c.headers end,
         signature_header = case when o.bad_signature_header then 'X-Webhook-Signature' else c.signature_header end,
         updated_at = now()
    from offending o
   where o.id = c.id and cardinality(o.reasons) > 0;
  get diagnostics disabled = row_count;
  alter table webhooks.webhook_configurations enable trigger validate;
  return disabled;
end
$$;
comment on function webhooks._disable_out_of_bounds_configurations() is
  'Private: disable every configuration that breaks 000010''s bounds (stored by an older release), naming the columns in disabled_reason; resets offending headers and signature_header. Returns how many. Run by the table owner.';

revoke execute on function webhooks._http_managed_header(text), webhooks._disable_out_of_bounds_configurations() from public;
-- Needed by the validation trigger, which runs as the writer.
grant execute on function webhooks._http_managed_header(text) to webhooks_app, webhooks_dispatcher;

select webhooks._disable_out_of_bounds_configurations();
