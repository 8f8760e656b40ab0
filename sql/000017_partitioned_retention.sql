-- Retention by time partitions (README "Retention and monitoring").
--
-- webhook_logs, events, deliveries and intake_activity become tables partitioned by range of
-- their time column (created_at, dispatched_at, created_at, received_at). Expired history goes by
-- dropping whole partitions: no row-by-row DELETE over a large table, no VACUUM storm.
--
-- Each table has:
-- * one partition per period, created ahead of time: a day, or a thirtieth of the retention when
--   that is longer (so a table has about 33 partitions whatever the retention: every statement
--   over it locks each of them);
-- * a DEFAULT partition for rows no period partition takes: a backfill older than the oldest
--   partition, a row far in the future, and what a pending delivery still needs after its own
--   partition expired;
-- * on a database upgraded from an earlier release with rows, a partition <table>_legacy holding
--   every row written before the upgrade, unchanged (it expires one retention period after the
--   upgrade).
--
-- The hot path finds a delivery and its event by id and partition key: the queue carries both
-- keys (delivery_queue.delivery_created_at, .event_dispatched_at), so each probe touches one
-- partition's index whatever the history.
--
-- `call webhooks.prune(retention)`: creates the coming partitions, one per transaction; then,
-- one per transaction, detaches the oldest partition older than the retention, moves the rows a
-- queued delivery still needs (its delivery row, its event; an accepted lead not processed yet)
-- to the DEFAULT partition and drops the partition; then deletes, in batches, the expired rows of
-- the DEFAULT partitions that nothing needs any more. Each step takes one advisory lock (the same
-- that webhooks.replay takes shared), waits at most a second for its table locks, and reports a
-- table it could not lock instead of failing the run.

-- Private: a fixed width of a partition instead of the one derived from the retention. Only the
-- bench's soak sets one (minutes).
create table webhooks._partitioning (
  only_row boolean primary key default true check (only_row),
  width interval check (width >= interval '1 minute')
);
comment on table webhooks._partitioning is
  'Private. width: when set, the time range of one partition of the history tables, instead of a day (or a thirtieth of the retention when longer). For benchmarks; takes effect for partitions created after a change.';
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
language plpgsql set search_path = pg_catalog, webhooks, pg_temp set timezone = 'UTC' set datestyle = 'ISO, YMD' as $$
declare
  legacy text := name || '_legacy';
  dropped record;
  policy record;
  grant_ record;
  dependents text;
  upper_bound timestamptz;
begin
  execute format('lock table webhooks.%I in access exclusive mode', name);
  -- A view, rule or publication of the deployer's on the table would follow it to <name>_legacy
  -- (and show no new row), then keep that partition from ever being dropped: refused, by name.
  select string_agg(distinct dependent, ', ') into dependents from (
    select v.oid::regclass::text as dependent
      from pg_depend d join pg_rewrite r on r.oid = d.objid join pg_class v on v.oid = r.ev_class
     where d.classid = 'pg_rewrite'::regclass and d.refobjid = format('webhooks.%I', name)::regclass
       and v.oid <> d.refobjid and v.oid not in ('webhooks.webhook_stats'::regclass, 'webhooks.dead_deliveries'::regclass)
    union all
    select 'publication ' || p.pubname from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
     where pr.prrelid = format('webhooks.%I', name)::regclass
  ) found;
  if dependents is not null then
    raise exception using errcode = 'dependent_objects_still_exist',
      message = format('webhooks.%s is about to become a partitioned table, and %s depend on it', name, dependents),
      hint = 'drop them, run pg-webhooks migrate, then create them again on the new table (sql/000017)';
  end if;
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

  -- Everything written before the upgrade, a row dated in the future too.
  execute format('select greatest(now(), max(%I) + interval ''1 microsecond'') from webhooks.%I', key, legacy) into upper_bound;
  execute format('alter table webhooks.%I attach partition webhooks.%I for values from (minvalue) to (%L)', name, legacy, upper_bound);
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
-- Its foreign keys become triggers: a foreign key on a partitioned table puts triggers on the
-- tables it references, and detaching or dropping one of its partitions then locks those
-- (organizations!) against every query for the rest of that transaction.
alter table webhooks.intake_activity_legacy
  drop constraint intake_activity_integration_id_fkey, drop constraint intake_activity_organization_id_fkey;
create index intake_activity_integration_idx on webhooks.intake_activity (integration_id);

create function webhooks._forget_intake_of_deleted_integration() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  update webhooks.intake_activity a set integration_id = null where a.integration_id = old.id;
  return null;
end
$$;
comment on function webhooks._forget_intake_of_deleted_integration() is
  'Private trigger: what the foreign key intake_activity.integration_id on delete set null did (sql/000017).';
create trigger forget_intake_activity after delete on webhooks.inbound_integrations
  for each row execute function webhooks._forget_intake_of_deleted_integration();

create function webhooks._delete_intake_of_deleted_organization() returns trigger
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  delete from webhooks.intake_activity a where a.organization_id = old.id;
  return null;
end
$$;
comment on function webhooks._delete_intake_of_deleted_organization() is
  'Private trigger: what the foreign key intake_activity.organization_id on delete cascade did (sql/000017).';
create trigger delete_intake_activity after delete on public.organizations
  for each row execute function webhooks._delete_intake_of_deleted_organization();
revoke execute on function webhooks._forget_intake_of_deleted_integration(), webhooks._delete_intake_of_deleted_organization() from public;

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

-- The DEFAULT partitions: what is unique in a partition is unique there too; an index on the
-- partition key (expired stragglers are found by it); the fill factor deliveries have (000008).
do $$
declare
  history record;
begin
  for history in select * from webhooks._partitioned loop
    if history.unique_in_partition is not null then
      execute format('create unique index on webhooks.%I (%s)', history.table_name || '_default', history.unique_in_partition);
    end if;
    execute format('create index on webhooks.%I (%I)', history.table_name || '_default', history.partition_key);
  end loop;
end
$$;
alter table webhooks.deliveries_default set (fillfactor = 50);

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

-- The one lock every step takes (exclusive), and webhooks.replay (shared): a replay never
-- queues a delivery whose rows a step is removing.
create function webhooks._partitions_lock_key() returns bigint
language sql immutable set search_path = pg_catalog, pg_temp as $$
  select hashtextextended('pg-webhooks:partitions', 0)
$$;

create function webhooks._partitions(table_name text)
returns table (partition_name text, lower_bound timestamptz, upper_bound timestamptz, is_default boolean)
language sql stable set search_path = pg_catalog, webhooks, pg_temp set timezone = 'UTC' set datestyle = 'ISO, YMD' as $$
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

-- A partition's width: the bench's, else a day, else a thirtieth of the retention in whole days.
create function webhooks._partition_width(retention interval) returns interval
language sql stable set search_path = pg_catalog, pg_temp as $$
  select coalesce((select p.width from webhooks._partitioning p),
                  make_interval(days => greatest(1, ceil(extract(epoch from retention) / 86400 / 30)::int)))
$$;

-- A retention the caller may apply: at least a day (the intake's idempotency window), except for a
-- superuser (the bench's soak uses minutes).
create function webhooks._check_retention(retention interval, what text) returns void
language plpgsql stable set search_path = pg_catalog, pg_temp as $$
begin
  if retention is null or retention < interval '1 minute' then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('%s: retention must be at least a minute, not %s', what, coalesce(retention::text, 'null'));
  end if;
  if retention < interval '1 day'
     and not coalesce((select r.rolsuper from pg_roles r
                        where r.rolname = case when current_setting('role') = 'none' then session_user::text else current_setting('role') end), false) then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('%s: retention must be at least a day, not %s (shorter ones are for a superuser: benchmarks)', what, retention);
  end if;
end
$$;

-- What a queued delivery still needs of each history table: moved to the DEFAULT partition when
-- its partition expires, and kept there. Said in the two directions it is read in: from the queue
-- (`queued`: the rows of an expiring partition, found through the queue however large the
-- partition is; $1 and $2 its bounds) and from a row (`needed`: whether DEFAULT row x must stay).
create function webhooks._needed_rows(table_name text, partition_name text, out queued text, out needed text)
language plpgsql immutable set search_path = pg_catalog, webhooks, pg_temp as $$
begin
  case table_name
    when 'deliveries' then
      queued := format('select d.* from webhooks.%I d join webhooks.delivery_queue q
                          on d.id = q.delivery_id and d.created_at = q.delivery_created_at
                         where q.delivery_created_at >= $1 and q.delivery_created_at < $2', partition_name);
      needed := 'exists (select 1 from webhooks.delivery_queue q where q.delivery_id = x.id and q.delivery_created_at = x.created_at)';
    when 'events' then
      queued := format('select e.* from webhooks.%I e
                         where e.id in (select d.event_id from webhooks.delivery_queue q
                                          join webhooks.deliveries d on d.id = q.delivery_id and d.created_at = q.delivery_created_at
                                         where q.event_dispatched_at >= $1 and q.event_dispatched_at < $2)', partition_name);
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
comment on function webhooks._needed_rows(text, text) is
  'Private. What queued deliveries (and unprocessed leads) still need of a history table, as SQL: queued selects the rows of an expiring partition that must move to the DEFAULT partition, found through the queue; needed says whether DEFAULT row x must stay.';

-- Each step: its advisory lock (waiting at most lock_timeout, a second), then its work; a lock it
-- cannot get within a second is reported ('busy: …') and left to the next run, never an error.

create function webhooks.create_next_partition(since timestamptz, retention interval) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp
set lock_timeout = '1s' set timezone = 'UTC' set datestyle = 'ISO, YMD' as $$
declare
  width interval := webhooks._partition_width(retention);
  origin constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
  -- Partitions reach this far ahead: the daemon's hourly run always finds one ready.
  horizon timestamptz := now() + greatest(3 * width, interval '2 hours');
  history record;
  cursor_at timestamptz;
  taken record;
  next_lower timestamptz;
  upper_at timestamptz;
  name text;
  moved bigint;
begin
  if since is null or since > now() then
    raise exception using errcode = 'invalid_parameter_value',
      message = format('webhooks.create_next_partition: since must be a time not after now, not %s', coalesce(since::text, 'null'));
  end if;
  perform webhooks._check_retention(retention, 'webhooks.create_next_partition');
  begin
    perform pg_advisory_xact_lock(webhooks._partitions_lock_key());
  exception when lock_not_available then
    return 'busy: another step of the retention is running';
  end;
  for history in select * from webhooks._partitioned order by table_name loop
    -- The first width from `since` to the horizon that no partition covers yet; a range that an
    -- existing partition covers in part gets the rest (after a change of width, say).
    cursor_at := date_bin(width, since, origin);
    next_lower := null;
    for taken in select p.lower_bound, p.upper_bound from webhooks._partitions(history.table_name) p
                  where not p.is_default and p.upper_bound > cursor_at order by p.upper_bound loop
      if coalesce(taken.lower_bound <= cursor_at, true) then
        cursor_at := taken.upper_bound;
      else
        next_lower := taken.lower_bound;
        exit;
      end if;
    end loop;
    continue when cursor_at >= horizon;

    upper_at := least(date_bin(width, cursor_at, origin) + width, next_lower);
    name := format('%s_p%s', history.table_name, to_char(cursor_at, 'YYYYMMDD"_"HH24MISS'));
    begin
      -- Table, then its DEFAULT partition: the order of every statement over them. From here no
      -- row lands in DEFAULT before the new partition takes its range.
      execute format('lock table webhooks.%I in share update exclusive mode', history.table_name);
      execute format('lock table webhooks.%I in access exclusive mode', history.table_name || '_default');
    exception when lock_not_available then
      return format('busy: %s (another transaction holds it; the next run creates %s)', history.table_name, name);
    end;
    -- Made apart and attached: CREATE TABLE … PARTITION OF would lock the whole table.
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
    return 'created ' || name || case when moved > 0 then format(' (%s rows moved in from %s_default)', moved, history.table_name) else '' end;
  end loop;
  return null;
end
$$;
comment on function webhooks.create_next_partition(timestamptz, interval) is
  'One step of webhooks.create_partitions: creates the first missing partition of the history tables from since to a few widths ahead; null when none is missing; ''busy: …'' when a table could not be locked within a second.';

create function webhooks.drop_expired_partition(retention interval) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp
set lock_timeout = '1s' set timezone = 'UTC' set datestyle = 'ISO, YMD' as $$
declare
  expired record;
  rescue text;
  kept bigint := 0;
begin
  perform webhooks._check_retention(retention, 'webhooks.drop_expired_partition');
  begin
    perform pg_advisory_xact_lock(webhooks._partitions_lock_key());
  exception when lock_not_available then
    return 'busy: another step of the retention is running';
  end;
  select h.table_name, p.partition_name, p.lower_bound, p.upper_bound into expired
    from webhooks._partitioned h cross join lateral webhooks._partitions(h.table_name) p
   where not p.is_default and p.upper_bound <= now() - retention
   order by p.upper_bound, h.table_name
   limit 1;
  if not found then
    return null;
  end if;
  begin
    -- Detached first: its range is then the DEFAULT partition's, which takes what must stay.
    execute format('alter table webhooks.%I detach partition webhooks.%I', expired.table_name, expired.partition_name);
  exception when lock_not_available then
    return format('busy: %s (another transaction holds it; the next run drops %s)', expired.table_name, expired.partition_name);
  end;
  rescue := (webhooks._needed_rows(expired.table_name, expired.partition_name)).queued;
  if rescue is not null then
    execute format('insert into webhooks.%I %s', expired.table_name || '_default', rescue)
      using coalesce(expired.lower_bound, '-infinity'), expired.upper_bound;
    get diagnostics kept = row_count;
  end if;
  execute format('drop table webhooks.%I', expired.partition_name);
  return format('dropped %s, %s rows kept for queued deliveries', expired.partition_name, kept);
end
$$;
comment on function webhooks.drop_expired_partition(interval) is
  'One step of webhooks.prune: drops the oldest partition of the history tables older than the retention, keeping in the DEFAULT partition what a queued delivery still needs. Null when none is left; ''busy: …'' when its table could not be locked within a second.';

create function webhooks.delete_expired_rows(retention interval, batch int default 10000) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp
set lock_timeout = '1s' set timezone = 'UTC' set datestyle = 'ISO, YMD' as $$
declare
  history record;
  deleted bigint;
begin
  perform webhooks._check_retention(retention, 'webhooks.delete_expired_rows');
  begin
    perform pg_advisory_xact_lock(webhooks._partitions_lock_key());
  exception when lock_not_available then
    return 'busy: another step of the retention is running';
  end;
  for history in select * from webhooks._partitioned h order by h.table_name loop
    -- The DEFAULT partitions only: stragglers and backfills, never a period's rows.
    begin
      execute format('delete from webhooks.%1$I x where x.ctid = any (array(
                        select x.ctid from webhooks.%1$I x where x.%2$I < $1 and not (%3$s) limit $2))',
                     history.table_name || '_default', history.partition_key,
                     (webhooks._needed_rows(history.table_name, history.table_name || '_default')).needed)
        using now() - retention, batch;
    exception when lock_not_available then
      return format('busy: %s_default', history.table_name);
    end;
    get diagnostics deleted = row_count;
    if deleted > 0 then
      return format('deleted %s expired rows from %s_default', deleted, history.table_name);
    end if;
  end loop;
  return null;
end
$$;
comment on function webhooks.delete_expired_rows(interval, int) is
  'One step of webhooks.prune: deletes up to batch expired rows that nothing needs any more from one DEFAULT partition of the history tables. Null when none is left.';

-- The procedures run as their caller and commit after each step (so no SET clause: every name
-- is schema-qualified). The daemon and `pg-webhooks prune` call webhooks.prune.
create procedure webhooks.create_partitions(since timestamptz default now(), retention interval default interval '30 days')
language plpgsql as $$
declare
  done text;
begin
  loop
    done := webhooks.create_next_partition(since, retention);
    exit when done is null;
    raise notice '%', done;
    commit;
    exit when done like 'busy:%';
  end loop;
end
$$;
comment on procedure webhooks.create_partitions(timestamptz, interval) is
  'Creates the history tables'' missing partitions from since (default now) to a few widths ahead, one per transaction; give since before a large backfill, so that its rows do not land in the DEFAULT partitions. CALL it outside a transaction block.';

create procedure webhooks.prune(retention interval default interval '30 days')
language plpgsql as $$
declare
  done text;
begin
  call webhooks.create_partitions(now(), retention);
  loop
    done := webhooks.drop_expired_partition(retention);
    exit when done is null;
    raise notice '%', done;
    commit;
    exit when done like 'busy:%';
  end loop;
  loop
    done := webhooks.delete_expired_rows(retention);
    exit when done is null;
    raise notice '%', done;
    commit;
    exit when done like 'busy:%';
  end loop;
end
$$;
comment on procedure webhooks.prune(interval) is
  'Applies the retention at once: creates the coming partitions, drops expired ones (keeping what queued deliveries need), deletes expired stragglers; each step its own transaction, reported as a NOTICE. CALL it outside a transaction block; pg-webhooks prune and the daemon run it.';

revoke execute on function webhooks._partitions_lock_key(), webhooks._partitions(text), webhooks._partition_width(interval),
                           webhooks._check_retention(interval, text), webhooks._needed_rows(text, text),
                           webhooks.create_next_partition(timestamptz, interval), webhooks.drop_expired_partition(interval),
                           webhooks.delete_expired_rows(interval, int) from public;
revoke execute on procedure webhooks.prune(interval), webhooks.create_partitions(timestamptz, interval) from public;
grant execute on function webhooks.create_next_partition(timestamptz, interval), webhooks.drop_expired_partition(interval),
                          webhooks.delete_expired_rows(interval, int) to webhooks_dispatcher;
grant execute on procedure webhooks.prune(interval), webhooks.create_partitions(timestamptz, interval) to webhooks_dispatcher;
grant select on webhooks._partitioning to webhooks_dispatcher;
grant usage, select on sequence webhooks.webhook_logs_id_seq to webhooks_dispatcher;

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

-- Replays take the retention's lock shared: a step that removes rows finishes first, and a
-- delivery whose event has expired is answered as such, not as queued.
create or replace function webhooks.replay(delivery_id uuid) returns text
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  delivery webhooks.deliveries;
  config webhooks.webhook_configurations;
  queued webhooks.delivery_queue;
begin
  perform pg_advisory_xact_lock_shared(webhooks._partitions_lock_key());
  select * into delivery from webhooks.deliveries d where d.id = replay.delivery_id;
  select * into config from webhooks.webhook_configurations c
   where c.id = delivery.webhook_id and c.organization_id = delivery.organization_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay', format('no delivery %s', delivery_id));
  perform webhooks._refuse_inactive(config, 'webhooks.replay');

  -- Locked: claims skip locked rows, so none takes it while this decides.
  select * into queued from webhooks.delivery_queue q where q.delivery_id = delivery.id for update;
  if found and queued.claimed_by is not null then
    return 'in flight';
  elsif found then
    update webhooks.delivery_queue q set due_at = least(q.due_at, now()), retry = false where q.delivery_id = delivery.id;
    update webhooks.deliveries d
       set state = 'pending', next_attempt_at = now(), attempts_before_replay = d.attempts, updated_at = now()
     where d.id = delivery.id and d.created_at = delivery.created_at;
    return 'already queued';
  elsif webhooks._requeue(array[delivery.id]) = 1 then
    return 'queued';
  end if;
  -- A concurrent replay queued it first (its row was not committed when this looked).
  select * into queued from webhooks.delivery_queue q where q.delivery_id = delivery.id;
  if not found then
    raise exception using errcode = 'no_data_found',
      message = format('webhooks.replay: delivery %s can no longer be sent: its event has expired (WEBHOOKS_RETENTION_DAYS)', delivery_id);
  end if;
  return case when queued.claimed_by is null then 'already queued' else 'in flight' end;
end
$$;

create or replace function webhooks.replay_dead(webhook_id uuid) returns integer
language plpgsql security definer set search_path = pg_catalog, webhooks, pg_temp as $$
declare
  config webhooks.webhook_configurations;
begin
  perform pg_advisory_xact_lock_shared(webhooks._partitions_lock_key());
  select * into config from webhooks.webhook_configurations c where c.id = replay_dead.webhook_id;
  perform webhooks._assert_tenant(config.organization_id, 'webhooks.replay_dead', format('no webhook %s', webhook_id));
  perform webhooks._refuse_inactive(config, 'webhooks.replay_dead');
  return webhooks._requeue(array(
    select d.id from webhooks.deliveries d
     where d.webhook_id = config.id and d.organization_id = config.organization_id and d.state = 'dead'));
end
$$;

-- Today's partitions and the next few, now: a write of the current time never lands in a DEFAULT
-- partition, where attaching its partition later would race with it.
do $$
begin
  while webhooks.create_next_partition(now(), interval '30 days') is not null loop
  end loop;
end
$$;
