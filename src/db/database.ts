import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresDialect,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type ColumnType,
  type Compilable,
  type Generated,
  type Selectable,
} from "kysely";
import type { Pool } from "./pool.js";

/**
 * Kysely types for the tables queried with the builder. The schema itself lives only in sql/;
 * test/db/database-types.test.ts checks these against the migrated database. The hot-path
 * statements (fan-out, claim, record) are raw SQL built by pure functions in their own modules.
 */
export interface Database {
  "webhooks.daemons": DaemonsTable;
  "webhooks.webhook_logs": WebhookLogsTable;
  "webhooks.deliveries": DeliveriesTable;
  "webhooks.outbox": OutboxTable;
  "webhooks.intake_activity": IntakeActivityTable;
  "webhooks.intake_refusals": IntakeRefusalsTable;
  "webhooks.inbound_integrations": InboundIntegrationsTable;
  "webhooks.outbox_set_aside": OutboxSetAsideTable;
  "webhooks.endpoint_states": EndpointStatesTable;
  "webhooks.webhook_configurations": WebhookConfigurationsTable;
  "webhooks.delivery_queue": DeliveryQueueTable;
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface DaemonsTable {
  id: string;
  worker_pool_id: string | null;
  hostname: string;
  pid: number;
  started_at: Timestamp;
  heartbeat_at: Timestamp;
}

/** The one declaration of a webhook_logs row: the daemon writes it (AttemptLog), everyone reads it (WebhookLog). */
export interface WebhookLogsTable {
  id: Generated<number>;
  organization_id: string;
  webhook_id: string;
  event_id: string;
  delivery_id: string;
  event_type: string;
  attempt: number;
  url: string;
  /** As sent, static header values "[redacted]". */
  request_headers: Record<string, string>;
  /** The event's stored body (null: nothing was sent). */
  request_body: string | null;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  error: string | null;
  duration_ms: number | null;
  success: boolean;
  created_at: Timestamp;
}

/** A webhook_logs row as read. */
export type WebhookLog = Selectable<WebhookLogsTable>;

export interface DeliveriesTable {
  id: Generated<string>;
  organization_id: string;
  event_id: string;
  webhook_id: string;
  state: "pending" | "succeeded" | "failed" | "dead";
  attempts: number;
  /** Attempts made before the last webhooks.replay (0: never replayed); retries count from here. */
  attempts_before_replay: number;
  next_attempt_at: Timestamp | null;
  last_status: number | null;
  last_error: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  completed_at: Timestamp | null;
}

export interface OutboxTable {
  id: Generated<number>;
  event_id: Generated<string>;
  organization_id: string;
  event_type: string;
  data: unknown;
  old_data: unknown | null;
  occurred_at: Timestamp;
  webhook_id: string | null;
  /** Bytes of a row too large to carry: `data` then holds only its id. */
  oversized_bytes: number | null;
}

/** An endpoint: one row per webhook (README "Configuration"). */
export interface WebhookConfigurationsTable {
  id: Generated<string>;
  organization_id: string;
  name: string;
  url: string;
  events: string[];
  secret: string | null;
  signature_scheme: "standard" | "hmac-hex" | "hmac-prefixed" | "hmac-timestamped";
  signature_header: string;
  is_active: boolean;
  max_retries: number;
  retry_base_seconds: number;
  filter: unknown | null;
  previous_secret: string | null;
  previous_secret_expires_at: Timestamp | null;
  timeout_seconds: number;
  headers: Record<string, string>;
  disabled_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  failing_since: Timestamp | null;
  max_in_flight: number;
  /** numeric: read as a string. */
  rate_limit_per_second: string | null;
  paused: boolean;
  /** fifo: one delivery at a time per resource, in commit order (sql/000021). */
  ordering: Generated<"none" | "fifo">;
}

/** A delivery waiting for its next attempt, or in flight (claimed), until it succeeds or is dead (sql/000011). */
export interface DeliveryQueueTable {
  delivery_id: string;
  webhook_id: string;
  organization_id: string;
  due_at: Timestamp;
  retry: boolean;
  claimed_by: string | null;
  claimed_at: Timestamp | null;
  /** Attempts so far, counting one in flight: each claim takes the next number (sql/000012). */
  attempts: number;
  /** The delivery's and its event's partition keys (sql/000017): each is found in one partition. */
  delivery_created_at: Timestamp;
  event_dispatched_at: Timestamp;
  /** A fifo endpoint's lane (payload data.id), null otherwise; the order within it (sql/000021). */
  lane: string | null;
  lane_position: Generated<number>;
}

/** An endpoint's circuit breaker and rate bucket (sql/000011). */
export interface EndpointStatesTable {
  webhook_id: string;
  organization_id: string;
  consecutive_failures: number;
  circuit: "closed" | "open" | "probing";
  circuit_until: Timestamp | null;
  circuit_trips: number;
  rate_tokens: number;
  rate_refilled_at: Timestamp;
}

/** A captured event the fan-out failed on, waiting to be released or discarded (sql/000009). */
export interface OutboxSetAsideTable {
  id: number;
  event_id: string;
  organization_id: string;
  event_type: string;
  data: unknown;
  old_data: unknown | null;
  occurred_at: Timestamp;
  webhook_id: string | null;
  oversized_bytes: number | null;
  error: string;
  set_aside_at: Timestamp;
}

/** A signed inbound endpoint of an organization (docs/intake.md). */
export interface InboundIntegrationsTable {
  id: Generated<string>;
  organization_id: string;
  name: string;
  signing_secret: string;
  is_active: boolean;
  lead_stage: string;
  assignee_pool: string[];
  leads_assigned: number;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** One signed inbound request (sql/000007). */
export interface IntakeActivityTable {
  id: Generated<number>;
  request_id: string;
  integration_id: string | null;
  organization_id: string | null;
  event_id: string | null;
  idempotency_key: string | null;
  body_sha256: string | null;
  http_status: number;
  outcome: string;
  error: string | null;
  body: unknown | null;
  contact_id: string | null;
  deal_id: string | null;
  received_at: Timestamp;
  processed_at: Timestamp | null;
}

/** Inbound requests refused before authentication, counted per minute, integration and reason (sql/000013). */
export interface IntakeRefusalsTable {
  minute: Timestamp;
  integration_id: string | null;
  organization_id: string | null;
  reason: string;
  http_status: number;
  count: number;
}

/** A query builder over an existing pool (the pool stays the caller's to end). */
export function createDb(pool: Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * The same typed builder without a connection: it only compiles, for statements that run on a
 * pool the caller already holds (or on a Queryable that counts them, in tests).
 */
export const queryBuilder = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** A compiled builder query as pg's `{text, values}`. */
export function toStatement(query: Compilable): { text: string; values: unknown[] } {
  const compiled = query.compile();
  return { text: compiled.sql, values: [...compiled.parameters] };
}
