-- Retention by time partitions (README "Retention and monitoring").
--
-- webhook_logs, events, deliveries and intake_activity become tables partitioned by range of
-- their time column (created_at, dispatched_at, created_at, received_at). Expired history goes by
-- dropping whole partitions: no row-by-row DELETE over a large table, no VACUUM storm.
--
-- Each table has:
-- * one partition per period (webhooks._partitioning.width, a day unless the bench says
--   otherwise), created ahead of time by webhooks.create_partitions();
-- * a DEFAULT partition for rows no period partition takes: a backfill older than the oldest
--   partition, a row far in the future, and what a pending delivery still needs after its own
--   partition expired (moved there by webhooks.drop_expired_partition);
-- * on a database upgraded from an earlier release with rows, a partition <table>_legacy holding
--   every row written before the upgrade, unchanged (it expires one retention period after the
--   upgrade).
--
-- The hot path finds a delivery and its event by id and partition key: the queue carries both
-- keys (delivery_queue.delivery_created_at, .event_dispatched_at), so each probe touches one
-- partition's index whatever the history.
--
-- Expiry, in webhooks.prune(retention): the oldest partition whose upper bound is older than the
-- retention is detached, the rows a queued delivery still needs (its delivery row, its event;
-- an accepted lead not processed yet) are moved to the DEFAULT partition, and the partition is
-- dropped; expired rows nobody needs are then deleted from the DEFAULT partitions, which hold
-- only such stragglers. Every step is its own transaction under one advisory lock: daemons and
-- `pg-webhooks prune` never race.

-- Private: the width of a partition. A day; the bench's soak sets minutes.
create table webhooks._partitioning (
  only_row boolean primary key default true check (only_row),
  width interval not null default interval '1 day'
    check (width >= interval '1 minute' and width <= interval '1 day')
);
comment on table webhooks._partitioning is
  'Private. width: the time range of one partition of the partitioned history tables (default a day). Takes effect for partitions created after a change.';
insert into webhooks._partitioning default values;

-- The history tables, their partition keys and what a pending delivery needs of them.
-- A unique key without the partition key cannot span partitions; unique_in_partition holds in
-- each one (an event id, an attempt number: what a fan-out or a claim writes twice at once is
-- written at one instant, into one partition).
create table webhooks._partitioned (
  table_name text primary key,
  partition_key text not null,
  unique_in_partition text
);
comment on table webhooks._partitioned is
  'Private. The tables partitioned by time for retention (sql/000017): each one''s partition key, and the columns unique within each partition.';
insert into webhooks._partitioned values
  ('webhook_logs', 'created_at', 'delivery_id, attempt'), ('events', 'dispatched_at', 'id'),
  ('deliveries', 'created_at', null), ('intake_activity', 'received_at', null);

-- ---------------------------------------------------------------------------------------------
-- Converting the existing tables, keeping every row.
-- ---------------------------------------------------------------------------------------------

-- The queue carries each delivery's partition keys (filled for what is queued now).
alter table webhooks.delivery_queue add column delivery_created_at timestamptz, add column event_dispatched_at timestamptz;
update webhooks.delivery_queue q
   set delivery_created_at = d.created_at, event_dispatched_at = e.dispatched_at
  from webhooks.deliveries d join webhooks.events e on e.id = d.event_id
 where d.id = q.delivery_id;
do $$
declare
  orphans int;
begin
  delete from webhooks.delivery_queue where delivery_created_at is null;
  get diagnostics orphans = row_count;
  if orphans > 0 then
    raise warning 'removed % queue rows whose delivery or event no longer existed (they could never be sent)', orphans;
  end if;
end
$$;
alter table webhooks.delivery_queue alter column delivery_created_at set not null, alter column event_dispatched_at set not null;
comment on column webhooks.delivery_queue.delivery_created_at is 'The delivery''s partition key (deliveries.created_at): finds its row in one partition.';
comment on column webhooks.delivery_queue.event_dispatched_at is 'The event''s partition key (events.dispatched_at): finds its row in one partition.';

-- Used once, below: turns webhooks.<name> into a table partitioned by range of `key` with the
-- same columns, defaults, checks, comments, grants and policies; the old table becomes its
-- partition <name>_legacy for everything before now(); a DEFAULT partition takes the rest until
-- webhooks.create_partitions() runs. The caller declares the primary key and indexes.
create function webhooks._convert_to_partitioned(name text, key text, primary_key text) returns void
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  legacy text := name || '_legacy';
  dropped record;
  policy record;
  grant_ record;
begin
  execute format('lock table webhooks.%I in access exclusive mode', name);
  execute format('alter table webhooks.%I rename to %I', name, legacy);
  -- Its primary key gives way to the new table's (which adds the partition key); its other
  -- constraints and indexes stay with it, renamed: the new table's take their names.
  for dropped in
    select c.conname, c.contype from pg_constraint c where c.conrelid = format('webhooks.%I', legacy)::regclass and c.contype in ('p', 'u')
  loop
    if dropped.contype = 'p' then
      execute format('alter table webhooks.%I drop constraint %I', legacy, dropped.conname);
    else
      execute format('alter table webhooks.%I rename constraint %I to %I', legacy, dropped.conname, left(dropped.conname, 55) || '_legacy');
    end if;
  end loop;
  for dropped in
    select ix.relname from pg_index i join pg_class ix on ix.oid = i.indexrelid
     where i.indrelid = format('webhooks.%I', legacy)::regclass and ix.relname !~ '_legacy$'
  loop
    execute format('alter index webhooks.%I rename to %I', dropped.relname, left(dropped.relname, 55) || '_legacy');
  end loop;

  execute format('create table webhooks.%I (like webhooks.%I including defaults including constraints including comments)
                  partition by range (%I)', name, legacy, key);
  execute format('comment on table webhooks.%I is %L', name, obj_description(format('webhooks.%I', legacy)::regclass, 'pg_class'));
  -- An identity column cannot be partitioned (before PostgreSQL 17): the ids continue from a
  -- sequence of the new table's own.
  if exists (select 1 from pg_attribute a where a.attrelid = format('webhooks.%I', legacy)::regclass and a.attname = 'id' and a.attidentity <> '') then
    execute format('alter table webhooks.%I alter column id drop identity', legacy);
    execute format('create sequence webhooks.%I as bigint owned by webhooks.%I.id', name || '_id_seq', name);
    execute format('select setval(%L, coalesce((select max(id) from webhooks.%I), 0) + 1, false)', 'webhooks.' || name || '_id_seq', legacy);
    execute format('alter table webhooks.%I alter column id set default nextval(%L)', name, 'webhooks.' || name || '_id_seq');
  end if;
  execute format('alter table webhooks.%I add primary key (%s)', name, primary_key);

  execute format('alter table webhooks.%I attach partition webhooks.%I for values from (minvalue) to (%L)', name, legacy, now());
  execute format('create table webhooks.%I partition of webhooks.%I default', name || '_default', name);
  execute format('alter table webhooks.%I enable row level security', name || '_default');

  -- Grants and policies move to the new table; the partitions grant nothing (reached only through it).
  for grant_ in
    select a.grantee::regrole::text as grantee, string_agg(a.privilege_type, ', ') as privileges
      from pg_class c, aclexplode(c.relacl) a
     where c.oid = format('webhooks.%I', legacy)::regclass and a.grantee <> c.relowner and a.grantee <> 0
     group by a.grantee
  loop
    execute format('grant %s on webhooks.%I to %I', grant_.privileges, name, grant_.grantee);
    execute format('revoke all on webhooks.%I from %I', legacy, grant_.grantee);
  end loop;
  execute format('alter table webhooks.%I enable row level security, force row level security', name);
  for policy in select * from pg_policies p where p.schemaname = 'webhooks' and p.tablename = legacy loop
    execute format('create policy %I on webhooks.%I as %s for %s to %s%s%s', policy.policyname, name, policy.permissive, policy.cmd,
                   (select string_agg(quote_ident(r), ', ') from unnest(policy.roles) r),
                   case when policy.qual is not null then format(' using (%s)', policy.qual) else '' end,
                   case when policy.with_check is not null then format(' with check (%s)', policy.with_check) else '' end);
    execute format('drop policy %I on webhooks.%I', policy.policyname, legacy);
  end loop;
  execute format('alter table webhooks.%I no force row level security', legacy);
end
$$;

select webhooks._convert_to_partitioned('webhook_logs', 'created_at', 'id, created_at');
-- (delivery_id, attempt) is unique in each partition (webhooks._partitioned), the index of "the
-- attempts of this delivery".
create index on webhooks.webhook_logs (organization_id, created_at desc);
create index on webhooks.webhook_logs (webhook_id, created_at desc);
drop trigger append_only on webhooks.webhook_logs_legacy;
create trigger append_only before update on webhooks.webhook_logs
  for each row execute function webhooks._refuse_log_update();

select webhooks._convert_to_partitioned('events', 'dispatched_at', 'id, dispatched_at');
create index on webhooks.events (organization_id, occurred_at desc);

select webhooks._convert_to_partitioned('deliveries', 'created_at', 'id, created_at');
-- (event_id, webhook_id) was unique; the fan-out creates each pair once.
create index on webhooks.deliveries (event_id, webhook_id);
create index on webhooks.deliveries (webhook_id);

select webhooks._convert_to_partitioned('intake_activity', 'received_at', 'id, received_at');
-- request_id and an accepted lead's event_id were unique; both are generated (req_…, ev_ + a
-- random uuid), and are looked up by these indexes.
create index on webhooks.intake_activity (request_id);
create index intake_activity_event_idx on webhooks.intake_activity (event_id) where outcome in ('accepted', 'processed', 'failed');
create index intake_activity_dedup_idx on webhooks.intake_activity (integration_id, idempotency_key, received_at desc) where event_id is not null;
create index intake_activity_organization_idx on webhooks.intake_activity (organization_id, received_at desc);
alter table webhooks.intake_activity
  add constraint intake_activity_integration_fkey foreign key (integration_id)
    references webhooks.inbound_integrations (id) on delete set null,
  add constraint intake_activity_organization_fkey foreign key (organization_id)
    references public.organizations (id) on delete cascade;

drop function webhooks._convert_to_partitioned(text, text, text);

-- The replay functions (run as the owner, RLS forced) read an event's partition key.
do $$
begin
  execute format('create policy owner_functions on webhooks.events for select to %I using (true)', current_user);
end
$$;

-- The views name the new tables (a view binds the table it was created on).
-- security_invoker restated: CREATE OR REPLACE resets a view's options (000004, 000005).
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

do $$
declare
  history record;
begin
  for history in select * from webhooks._partitioned where unique_in_partition is not null loop
    execute format('create unique index on webhooks.%I (%s)', history.table_name || '_default', history.unique_in_partition);
  end loop;
end
$$;

-- A table that held no rows (a new database) keeps no legacy partition.
do $$
declare
  history record;
  empty boolean;
begin
  for history in select * from webhooks._partitioned loop
    execute format('select not exists (select 1 from webhooks.%I)', history.table_name || '_legacy') into empty;
    if empty then
      execute format('alter table webhooks.%I detach partition webhooks.%I', history.table_name, history.table_name || '_legacy');
      execute format('drop table webhooks.%I', history.table_name || '_legacy');
    end if;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Partitions: listing, creating, expiring.
-- ---------------------------------------------------------------------------------------------

create function webhooks._partitions(table_name text)
returns table (partition_name text, lower_bound timestamptz, upper_bound timestamptz, is_default boolean)
language sql stable set search_path = pg_catalog, webhooks, pg_temp set datestyle = 'ISO' as $$
  -- The bounds as pg_get_expr prints them: FOR VALUES FROM ('…') TO ('…'), MINVALUE, or DEFAULT.
  select c.relname::text,
         substring(b from $r$FROM \('([^']*)'\)$r$)::timestamptz,
         substring(b from $r$TO \('([^']*)'\)$r$)::timestamptz,
         b = 'DEFAULT'
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
   cross join lateral pg_get_expr(c.relpartbound, c.oid) b
   where i.inhparent = format('webhooks.%I', table_name)::regclass
$$;
comment on function webhooks._partitions(text) is
  'The partitions of one of the history tables with their bounds (lower_bound null: from the beginning of time).';

-- What a queued delivery still needs of each history table: moved to the DEFAULT partition when
-- its partition expires, and kept there. Said in the two directions it is read in: from the queue
-- (the rows of an expiring partition, found through the queue however large the partition is) and
-- from a row (whether DEFAULT row x must stay, for the few rows there).
create function webhooks._needed_rows(table_name text, partition_name text, lower_bound timestamptz, upper_bound timestamptz,
                                      out queued text, out needed text)
language plpgsql stable set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  -- The queue rows whose key (%1$s) falls in the partition's range.
  within text := format('%%1$s >= %L and %%1$s < %L', coalesce(lower_bound, '-infinity'), upper_bound);
begin
  case table_name
    when 'deliveries' then
      queued := format('select d.* from webhooks.%I d join webhooks.delivery_queue q
                          on d.id = q.delivery_id and d.created_at = q.delivery_created_at
                         where %s', partition_name, format(within, 'q.delivery_created_at'));
      needed := 'exists (select 1 from webhooks.delivery_queue q where q.delivery_id = x.id and q.delivery_created_at = x.created_at)';
    when 'events' then
      queued := format('select e.* from webhooks.%I e
                         where e.id in (select d.event_id from webhooks.delivery_queue q
                                          join webhooks.deliveries d on d.id = q.delivery_id and d.created_at = q.delivery_created_at
                                         where %s)', partition_name, format(within, 'q.event_dispatched_at'));
      needed := 'exists (select 1 from webhooks.deliveries d join webhooks.delivery_queue q
                           on q.delivery_id = d.id and q.delivery_created_at = d.created_at
                          where d.event_id = x.id and q.event_dispatched_at = x.dispatched_at)';
    when 'intake_activity' then
      -- An accepted lead whose processing job has not run yet.
      queued := format('select a.* from webhooks.%I a where a.outcome = %L', partition_name, 'accepted');
      needed := 'x.outcome = ''accepted''';
    else
      -- webhook_logs: a pending delivery needs none of its past attempts.
      queued := null;
      needed := 'false';
  end case;
end
$$;
comment on function webhooks._needed_rows(text, text, timestamptz, timestamptz) is
  'Private. What queued deliveries (and unprocessed leads) still need of a history table, as SQL: queued selects the rows of an expiring partition that must move to the DEFAULT partition, found through the queue; needed says whether DEFAULT row x must stay.';

create function webhooks.create_partitions(since timestamptz default now()) returns setof text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp set lock_timeout = '1s' as $$
declare
  width interval := (select p.width from webhooks._partitioning p);
  origin constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
  -- Partitions reach this far ahead: the daemon's schedule (at most hourly, at most a width
  -- apart) always finds one ready.
  horizon timestamptz := now() + greatest(3 * width, interval '2 hours');
  history record;
  cursor_at timestamptz;
  taken record;
  upper_at timestamptz;
  name text;
  moved bigint;
begin
  if since is null or since > now() then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.create_partitions: since must be a time not after now, not %s', coalesce(since::text, 'null'));
  end if;
  perform pg_advisory_xact_lock(hashtextextended('pg-webhooks:partitions', 0));
  for history in select * from webhooks._partitioned order by table_name loop
    -- Each width from `since` to the horizon that no partition covers yet gets one; a range that
    -- an existing partition covers in part gets the rest (after a change of width, say).
    cursor_at := date_bin(width, since, origin);
    while cursor_at < horizon loop
      select p.upper_bound into taken from webhooks._partitions(history.table_name) p
       where not p.is_default and coalesce(p.lower_bound <= cursor_at, true) and p.upper_bound > cursor_at;
      if found then
        cursor_at := taken.upper_bound;
        continue;
      end if;
      upper_at := least(date_bin(width, cursor_at, origin) + width,
                        (select min(p.lower_bound) from webhooks._partitions(history.table_name) p where p.lower_bound > cursor_at));
      name := format('%s_p%s', history.table_name, to_char(cursor_at at time zone 'UTC', 'YYYYMMDD"_"HH24MI'));
      -- Made apart and attached: CREATE TABLE … PARTITION OF would lock the whole table, while
      -- ATTACH lets it be read and written meanwhile.
      execute format('create table webhooks.%I (like webhooks.%I including defaults including constraints)%s',
                     name, history.table_name, case when history.table_name = 'deliveries' then ' with (fillfactor = 50)' else '' end);
      if history.unique_in_partition is not null then
        execute format('create unique index on webhooks.%I (%s)', name, history.unique_in_partition);
      end if;
      -- Rows the DEFAULT partition took for this range move in (a backfill, or writes while no
      -- partition was ready).
      execute format('with moved as (delete from webhooks.%I where %I >= $1 and %I < $2 returning *)
                      insert into webhooks.%I select * from moved',
                     history.table_name || '_default', history.partition_key, history.partition_key, name)
        using cursor_at, upper_at;
      get diagnostics moved = row_count;
      execute format('alter table webhooks.%I attach partition webhooks.%I for values from (%L) to (%L)',
                     history.table_name, name, cursor_at, upper_at);
      execute format('alter table webhooks.%I enable row level security', name);
      return next name || case when moved > 0 then format(' (%s rows moved in from %s_default)', moved, history.table_name) else '' end;
      cursor_at := upper_at;
    end loop;
  end loop;
end
$$;
comment on function webhooks.create_partitions(timestamptz) is
  'Creates the history tables'' missing partitions from since (default now) to a few widths ahead; idempotent. Give since before a large backfill, so that its rows do not land in the DEFAULT partitions. Returns the partitions created.';

create function webhooks.drop_expired_partition(retention interval,
                                                out table_name text, out partition_name text, out kept bigint)
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp set lock_timeout = '1s' as $$
declare
  expired record;
  rescue text;
begin
  if retention is null or retention < interval '1 minute' then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.drop_expired_partition: retention must be at least a minute, not %s', coalesce(retention::text, 'null'));
  end if;
  perform pg_advisory_xact_lock(hashtextextended('pg-webhooks:partitions', 0));
  select h.table_name, p.partition_name, p.lower_bound, p.upper_bound into expired
    from webhooks._partitioned h cross join lateral webhooks._partitions(h.table_name) p
   where not p.is_default and p.upper_bound <= now() - retention
   order by p.upper_bound, h.table_name
   limit 1;
  if not found then
    return;
  end if;
  table_name := expired.table_name;
  partition_name := expired.partition_name;
  -- Detached first: its range is then the DEFAULT partition's, which takes what must stay.
  execute format('alter table webhooks.%I detach partition webhooks.%I', expired.table_name, expired.partition_name);
  rescue := (webhooks._needed_rows(expired.table_name, expired.partition_name, expired.lower_bound, expired.upper_bound)).queued;
  kept := 0;
  if rescue is not null then
    execute format('insert into webhooks.%I %s', expired.table_name || '_default', rescue);
    get diagnostics kept = row_count;
  end if;
  execute format('drop table webhooks.%I', expired.partition_name);
end
$$;
comment on function webhooks.drop_expired_partition(interval) is
  'Drops the oldest partition of the history tables older than the retention, keeping in the DEFAULT partition what a queued delivery still needs (kept: how many rows). Returns nulls when none is left.';

create function webhooks.delete_expired_rows(retention interval, batch int default 10000,
                                             out table_name text, out deleted bigint)
returns setof record
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp set lock_timeout = '1s' as $$
declare
  history record;
begin
  if retention is null or retention < interval '1 minute' then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.delete_expired_rows: retention must be at least a minute, not %s', coalesce(retention::text, 'null'));
  end if;
  perform pg_advisory_xact_lock(hashtextextended('pg-webhooks:partitions', 0));
  for history in select * from webhooks._partitioned h order by h.table_name loop
    -- The DEFAULT partitions only: stragglers and backfills, never a period's rows.
    execute format('delete from webhooks.%1$I x where x.ctid = any (array(
                      select x.ctid from webhooks.%1$I x where x.%2$I < $1 and not (%3$s) limit $2))',
                   history.table_name || '_default', history.partition_key,
                   (webhooks._needed_rows(history.table_name, history.table_name || '_default', null, 'infinity')).needed)
      using now() - retention, batch;
    get diagnostics deleted = row_count;
    if deleted > 0 then
      table_name := history.table_name;
      return next;
    end if;
  end loop;
end
$$;
comment on function webhooks.delete_expired_rows(interval, int) is
  'Deletes up to batch expired rows per history table from its DEFAULT partition (backfills, and stragglers no queued delivery needs any more). Returns what it deleted.';

-- No SET clause (a procedure with one cannot commit): every name is schema-qualified.
create procedure webhooks.prune(retention interval default interval '30 days')
language plpgsql as $$
declare
  created text;
  dropped record;
  deleted record;
  more boolean;
begin
  -- Each step commits: a lock is held for one partition's work, never for the whole run.
  for created in select * from webhooks.create_partitions() loop
    raise notice 'created partition %', created;
  end loop;
  commit;
  loop
    dropped := webhooks.drop_expired_partition(retention);
    exit when dropped.table_name is null;
    raise notice 'dropped partition % of %, % rows kept for queued deliveries', dropped.partition_name, dropped.table_name, dropped.kept;
    commit;
  end loop;
  loop
    more := false;
    for deleted in select * from webhooks.delete_expired_rows(retention) loop
      raise notice 'deleted % expired rows from %_default', deleted.deleted, deleted.table_name;
      more := true;
    end loop;
    commit;
    exit when not more;
  end loop;
end
$$;
comment on procedure webhooks.prune(interval) is
  'Applies the retention at once: creates the coming partitions, drops expired ones (keeping what queued deliveries need), deletes expired stragglers. CALL it outside a transaction block; pg-webhooks prune and the daemon run it.';

revoke execute on function webhooks._partitions(text), webhooks._needed_rows(text, text, timestamptz, timestamptz),
                           webhooks.create_partitions(timestamptz), webhooks.drop_expired_partition(interval),
                           webhooks.delete_expired_rows(interval, int) from public;
revoke execute on procedure webhooks.prune(interval) from public;
grant execute on function webhooks.create_partitions(timestamptz), webhooks.drop_expired_partition(interval),
                          webhooks.delete_expired_rows(interval, int) to webhooks_dispatcher;
grant execute on procedure webhooks.prune(interval) to webhooks_dispatcher;
grant usage, select on sequence webhooks.webhook_logs_id_seq, webhooks.intake_activity_id_seq to webhooks_dispatcher;

-- A replay or recovery queues a delivery with both partition keys; a delivery whose event has
-- expired is not queued (it could not be sent).
create or replace function webhooks._requeue(delivery_ids uuid[]) returns integer
language plpgsql set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  queued int;
begin
  -- The queue row first (its primary key decides between concurrent replays; the loser waits
  -- for the winner's commit and inserts nothing), then the delivery: the order the daemon's
  -- record statement locks them in.
  with entered as (
    insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, attempts, delivery_created_at, event_dispatched_at)
    select d.id, d.webhook_id, d.organization_id, d.attempts, d.created_at, e.dispatched_at
      from webhooks.deliveries d
      join webhooks.events e on e.id = d.event_id
     where d.id = any (delivery_ids)
    on conflict (delivery_id) do nothing
    returning delivery_id, delivery_created_at
  ), requeued as (
    update webhooks.deliveries d
       set state = 'pending',
           next_attempt_at = now(),
           completed_at = null,
           attempts_before_replay = d.attempts,
           updated_at = now()
      from entered e
     where d.id = e.delivery_id and d.created_at = e.delivery_created_at
    returning d.id
  )
  select count(*) into queued from requeued;
  if queued > 0 then
    perform pg_notify('webhooks_deliveries', '');
  end if;
  return queued;
end
$$;
