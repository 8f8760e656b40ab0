import type { Pool } from "../db/pool.js";
import { Batcher } from "../util/batcher.js";
import type { SignatureScheme } from "./sign.js";

/** Everything one attempt needs: the delivery, its event's exact body, its endpoint. */
export interface DeliveryContext {
  id: string;
  state: "pending" | "succeeded" | "failed" | "dead";
  attempts: number;
  /** Attempts made before the last webhooks.replay: the retry budget counts from here. */
  attemptsBeforeReplay: number;
  organizationId: string;
  eventId: string;
  eventType: string;
  body: string;
  webhookId: string;
  /** Set for webhook.test: sent even to an inactive endpoint. */
  targeted: boolean;
  url: string;
  secrets: string[];
  signatureScheme: SignatureScheme;
  signatureHeader: string;
  isActive: boolean;
  maxRetries: number;
  retryBaseSeconds: number;
  timeoutSeconds: number;
  headers: Record<string, string>;
}

/** One attempt's outcome: a webhook_logs row (when a request was made) and the delivery's new state. */
export interface AttemptRecord {
  deliveryId: string;
  state: "succeeded" | "failed" | "dead";
  attempt: number;
  /** When the next attempt runs (state failed). */
  retryAt: Date | null;
  lastError: string | null;
  log: AttemptLog | null;
  /**
   * What the attempt says about its endpoint (needs `log`): up clears failing_since, down starts
   * it (and disables the endpoint once it is older than the span), gone (410) disables it.
   * Absent when the endpoint is not to blame (the attempt was not sent).
   */
  endpoint?: EndpointHealth | null;
}

export type EndpointHealth = "up" | "down" | "gone";

export interface DeliveryStoreOptions {
  /** An endpoint whose attempts have all failed for this long is disabled (SPEC 5). */
  disableAfterFailingHours?: number;
}

/** WEBHOOKS_DISABLE_AFTER_FAILING_HOURS' default: 5 days. */
export const DEFAULT_DISABLE_AFTER_FAILING_HOURS = 120;

export interface AttemptLog {
  organization_id: string;
  webhook_id: string;
  event_id: string;
  delivery_id: string;
  event_type: string;
  attempt: number;
  url: string;
  request_headers: Record<string, string>;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  error: string | null;
  duration_ms: number;
  success: boolean;
}

interface ContextRow {
  id: string;
  state: DeliveryContext["state"];
  attempts: number;
  attempts_before_replay: number;
  organization_id: string;
  event_id: string;
  event_type: string;
  body: string;
  webhook_id: string;
  targeted: boolean;
  url: string;
  secret: string;
  previous_secret: string | null;
  signature_scheme: SignatureScheme;
  signature_header: string;
  is_active: boolean;
  max_retries: number;
  retry_base_seconds: number;
  timeout_seconds: number;
  headers: Record<string, string>;
}

/**
 * Reads delivery contexts and writes attempt records in batches (see Batcher): at thousands of
 * deliveries a second, one statement per attempt would be the bottleneck. A record's promise
 * resolves only once its log row is committed, so a job completes only after that.
 */
export class DeliveryStore {
  private readonly loader: Batcher<string, DeliveryContext | undefined>;
  private readonly recorder: Batcher<AttemptRecord, void>;
  private readonly disableAfterFailingHours: number;

  constructor(
    private readonly pool: Pool,
    private readonly deliverTask: string,
    options: DeliveryStoreOptions = {},
  ) {
    this.disableAfterFailingHours = options.disableAfterFailingHours ?? DEFAULT_DISABLE_AFTER_FAILING_HOURS;
    // One statement in flight each: what arrives meanwhile rides in the next, larger one. Fewer,
    // larger statements cost less per delivery on both sides (bench: 2 in flight → 1 cut the
    // daemon's CPU per delivery by about a tenth at the same concurrency).
    this.loader = new Batcher((ids) => this.loadMany(ids), { maxBatch: 500, maxInFlight: 1 });
    this.recorder = new Batcher((records) => this.recordMany(records), { maxBatch: 500, maxInFlight: 1 });
  }

  load(deliveryId: string): Promise<DeliveryContext | undefined> {
    return this.loader.add(deliveryId);
  }

  record(record: AttemptRecord): Promise<void> {
    return this.recorder.add(record);
  }

  private async loadMany(ids: string[]): Promise<(DeliveryContext | undefined)[]> {
    const { rows } = await this.pool.query<ContextRow>({
      // Named: parsed and planned once per connection, not once per batch.
      name: "pg-webhooks:load-deliveries",
      text: `select d.id, d.state, d.attempts, d.attempts_before_replay, d.organization_id, d.event_id, e.event_type, e.body, d.webhook_id,
              e.webhook_id is not null as targeted,
              c.url, c.secret,
              case when c.previous_secret_expires_at > now() then c.previous_secret end as previous_secret,
              c.signature_scheme, c.signature_header, c.is_active, c.max_retries, c.retry_base_seconds,
              c.timeout_seconds, c.headers
         from webhooks.deliveries d
         join webhooks.events e on e.id = d.event_id
         join webhooks.webhook_configurations c on c.id = d.webhook_id
        where d.id = any ($1::uuid[])`,
      values: [ids],
    });
    const byId = new Map(rows.map((row) => [row.id, toContext(row)]));
    return ids.map((id) => byId.get(id));
  }

  /**
   * One statement per batch: the attempts' log rows, the deliveries' new states and, only when
   * some attempt failed, their retry jobs (graphile_worker.add_jobs is not called for an empty
   * batch: it costs as much as the rest of the statement). Columns travel as arrays (unnest),
   * which Postgres reads faster than a JSON document.
   *
   * Endpoint health rides along: a configuration row is written only when its health changes
   * (first failure, first success after failures, 410, failing past the span), so a healthy
   * endpoint costs one index probe. Those rows are locked in id order first, so two batches
   * changing the same endpoints cannot deadlock.
   */
  private async recordMany(records: AttemptRecord[]): Promise<void[]> {
    const logs = records.flatMap((r) => (r.log ? [r.log] : []));
    const retries = records.filter((r) => r.retryAt !== null);
    const health = records.flatMap((r) => (r.log && r.endpoint ? [{ webhookId: r.log.webhook_id, url: r.log.url, endpoint: r.endpoint }] : []));
    const column = <K extends keyof AttemptLog>(key: K) => logs.map((log) => log[key]);
    await this.pool.query({
      name: "pg-webhooks:record-attempts",
      text: `with input as (
         select * from unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::int[])
           as r(delivery_id, state, attempt, retry_at, last_error, last_status)
       ), log as (
         -- request_body is the event's stored body: the bytes that were signed and sent, read here
         -- instead of travelling back from the daemon with every attempt. A subquery, not a join: it
         -- is always one primary-key probe per row, whatever the planner believes about the size of
         -- events (a table that grows by thousands of rows a second; a stale estimate once made this a
         -- hash join over all of it, per batch).
         insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt,
                url, request_headers, request_body, response_status, response_headers, response_body, error,
                duration_ms, success)
         -- The two header columns travel as one JSON array each (JSON.stringify once per batch, not an
         -- escaped array literal of JSON texts); ROWS FROM zips every column by position.
         select l.organization_id, l.webhook_id, l.event_id, l.delivery_id, l.event_type, l.attempt, l.url,
                l.request_headers, (select e.body from webhooks.events e where e.id = l.event_id),
                l.response_status, nullif(l.response_headers, 'null'), l.response_body, l.error, l.duration_ms,
                l.success
           from rows from (unnest($7::uuid[]), unnest($8::uuid[]), unnest($9::text[]), unnest($10::uuid[]),
                unnest($11::text[]), unnest($12::int[]), unnest($13::text[]), jsonb_array_elements($14::jsonb),
                unnest($15::int[]), jsonb_array_elements($16::jsonb), unnest($17::text[]), unnest($18::text[]),
                unnest($19::int[]), unnest($20::boolean[]))
             as l(organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers,
                  response_status, response_headers, response_body, error, duration_ms, success)
       ), delivery as (
         update webhooks.deliveries d
            set state = input.state,
                attempts = input.attempt,
                next_attempt_at = input.retry_at,
                last_status = input.last_status,
                last_error = input.last_error,
                updated_at = now(),
                completed_at = case when input.state in ('succeeded', 'dead') then now() end
           from input
          where d.id = input.delivery_id
       ), health as (
         select h.webhook_id, bool_or(h.endpoint = 'up') as up, bool_or(h.endpoint = 'gone') as gone,
                min(h.url) filter (where h.endpoint = 'gone') as gone_url
           from unnest($24::uuid[], $25::text[], $26::text[]) as h(webhook_id, endpoint, url)
          group by h.webhook_id
       ), changing as (
         select c.id, h.up, h.gone, h.gone_url,
                not h.up and coalesce(c.failing_since < now() - $27::float8 * interval '1 hour', false) as failed_too_long
           from webhooks.webhook_configurations c
           join health h on h.webhook_id = c.id
          where (h.up and c.failing_since is not null)
             or (c.is_active and (h.gone or (not h.up and (c.failing_since is null
                                                           or c.failing_since < now() - $27::float8 * interval '1 hour'))))
          order by c.id
            for update of c
       ), endpoint as (
         update webhooks.webhook_configurations c
            set failing_since = case when ch.up then null else coalesce(c.failing_since, now()) end,
                is_active = c.is_active and not ch.gone and not ch.failed_too_long,
                disabled_reason = case
                  when c.is_active and ch.gone then
                    format('HTTP 410 Gone from %s at %s', ch.gone_url, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                  when c.is_active and ch.failed_too_long then
                    format('failing continuously since %s (longer than %s hours) at %s; disabled at %s',
                           to_char(c.failing_since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), $27::float8, c.url,
                           to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                  else c.disabled_reason end
           from changing ch
          where c.id = ch.id
       )
       select case when cardinality($21::uuid[]) > 0 then (
         select count(*) from graphile_worker.add_jobs(array(
           select row($23, json_build_object('deliveryId', id), null, run_at, null, null, null, null)::graphile_worker.job_spec
             from unnest($21::uuid[], $22::timestamptz[]) as retry(id, run_at)))) end`,
      values: [
        records.map((r) => r.deliveryId),
        records.map((r) => r.state),
        records.map((r) => r.attempt),
        records.map((r) => r.retryAt),
        records.map((r) => r.lastError),
        records.map((r) => r.log?.response_status ?? null),
        column("organization_id"),
        column("webhook_id"),
        column("event_id"),
        column("delivery_id"),
        column("event_type"),
        column("attempt"),
        column("url"),
        JSON.stringify(column("request_headers")),
        column("response_status"),
        JSON.stringify(column("response_headers")),
        column("response_body"),
        column("error"),
        column("duration_ms"),
        column("success"),
        retries.map((r) => r.deliveryId),
        retries.map((r) => r.retryAt),
        this.deliverTask,
        health.map((h) => h.webhookId),
        health.map((h) => h.endpoint),
        health.map((h) => h.url),
        this.disableAfterFailingHours,
      ],
    });
    return records.map(() => undefined);
  }
}

function toContext(row: ContextRow): DeliveryContext {
  return {
    id: row.id,
    state: row.state,
    attempts: row.attempts,
    attemptsBeforeReplay: row.attempts_before_replay,
    organizationId: row.organization_id,
    eventId: row.event_id,
    eventType: row.event_type,
    body: row.body,
    webhookId: row.webhook_id,
    targeted: row.targeted,
    url: row.url,
    secrets: row.previous_secret ? [row.secret, row.previous_secret] : [row.secret],
    signatureScheme: row.signature_scheme,
    signatureHeader: row.signature_header,
    isActive: row.is_active,
    maxRetries: row.max_retries,
    retryBaseSeconds: row.retry_base_seconds,
    timeoutSeconds: row.timeout_seconds,
    headers: row.headers,
  };
}
