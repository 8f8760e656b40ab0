import type { Statement } from "../capture/fan-out-statement.js";
import { exactTimestamp, keyRange, type PartitionKey } from "./partition-keys.js";

/**
 * The three statements of a claim, built here and nowhere else (pure). A claim runs in one
 * transaction:
 *
 * 1. `lockEndpointsStatement` finds the endpoints with queued deliveries (a loose index scan: one
 *    probe per endpoint, however long its queue) that may send now — not paused, circuit closed
 *    or due for a probe, a delivery due — and locks their endpoint_states rows, skipping rows
 *    another daemon holds: two daemons never claim for one endpoint at once.
 * 2. `claimStatement` takes per endpoint at most its room — max_in_flight (1 for a probe) minus
 *    the attempts in flight: this daemon's own (exact, passed in) plus every other daemon's as
 *    last published in endpoint_claims (the latest: they change only under the lock held since
 *    step 1, and can only be too high) — fewer when the rate-limit bucket holds fewer tokens. It
 *    alternates first attempts and retries so neither starves the other, serves the
 *    organizations holding fewest of this daemon's attempts first, takes at most `limit` in all, marks them claimed by this daemon,
 *    publishes this daemon's new figure, spends the tokens, marks a probe, and returns the claimed
 *    deliveries' ids, attempt numbers and partition keys. It reads no partitioned table.
 * 3. `claimedDeliveriesStatement` reads what each attempt needs — the delivery, its event, its
 *    endpoint — by the partition keys step 2 returned, passed back as parameters: it opens only
 *    the partitions the claim touches, not every day kept (partition-keys.ts).
 *
 * Queue rows are locked SKIP LOCKED too: a claim never waits, so it cannot deadlock with a
 * statement that gives claims back.
 *
 * Only queue rows of the endpoint's own organization are candidates: a webhook id that another
 * organization deleted and a tenant then chose again must not inherit what was left queued under
 * it (sql/000012_tenant_hardening.sql). And the queue row numbers attempts: each claim takes the
 * next number, so a claim given back while its attempt still runs never repeats one.
 */

/** Set in the claim transaction: the queue's statistics are always stale (it churns by thousands of rows a second), and only its index's order makes a claim cheap. */
export const CLAIM_PLANNER_SETTINGS = "set local enable_seqscan = off; set local enable_bitmapscan = off";

/** How long a probe may take before another one is allowed (beyond the endpoint's timeout). */
export const PROBE_GRACE_SECONDS = 30;

export function lockEndpointsStatement(): Statement {
  return {
    name: "pg-webhooks:claim-lock-endpoints",
    text: `with recursive queued (webhook_id) as (
       (select q.webhook_id from webhooks.delivery_queue q order by q.webhook_id limit 1)
       union all
       select (select q.webhook_id from webhooks.delivery_queue q where q.webhook_id > queued.webhook_id
                order by q.webhook_id limit 1)
         from queued where queued.webhook_id is not null
     )
     select s.webhook_id
       from webhooks.endpoint_states s
       join webhooks.webhook_configurations c on c.id = s.webhook_id
      where s.webhook_id in (select webhook_id from queued where webhook_id is not null)
        and not c.paused
        and (s.circuit = 'closed' or s.circuit_until <= now())
        -- Something is due: endpoints whose queue holds only later retries are not locked.
        and (exists (select 1 from webhooks.delivery_queue q
                      where q.webhook_id = s.webhook_id and not q.retry and q.due_at <= now() and q.claimed_by is null
                        and q.organization_id = s.organization_id)
             or exists (select 1 from webhooks.delivery_queue q
                         where q.webhook_id = s.webhook_id and q.retry and q.due_at <= now() and q.claimed_by is null
                           and q.organization_id = s.organization_id))
        for update of s skip locked`,
    values: [],
  };
}

/**
 * Which queue row `q` may be claimed as far as ordering goes: any row of a `none` endpoint
 * (no lane); a fifo row only as the first of its lane — no row of the lane with a smaller
 * position (one in flight or waiting for a retry is still there) — and only once every write
 * committed before it has been fanned out: no outbox row with a smaller id is left (two daemons
 * fan out side by side, so a later write's delivery can be queued before an earlier one's; see
 * sql/000021_fifo_lanes.sql). The outbox's smallest id is read once per claim.
 */
export const LANE_HEAD = `(q.lane is null
       or (q.lane_position < (select coalesce(min(o.id), 9223372036854775807) from webhooks.outbox o)
           and not exists (select 1 from webhooks.delivery_queue l
                            where l.webhook_id = q.webhook_id and l.lane = q.lane
                              and (l.lane_position, l.delivery_id) < (q.lane_position, q.delivery_id))))`;

export function claimStatement(claims: {
  webhookIds: string[];
  ownInFlight: number[];
  daemonId: string;
  limit: number;
  /** This daemon's open attempts per organization: claims go first to the organizations with fewest. */
  organizations: { ids: string[]; open: number[] };
}): Statement {
  return {
    name: "pg-webhooks:claim",
    text: `with endpoint as (
       select s.webhook_id, s.organization_id, s.circuit, own.n as own,
              own.n + coalesce((select sum(ec.in_flight) from webhooks.endpoint_claims ec
                                 where ec.webhook_id = s.webhook_id and ec.daemon_id <> $3), 0)::int as in_flight,
              case when s.circuit = 'closed' then c.max_in_flight else 1 end as max_in_flight,
              -- The bucket holds at most one second's worth (at least one token).
              case when c.rate_limit_per_second is not null then
                least(greatest(c.rate_limit_per_second, 1),
                      s.rate_tokens + c.rate_limit_per_second * extract(epoch from now() - s.rate_refilled_at))::float8
              end as tokens,
              c.timeout_seconds
         from unnest($1::uuid[], $2::int[]) as own (webhook_id, n)
         join webhooks.endpoint_states s on s.webhook_id = own.webhook_id
         join webhooks.webhook_configurations c on c.id = s.webhook_id
     ), allowance as (
       select e.*, greatest(0, least(e.max_in_flight - e.in_flight, coalesce(floor(e.tokens)::int, e.max_in_flight))) as room
         from endpoint e
     ), candidate as (
       select p.delivery_id, a.webhook_id, a.organization_id, p.rank, a.in_flight
         from allowance a
        cross join lateral (
          select x.delivery_id, row_number() over (order by x.position, x.retry) as rank
            from ((select q.delivery_id, q.retry, row_number() over (order by q.due_at) as position
                     from webhooks.delivery_queue q
                    where q.webhook_id = a.webhook_id and not q.retry and q.due_at <= now() and q.claimed_by is null
                      and q.organization_id = a.organization_id and ${LANE_HEAD}
                    order by q.due_at limit a.room)
                  union all
                  (select q.delivery_id, q.retry, row_number() over (order by q.due_at) as position
                     from webhooks.delivery_queue q
                    where q.webhook_id = a.webhook_id and q.retry and q.due_at <= now() and q.claimed_by is null
                      and q.organization_id = a.organization_id and ${LANE_HEAD}
                    order by q.due_at limit a.room)) x
           order by x.position, x.retry
           limit a.room
        ) p
        where a.room > 0
     ), ranked as (
       -- Water-filling across organizations: a candidate's place is its organization's open
       -- attempts in this daemon plus its place among that organization's candidates, so free
       -- slots go first to the organizations holding fewest, and one tenant's many endpoints
       -- cannot crowd the others out of a claim.
       select c.delivery_id,
              coalesce(o.open, 0) + row_number() over (partition by c.organization_id order by c.rank, c.in_flight, random()) as place,
              c.rank
         from candidate c
         left join unnest($5::uuid[], $6::int[]) as o (organization_id, open) using (organization_id)
        order by place, c.rank, random()
        limit $4
     ), picked as (
       select q.delivery_id
         from webhooks.delivery_queue q
         join ranked using (delivery_id)
        where q.claimed_by is null
          for update of q skip locked
     ), claimed as (
       update webhooks.delivery_queue q
          set claimed_by = $3, claimed_at = now(), attempts = q.attempts + 1
         from picked
        where q.delivery_id = picked.delivery_id
       returning q.delivery_id, q.webhook_id, q.attempts, q.delivery_created_at, q.event_dispatched_at
     ), counted as (
       select a.webhook_id, a.own, a.tokens, a.timeout_seconds, a.circuit, count(k.delivery_id)::int as n
         from allowance a left join claimed k using (webhook_id)
        group by a.webhook_id, a.own, a.tokens, a.timeout_seconds, a.circuit
     ), published as (
       insert into webhooks.endpoint_claims as ec (webhook_id, daemon_id, in_flight)
       select webhook_id, $3, own + n from counted
       on conflict (webhook_id, daemon_id) do update set in_flight = excluded.in_flight
        where ec.in_flight <> excluded.in_flight
     ), spent as (
       update webhooks.endpoint_states s
          set rate_tokens = case when k.tokens is null then s.rate_tokens else k.tokens - k.n end,
              rate_refilled_at = now(),
              circuit = case when s.circuit = 'closed' then 'closed' else 'probing' end,
              circuit_until = case when s.circuit = 'closed' then s.circuit_until
                                   else now() + make_interval(secs => k.timeout_seconds + ${PROBE_GRACE_SECONDS}) end
         from counted k
        where s.webhook_id = k.webhook_id and k.n > 0
     )
     -- attempts: those made before this one, whose number the claim took. The partition keys go
     -- to claimedDeliveriesStatement, which reads the rows they find.
     select delivery_id, attempts - 1 as attempts,
            ${exactTimestamp("delivery_created_at")} as delivery_key, ${exactTimestamp("event_dispatched_at")} as event_key
       from claimed`,
    values: [claims.webhookIds, claims.ownInFlight, claims.daemonId, claims.limit, claims.organizations.ids, claims.organizations.open],
  };
}

/** A delivery as step 2 claims it: its attempts before this one and its partition keys. */
export interface ClaimedRow {
  delivery_id: string;
  attempts: number;
  delivery_key: PartitionKey;
  event_key: PartitionKey;
}

export function claimedDeliveriesStatement(claimed: readonly ClaimedRow[]): Statement {
  const deliveryKeys = claimed.map((row) => row.delivery_key);
  const eventKeys = claimed.map((row) => row.event_key);
  return {
    name: "pg-webhooks:claimed-deliveries",
    text: `select d.id, k.attempts, d.attempts_before_replay, d.organization_id, d.event_id, e.event_type, e.body, e.occurred_at,
            e.not_sent_reason, d.webhook_id, e.webhook_id is not null as targeted,
            c.url, c.secret,
            case when c.previous_secret_expires_at > now() then c.previous_secret end as previous_secret,
            c.signature_scheme, c.signature_header, c.is_active, c.max_retries, c.retry_base_seconds,
            c.timeout_seconds, c.headers, k.delivery_key, k.event_key
       from unnest($1::uuid[], $2::int[], $3::text[], $4::text[]) as k (delivery_id, attempts, delivery_key, event_key)
       -- Each row by id and partition key, in subqueries: one primary-key probe per row (a join
       -- may be planned as a scan of today's partition). The batch's first and last keys ($5 to
       -- $8) leave only their partitions to open and probe (partition-keys.ts).
       cross join lateral (
         select d.id, d.attempts_before_replay, d.organization_id, d.event_id, d.webhook_id from webhooks.deliveries d
          where d.id = k.delivery_id and d.created_at = k.delivery_key::timestamptz
            and d.created_at between $5::timestamptz and $6::timestamptz
          limit 1
       ) d
       cross join lateral (
         select e.event_type, e.body, e.occurred_at, e.not_sent_reason, e.webhook_id from webhooks.events e
          where e.id = d.event_id and e.dispatched_at = k.event_key::timestamptz
            and e.dispatched_at between $7::timestamptz and $8::timestamptz
          limit 1
       ) e
       join webhooks.webhook_configurations c on c.id = d.webhook_id`,
    values: [claimed.map((row) => row.delivery_id), claimed.map((row) => row.attempts), deliveryKeys, eventKeys,
             ...keyRange(deliveryKeys), ...keyRange(eventKeys)],
  };
}

/** The circuit opens after this many failed attempts in a row. */
export const CIRCUIT_FAILURE_THRESHOLD = 10;
/** It stays open 5 s, doubling with each trip, at most 5 minutes. */
export const CIRCUIT_BASE_SECONDS = 5;
export const CIRCUIT_MAX_SECONDS = 300;

/**
 * The CTEs that move endpoints' circuits after attempts, from CTE `health` (webhook_id, up,
 * downs): a success closes the circuit; failures count, and the 10th in a row, or a failed
 * probe, opens it for 5 s × 2^trips (at most 5 minutes). Rows are locked in id order first so two
 * statements cannot deadlock; a healthy endpoint's row is not written.
 */
export function circuitChanges(health: string): string {
  return `circuit_change as (
       select s.webhook_id, h.up, h.downs,
              not h.up and (s.circuit = 'probing'
                            or (s.circuit = 'closed' and s.consecutive_failures + h.downs >= ${CIRCUIT_FAILURE_THRESHOLD})) as opens
         from webhooks.endpoint_states s
         join ${health} h using (webhook_id)
        where (h.up and (s.consecutive_failures > 0 or s.circuit <> 'closed')) or (not h.up and h.downs > 0)
        order by s.webhook_id
          for update of s
     ), circuit_written as (
       update webhooks.endpoint_states s
          set consecutive_failures = case when ch.up then 0 else s.consecutive_failures + ch.downs end,
              circuit = case when ch.up then 'closed' when ch.opens then 'open' else s.circuit end,
              circuit_until = case
                when ch.up then null
                when ch.opens then now() + make_interval(secs => least(${CIRCUIT_MAX_SECONDS}, ${CIRCUIT_BASE_SECONDS} * 2 ^ s.circuit_trips))
                else s.circuit_until end,
              circuit_trips = case when ch.up then 0 when ch.opens then s.circuit_trips + 1 else s.circuit_trips end
         from circuit_change ch
        where s.webhook_id = ch.webhook_id
     )`;
}
