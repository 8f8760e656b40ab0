import type { Statement } from "../capture/fan-out-statement.js";
import type { WebhookLog } from "../db/database.js";
import { circuitChanges } from "./claim-statement.js";
import { keyRange, type PartitionKeys } from "./partition-keys.js";

/** One webhook_logs row as the daemon writes it (request_body is read from the stored event). */
export type AttemptLog = Omit<WebhookLog, "id" | "created_at" | "request_body">;

export type EndpointHealth = "up" | "down" | "gone";

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
   * What the attempt says about its endpoint (needs `log`): up clears failing_since and closes the
   * circuit, down counts toward both, gone (410) disables the endpoint. Absent when the endpoint
   * is not to blame (nothing was sent).
   */
  endpoint?: EndpointHealth | null;
  /** The delivery's, from its claim: the statement finds its rows by them (partition-keys.ts). */
  partitionKeys: PartitionKeys;
}

/**
 * webhook_logs' columns in one list: the column, the array type it travels as, and whether it
 * travels as one JSON array (jsonb columns: JSON.stringify once per batch, not an escaped array
 * literal of JSON texts). ROWS FROM zips the arrays by position.
 */
const LOG_COLUMNS: readonly { column: keyof AttemptLog; type: string; json?: true }[] = [
  { column: "organization_id", type: "uuid" },
  { column: "webhook_id", type: "uuid" },
  { column: "event_id", type: "text" },
  { column: "delivery_id", type: "uuid" },
  { column: "event_type", type: "text" },
  { column: "attempt", type: "int" },
  { column: "url", type: "text" },
  { column: "request_headers", type: "jsonb", json: true },
  { column: "response_status", type: "int" },
  { column: "response_headers", type: "jsonb", json: true },
  { column: "response_body", type: "text" },
  { column: "error", type: "text" },
  { column: "duration_ms", type: "int" },
  { column: "success", type: "boolean" },
];

/** A webhook_logs column the daemon writes: an attempt's own (AttemptLog), or request_body, read from the stored event. */
export type LoggedColumn = keyof AttemptLog | "request_body";

/** The columns every attempt log row is inserted with, in order: LOG_COLUMNS with request_body after request_headers. */
const LOGGED_COLUMNS: readonly LoggedColumn[] = LOG_COLUMNS.flatMap(({ column }): LoggedColumn[] =>
  column === "request_headers" ? [column, "request_body"] : [column],
);

/**
 * The INSERT of attempt log rows, for every statement that writes them (this one, and the release
 * of interrupted attempts in release-claims-statement.ts): `values` gives each column's SQL
 * expression over the rows `from` yields. One column list, whoever logs.
 */
export function insertAttemptLogs(values: Readonly<Record<LoggedColumn, string>>, from: string): string {
  return `insert into webhooks.webhook_logs (${LOGGED_COLUMNS.join(", ")})
       select ${LOGGED_COLUMNS.map((column) => values[column]).join(", ")}
         ${from}`;
}

/**
 * An attempt's request body: its event's stored body, the exact bytes sent, found by id and
 * partition key (`dispatchedAt`: one primary-key probe into one partition, never a join: a
 * stale estimate of events' size once made that a hash join over all of it). `batchRange`, the
 * first and last key of the batch (two timestamptz parameters), leaves the statement only their
 * partitions (partition-keys.ts). An event that was not sent logs no body.
 */
export function storedRequestBody(eventId: string, dispatchedAt: string, batchRange?: readonly [first: string, last: string]): string {
  return `(select case when e.not_sent_reason is null then e.body end from webhooks.events e
            where e.id = ${eventId} and e.dispatched_at = ${dispatchedAt}${batchRange ? ` and e.dispatched_at between ${batchRange[0]} and ${batchRange[1]}` : ""})`;
}

/** The per-attempt input columns (every record, logged or not). */
const INPUT_COLUMNS: readonly [name: string, type: string, get: (r: AttemptRecord) => unknown][] = [
  ["delivery_id", "uuid", (r) => r.deliveryId],
  ["state", "text", (r) => r.state],
  ["attempt", "int", (r) => r.attempt],
  ["retry_at", "timestamptz", (r) => r.retryAt],
  ["last_error", "text", (r) => r.lastError],
  ["last_status", "int", (r) => r.log?.response_status ?? null],
];

/**
 * The attempt-record statement, built here and nowhere else (pure). One statement per batch:
 * the attempts' log rows; each delivery's new state; its queue row deleted (finished) or
 * rescheduled (retry), only while this daemon still holds its claim — a claim a reaper gave
 * away is not overwritten, the attempt is only logged; and the endpoints' health, written only
 * when it changes — the circuit (circuitChanges) and failing_since on the configuration — rows
 * locked in id order so two batches cannot deadlock (a configuration row someone else holds
 * locked is skipped). Nothing shared is written for a success of a healthy endpoint.
 */
export function recordStatement(records: AttemptRecord[], daemonId: string, disableAfterFailingHours: number): Statement {
  const logged = records.filter((r) => r.log);
  const logs = logged.map((r) => r.log!);
  const health = records.flatMap((r) => (r.log && r.endpoint ? [{ webhookId: r.log.webhook_id, url: r.log.url, endpoint: r.endpoint }] : []));
  const values: unknown[] = [];
  const parameter = (value: unknown, type: string) => `$${values.push(value)}::${type}`;

  const input = INPUT_COLUMNS.map(([, type, get]) => `unnest(${parameter(records.map(get), `${type}[]`)})`);
  const logArrays = LOG_COLUMNS.map(({ column, type, json }) => {
    const column_ = logs.map((log) => log[column]);
    return json ? `jsonb_array_elements(${parameter(JSON.stringify(column_), "jsonb")})` : `unnest(${parameter(column_, `${type}[]`)})`;
  });
  // Beside the logged columns, travelling with them: each row's event's partition key.
  logArrays.push(`unnest(${parameter(logged.map((r) => r.partitionKeys.event), "timestamptz[]")})`);
  const logNames: string[] = [...LOG_COLUMNS.map(({ column }) => column), "event_key"];
  const daemon = parameter(daemonId, "text");
  const hours = parameter(disableAfterFailingHours, "float8");
  const healthArrays = [
    parameter(health.map((h) => h.webhookId), "uuid[]"),
    parameter(health.map((h) => h.endpoint), "text[]"),
    parameter(health.map((h) => h.url), "text[]"),
  ];
  const fromArrays = Object.fromEntries(
    LOG_COLUMNS.map(({ column }) => [column, column === "response_headers" ? "nullif(l.response_headers, 'null')" : `l.${column}`]),
  ) as Record<keyof AttemptLog, string>;
  // The batch's first and last keys: the statement reads and writes only their partitions (partition-keys.ts).
  const [deliveryFirst, deliveryLast] = keyRange(records.map((r) => r.partitionKeys.delivery)).map((key) => parameter(key, "timestamptz"));
  const eventRange = keyRange(logged.map((r) => r.partitionKeys.event)).map((key) => parameter(key, "timestamptz")) as [string, string];
  const insertLogs = insertAttemptLogs(
    { ...fromArrays, request_body: storedRequestBody("l.event_id", "l.event_key", eventRange) },
    `from rows from (${logArrays.join(", ")}) as l(${logNames.join(", ")})`,
  );
  const utc = (at: string) => `to_char(${at} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;

  const text = `with input as (
       select * from rows from (${input.join(", ")}) as r(${INPUT_COLUMNS.map(([name]) => name).join(", ")})
     ), log as (
       ${insertLogs}
     ), finished as (
       delete from webhooks.delivery_queue q using input
        where q.delivery_id = input.delivery_id and q.claimed_by = ${daemon} and input.state <> 'failed'
       returning q.delivery_id, q.delivery_created_at, q.webhook_id, q.lane, q.lane_position
     ), promoted as (
       -- A fifo delivery that ended (succeeded or dead) makes the next one of its lane due
       -- (sql/000021_fifo_lanes.sql); one that will be retried stays first, and the rest wait.
       update webhooks.delivery_queue q set due_at = now()
         from finished f
        where f.lane is not null and q.due_at = 'infinity'
          and q.delivery_id = (select n.delivery_id from webhooks.delivery_queue n
                                where n.webhook_id = f.webhook_id and n.lane = f.lane
                                  and (n.lane_position, n.delivery_id) > (f.lane_position, f.delivery_id)
                                order by n.lane_position, n.delivery_id limit 1)
     ), rescheduled as (
       update webhooks.delivery_queue q
          set due_at = input.retry_at, retry = true, claimed_by = null, claimed_at = null
         from input
        where q.delivery_id = input.delivery_id and q.claimed_by = ${daemon} and input.state = 'failed'
       returning q.delivery_id, q.delivery_created_at
     ), released as (
       select delivery_id, delivery_created_at from finished union all select * from rescheduled
     ), delivery as (
       update webhooks.deliveries d
          set state = input.state,
              attempts = input.attempt,
              next_attempt_at = input.retry_at,
              last_status = input.last_status,
              last_error = input.last_error,
              updated_at = now(),
              completed_at = case when input.state in ('succeeded', 'dead') then now() end
         from input join released using (delivery_id)
        -- By id and partition key; the batch's first and last keys leave only their partitions.
        where d.id = released.delivery_id and d.created_at = released.delivery_created_at
          and d.created_at between ${deliveryFirst} and ${deliveryLast}
     ), health as (
       select h.webhook_id, bool_or(h.endpoint = 'up') as up, bool_or(h.endpoint = 'gone') as gone,
              count(*) filter (where h.endpoint = 'down')::int as downs,
              min(h.url) filter (where h.endpoint = 'gone') as gone_url
         from unnest(${healthArrays.join(", ")}) as h(webhook_id, endpoint, url)
        group by h.webhook_id
     ), changing as (
       select c.id, h.up, h.gone, h.gone_url,
              not h.up and coalesce(c.failing_since < now() - ${hours} * interval '1 hour', false) as failed_too_long
         from webhooks.webhook_configurations c
         join health h on h.webhook_id = c.id
        where (h.up and c.failing_since is not null)
           or (c.is_active and (h.gone or (not h.up and (c.failing_since is null
                                                         or c.failing_since < now() - ${hours} * interval '1 hour'))))
        order by c.id
        -- An application may hold its own configuration's row locked (its UPDATE grant allows
        -- SELECT … FOR UPDATE): that endpoint's health waits for a later attempt, instead of
        -- every attempt of the batch, of every organization, waiting for the application.
          for update of c skip locked
     ), endpoint as (
       update webhooks.webhook_configurations c
          set failing_since = case when ch.up then null else coalesce(c.failing_since, now()) end,
              is_active = c.is_active and not ch.gone and not ch.failed_too_long,
              disabled_reason = case
                when c.is_active and ch.gone then format('HTTP 410 Gone from %s at %s', ch.gone_url, ${utc("now()")})
                when c.is_active and ch.failed_too_long then
                  format('failing continuously since %s (longer than %s hours) at %s; disabled at %s',
                         ${utc("c.failing_since")}, ${hours}, c.url, ${utc("now()")})
                else c.disabled_reason end
         from changing ch
        where c.id = ch.id
     ), ${circuitChanges("health")}
     select 1`;
  return { name: "pg-webhooks:record-attempts", text, values };
}
