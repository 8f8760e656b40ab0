-- Inbound requests refused before they are authenticated (unknown or inactive integration, bad
-- signature or timestamp, bad idempotency-key, body too large or too slow, wrong method, the
-- retired v1 path) are no longer one webhooks.intake_activity row each: whoever sends them need
-- not hold a secret, so their number is the sender's choice. The daemon counts them in memory and
-- writes, every few seconds, one upserted row per (minute, integration, reason) here: the write
-- rate is bounded by integrations × reasons, not by requests. Requests signed with the
-- integration's secret keep their per-request intake_activity row.

create table webhooks.intake_refusals (
  minute          timestamptz not null,
  integration_id  uuid references webhooks.inbound_integrations (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete cascade,
  reason          text not null check (reason ~ '^[a-z][a-z_]{0,63}$'),
  http_status     int not null check (http_status between 400 and 599),
  count           bigint not null check (count > 0),
  constraint intake_refusals_organization_of_integration check ((integration_id is null) = (organization_id is null))
);
comment on table webhooks.intake_refusals is
  'Inbound requests refused before authentication, counted per minute, integration and reason (one row each, upserted by the daemon every few seconds). integration_id and organization_id are null for ids that are not a known integration: such requests belong to no organization. Rows older than 30 days are removed as new counts are written.';
comment on column webhooks.intake_refusals.minute is 'The minute the requests were refused in (truncated).';
comment on column webhooks.intake_refusals.reason is
  'unknown_integration (404), inactive_integration (404), method_not_allowed (405), body_too_large (413), body_timeout (408), busy (503: the daemon''s body memory was full), invalid_signature (401), invalid_timestamp (401), invalid_idempotency_key (400), retired_endpoint (410: the v1 path); see src/intake/refusal-reasons.ts.';
comment on column webhooks.intake_refusals.http_status is 'The status the requests were answered with.';
comment on column webhooks.intake_refusals.count is 'Requests refused for this reason in this minute.';
create unique index intake_refusals_key on webhooks.intake_refusals
  (minute, coalesce(integration_id, '00000000-0000-0000-0000-000000000000'::uuid), reason);
create index intake_refusals_organization_idx on webhooks.intake_refusals (organization_id, minute desc);

create function webhooks._record_intake_refusals(minutes timestamptz[], integration_ids uuid[], reasons text[],
                                                 http_statuses int[], counts bigint[]) returns void
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  if minutes is null or integration_ids is null or reasons is null or http_statuses is null or counts is null
     or cardinality(integration_ids) <> cardinality(minutes) or cardinality(reasons) <> cardinality(minutes)
     or cardinality(http_statuses) <> cardinality(minutes) or cardinality(counts) <> cardinality(minutes) then
    raise exception using errcode = 'invalid_parameter_value',
      message = 'webhooks._record_intake_refusals: minutes, integration_ids, reasons, http_statuses and counts must be arrays of one length';
  end if;
  -- The organization is the integration's as it is now; an id that is not (or no longer) an
  -- integration is counted under null. Grouped, so that each key is written once; ordered, so
  -- that daemons writing at once lock the rows in one order.
  insert into webhooks.intake_refusals as r (minute, integration_id, organization_id, reason, http_status, count)
  select date_trunc('minute', u.minute), i.id, i.organization_id, u.reason, max(u.http_status), sum(u.count)
    from unnest(minutes, integration_ids, reasons, http_statuses, counts) as u(minute, integration_id, reason, http_status, count)
    left join webhooks.inbound_integrations i on i.id = u.integration_id
   group by 1, 2, 3, 4
   order by 1, 2, 4
  on conflict (minute, coalesce(integration_id, '00000000-0000-0000-0000-000000000000'::uuid), reason)
  do update set count = r.count + excluded.count, http_status = excluded.http_status;
  delete from webhooks.intake_refusals where minute < now() - interval '30 days';
end
$$;
comment on function webhooks._record_intake_refusals(timestamptz[], uuid[], text[], int[], bigint[]) is
  'Private (webhooks_dispatcher): add counts of refused inbound requests, one element per (minute, integration or null, reason), to webhooks.intake_refusals; the organization is looked up from the integration. Also removes rows older than 30 days.';

-- Refusals before authentication are counted in intake_refusals; _refuse_request records the
-- ones after it (a signed body that is not UTF-8, not JSON jsonb can hold, or has no customer_phone).
comment on table webhooks.intake_activity is
  'One row per inbound request signed with its integration''s secret (and, before migration 000013, per refused request too). outcome: accepted (202, lead queued) → processed (contact_id, deal_id) or failed (error); duplicate (200, event_id of the original); conflict (409); refused (400 for the body, error; also 404 when the integration was deactivated while the request was checked). body is kept for accepted leads only. Requests refused before authentication are counted in webhooks.intake_refusals instead.';
comment on function webhooks._refuse_request(text, uuid, int, text) is
  'Private (webhooks_dispatcher): record a signed request the HTTP layer refused (e.g. 400 for its body) as outcome refused. integration_id may be null or unknown (then recorded as null); request_id is req_…, unique.';

revoke execute on function webhooks._record_intake_refusals(timestamptz[], uuid[], text[], int[], bigint[]) from public;
grant execute on function webhooks._record_intake_refusals(timestamptz[], uuid[], text[], int[], bigint[]) to webhooks_dispatcher;
grant select on webhooks.intake_refusals to webhooks_app, webhooks_dispatcher;

do $$
declare
  tenant constant text := 'organization_id = nullif(current_setting(''app.organization_id'', true), '''')::uuid';
begin
  alter table webhooks.intake_refusals enable row level security;
  alter table webhooks.intake_refusals force row level security;
  -- Null organization (unknown ids) matches no tenant.
  execute format('create policy tenant_isolation on webhooks.intake_refusals for select to webhooks_app using (%s)', tenant);
  create policy dispatcher on webhooks.intake_refusals for select to webhooks_dispatcher using (true);
  -- The owner, for the definer function above (a superuser owner bypasses RLS anyway).
  execute format('create policy intake on webhooks.intake_refusals for all to %I using (true) with check (true)', current_user);
end
$$;
