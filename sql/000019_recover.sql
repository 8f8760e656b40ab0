-- Recovery of a window (README "API and admin page"): every failed or dead delivery of one
-- endpoint created in [since, until) is sent again: dead ones get a fresh retry budget (as
-- webhooks.replay gives), failed ones waiting for a retry are due at once. The management API's
-- POST /api/v1/webhooks/{id}/recover calls it.

create function webhooks.recover(webhook_id uuid, since timestamptz, until timestamptz default now()) returns integer
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
  due int;
begin
  -- Like replay: a retention step under way finishes first.
  perform pg_advisory_xact_lock_shared(webhooks._partitions_lock_key());
  select * into config from webhooks.webhook_configurations c where c.id = recover.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.recover', format('no webhook %s', webhook_id));
  perform webhooks._refuse_inactive(config, 'webhooks.recover');
  if since is null or until is null or since >= until then
    raise exception using errcode = 'invalid_parameter_value', column = 'since',
      message = format('webhooks.recover: since (%s) must be before until (%s)', coalesce(since::text, 'null'), coalesce(until::text, 'null'));
  end if;
  update webhooks.delivery_queue q set due_at = now()
   where q.webhook_id = config.id and q.organization_id = config.organization_id and q.retry and q.claimed_by is null
     and q.due_at > now() and q.delivery_created_at >= since and q.delivery_created_at < until;
  get diagnostics due = row_count;
  if due > 0 then
    perform pg_notify('webhooks_deliveries', '');
  end if;
  return due + webhooks._requeue(array(
    select d.id from webhooks.deliveries d
     where d.webhook_id = config.id and d.organization_id = config.organization_id and d.state = 'dead'
       and d.created_at >= since and d.created_at < until));
end
$$;
comment on function webhooks.recover(uuid, timestamptz, timestamptz) is
  'Public: sends again every failed (due at once) or dead (a fresh retry budget) delivery of one webhook created in [since, until); returns how many.';
revoke execute on function webhooks.recover(uuid, timestamptz, timestamptz) from public;
grant execute on function webhooks.recover(uuid, timestamptz, timestamptz) to webhooks_app, webhooks_dispatcher;
