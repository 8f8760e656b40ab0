-- The daemon must not hang silently (README "Locks, stalls and crashes").
--
-- 1. webhooks._describe_backends: what the daemon's own connections are doing (statement, wait
--    event, the lock they wait for) and who blocks them (pid, role, application_name, how long
--    the blocker's transaction has been open, the lock it holds). The daemon logs it when a
--    statement waits long for a lock or its work stops moving, and /healthz shows it.
-- 2. Least privilege for webhooks_app: what it may not do, revoked explicitly.

-- pg_stat_activity shows another role's session to a role without pg_read_all_stats only as its
-- pid, role and application_name: not its state, nor when its transaction began. A lock's blocker
-- is usually another role (the application's), so this function reads as its owner, and hands
-- out only what naming a blocker needs: never another role's statement (it could hold that
-- role's data), only the caller's own.
create function webhooks._describe_backends(pids int[])
returns table (
  pid int,
  role text,
  application_name text,
  state text,
  session_seconds float8,
  transaction_seconds float8,
  statement_seconds float8,
  wait_event_type text,
  wait_event text,
  statement text,
  waiting_for text,
  blockers jsonb
)
language sql stable security definer set search_path = pg_catalog, pg_temp as $$
  with activity as materialized (
    select a.* from pg_stat_activity a
  ), locks as materialized (
    -- pg_locks is read once: each read takes every lock-manager partition lock for a moment.
    select l.* from pg_locks l
     where l.pid = any (pids)
        or l.pid in (select unnest(pg_blocking_pids(w.pid)) from activity w
                      where w.pid = any (pids) and w.wait_event_type = 'Lock')
  ), waiting as (
    select w.pid, w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid,
           w.classid, w.objid, w.objsubid, w.mode,
           format('%s on %s', w.mode,
             case w.locktype
               when 'relation' then 'relation ' || w.relation::regclass::text
               when 'tuple' then 'a row of ' || w.relation::regclass::text
               when 'transactionid' then 'transaction ' || w.transactionid::text
                 || coalesce(' (a row of ' || (select t.relation::regclass::text from locks t
                                               where t.pid = w.pid and t.locktype = 'tuple' and t.granted limit 1) || ')', '')
               when 'advisory' then format('advisory lock %s/%s/%s', w.classid, w.objid, w.objsubid)
               else w.locktype
             end) as description
      from locks w
     where w.pid = any (pids) and not w.granted
  )
  select a.pid, a.usename::text, a.application_name, a.state,
         extract(epoch from clock_timestamp() - a.backend_start)::float8,
         extract(epoch from clock_timestamp() - a.xact_start)::float8,
         extract(epoch from clock_timestamp() - a.query_start)::float8,
         a.wait_event_type, a.wait_event,
         case when a.usename = session_user then left(a.query, 1000) end,
         w.description,
         case when a.wait_event_type = 'Lock' then (
           select jsonb_agg(jsonb_build_object(
                    'pid', bp.pid,
                    'role', b.usename,
                    'application_name', b.application_name,
                    'state', b.state,
                    'transaction_seconds', extract(epoch from clock_timestamp() - b.xact_start)::float8,
                    'holds', (select string_agg(distinct h.mode, ', ') from locks h
                               where h.pid = bp.pid and h.granted and h.locktype = w.locktype
                                 and h.database is not distinct from w.database
                                 and h.relation is not distinct from w.relation
                                 and h.page is not distinct from w.page
                                 and h.tuple is not distinct from w.tuple
                                 and h.virtualxid is not distinct from w.virtualxid
                                 and h.transactionid is not distinct from w.transactionid
                                 and h.classid is not distinct from w.classid
                                 and h.objid is not distinct from w.objid
                                 and h.objsubid is not distinct from w.objsubid))
                  order by bp.pid)
             from unnest(pg_blocking_pids(a.pid)) as bp (pid)
             left join activity b on b.pid = bp.pid
         ) end
    from activity a
    left join lateral (select * from waiting where waiting.pid = a.pid limit 1) w on true
   where a.pid = any (pids) and a.datname = current_database()
$$;
comment on function webhooks._describe_backends(int[]) is
  'Private (webhooks_dispatcher): for these backends of the current database, their state, wait event, the lock they wait for, and each blocker (pid, role, application_name, state, transaction age, lock held). Statements only of the caller''s own sessions.';
revoke execute on function webhooks._describe_backends(int[]) from public;
grant execute on function webhooks._describe_backends(int[]) to webhooks_dispatcher;

-- Least privilege for webhooks_app (what applications log in as). It keeps exactly what its
-- users need: CRUD on its organization's CRM rows, webhook configurations and inbound
-- integrations; SELECT on what the daemon writes for it (events, deliveries, webhook_logs,
-- endpoint_states, outbox_set_aside, intake_activity, the views); the public functions.
--
-- Nothing on the daemon's own tables, not even SELECT (a SELECT is an ACCESS SHARE lock, which
-- blocks a rewrite or a partition drop). None of these grants exist today; revoking them here
-- keeps it so whatever an earlier migration granted.
revoke all on webhooks.outbox, webhooks.delivery_queue, webhooks.endpoint_claims, webhooks.daemons,
              webhooks._dispatcher_wake, webhooks.migrations
  from webhooks_app;
-- TRUNCATE would empty a table past row-level security; REFERENCES would let a table of the
-- application's block deletes here; TRIGGER would run the application's code inside the daemon's
-- statements. None is needed anywhere.
revoke truncate, references, trigger on all tables in schema webhooks from webhooks_app;
-- A trigger function runs whether or not the writer may execute it (only the functions it calls
-- need the writer's EXECUTE), and cannot be called directly: these grants served nothing.
revoke execute on function webhooks._validate_webhook_configuration(), webhooks._reset_failing_since(),
                           webhooks._validate_inbound_integration(), webhooks._validate_flow_control()
  from webhooks_app, webhooks_dispatcher;
-- What stays and cannot go: UPDATE and DELETE on webhook_configurations (and on its organization's
-- CRM rows and inbound integrations) also permit LOCK TABLE … IN ACCESS EXCLUSIVE MODE, and
-- SELECT … FOR UPDATE on its own rows. PostgreSQL has no privilege that allows writing rows but
-- not locking the table. The daemon bounds what such a lock costs: its connections wait at most
-- lock_timeout (WEBHOOKS_LOCK_TIMEOUT_MS), then log who holds the lock and retry; the attempt
-- record skips health updates on configuration rows an application holds locked.
