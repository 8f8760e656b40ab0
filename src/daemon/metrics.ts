import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { sql, type InferResult } from "kysely";
import type { Dispatcher } from "../capture/dispatcher.js";
import { queryBuilder, toStatement } from "../db/database.js";
import type { Pool } from "../db/pool.js";
import type { AttemptOutcome, AttemptReport } from "../delivery/attempt.js";
import type { Deliverer } from "../delivery/deliverer.js";
import type { RetentionSchedule } from "./retention.js";
import type { StallWatch } from "./stall-watch.js";

/** What the metrics read when scraped: the daemon's parts, once started. */
export interface MetricSources {
  pool: Pool;
  dispatcher(): Dispatcher | undefined;
  deliverer(): Deliverer | undefined;
  watch: StallWatch;
  retention: RetentionSchedule;
}

export interface DaemonMetrics {
  /** Counts one attempt: its outcome, its duration and, for a success, its event's commit → 2xx lag. */
  countAttempt(report: AttemptReport): void;
  /** The Prometheus text of a scrape; scrapes that come at once share one reading. */
  text(): Promise<string>;
}

const OUTCOMES: readonly AttemptOutcome[] = ["success", "failed", "dead", "refused"];

/**
 * The daemon's metrics (README "Retention and monitoring" lists them), with prom-client. Counters
 * and histograms are this daemon's own; the gauges of work still to do (outbox, queue, set-aside,
 * endpoints held back) are read from Postgres at scrape time with index probes and counts bounded
 * by the backlog, never by the history: a scrape costs the same on any size of deliveries or logs.
 * Per-endpoint detail stays in SQL (webhooks.webhook_stats), not in label cardinality.
 */
export function createDaemonMetrics(sources: MetricSources): DaemonMetrics {
  const registry = new Registry();
  const registers = [registry];
  const attempts = new Counter({
    name: "pg_webhooks_attempts_total",
    help: "Attempts this daemon made, by outcome (failed: to be retried; refused: not sent, e.g. a private target or an oversized event).",
    labelNames: ["outcome"] as const,
    registers,
  });
  for (const outcome of OUTCOMES) attempts.inc({ outcome }, 0);
  const duration = new Histogram({
    name: "pg_webhooks_attempt_duration_seconds",
    help: "How long attempts took, from sending the request to its answer or failure.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const lag = new Histogram({
    name: "pg_webhooks_delivery_lag_seconds",
    help: "From the event's write (its transaction's start) to the endpoint's 2xx, for successful attempts.",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    registers,
  });

  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
  const database = {
    outbox: gauge("pg_webhooks_outbox_events", "Captured events waiting for fan-out."),
    outboxOldest: gauge("pg_webhooks_outbox_oldest_seconds", "Age of the oldest captured event waiting for fan-out (0 when none waits)."),
    pending: gauge("pg_webhooks_deliveries_pending", "Deliveries waiting for an attempt or in flight (first attempts and retries)."),
    oldestPending: gauge(
      "pg_webhooks_oldest_pending_seconds",
      "How long the most overdue delivery has been due without being attempted (0 when none is due).",
    ),
    setAside: gauge("pg_webhooks_outbox_set_aside_events", "Captured events the fan-out failed on, waiting in webhooks.outbox_set_aside."),
    circuitOpen: gauge("pg_webhooks_endpoints_circuit_open", "Endpoints whose circuit breaker is open or probing."),
    paused: gauge("pg_webhooks_endpoints_paused", "Endpoints paused by their owner."),
  };
  new Counter({
    name: "pg_webhooks_dispatched_events_total",
    help: "Events fanned out by this daemon.",
    registers,
    collect() {
      this.reset();
      this.inc(sources.dispatcher()?.stats.events ?? 0);
    },
  });
  new Gauge({
    name: "pg_webhooks_attempts_in_flight",
    help: "Attempts this daemon has in flight.",
    registers,
    collect() {
      this.set(sources.deliverer()?.attemptsInFlight ?? 0);
    },
  });
  new Gauge({
    name: "pg_webhooks_stalled_seconds",
    help: "How long each of this daemon's activities has not moved its work (0 while it moves); at WEBHOOKS_STALL_SECONDS it is stalled.",
    labelNames: ["activity"] as const,
    registers,
    collect() {
      for (const { activity, seconds } of sources.watch.stuckSeconds()) this.set({ activity }, seconds);
    },
  });
  new Gauge({
    name: "pg_webhooks_stalled",
    help: "Whether the activity is stalled now (1) or not (0).",
    labelNames: ["activity"] as const,
    registers,
    collect() {
      for (const { activity, stalled } of sources.watch.stuckSeconds()) this.set({ activity }, stalled ? 1 : 0);
    },
  });
  new Gauge({
    name: "pg_webhooks_retention_applied_timestamp_seconds",
    help: "When this daemon last applied WEBHOOKS_RETENTION_DAYS with success (Unix time; 0 before its first run): hourly, so older than two hours means it keeps failing (see its log).",
    registers,
    collect() {
      this.set((sources.retention.appliedAt?.getTime() ?? 0) / 1000);
    },
  });
  new Counter({
    name: "pg_webhooks_lock_timeouts_total",
    help: "Statements of this daemon that gave up waiting for a lock (lock_timeout) and were retried.",
    registers,
    collect() {
      this.reset();
      this.inc(sources.watch.lockTimeouts());
    },
  });

  async function readDatabase(): Promise<void> {
    const glance = databaseGaugesStatement();
    const { rows } = await sources.pool.query<InferResult<typeof glance>[number]>(toStatement(glance));
    const row = rows[0]!;
    database.outbox.set(row.outbox ?? 0);
    database.outboxOldest.set(row.outbox_oldest);
    database.pending.set(row.pending ?? 0);
    database.oldestPending.set(row.oldest_pending);
    database.setAside.set(row.set_aside ?? 0);
    database.circuitOpen.set(row.circuit_open ?? 0);
    database.paused.set(row.paused ?? 0);
  }

  let underway: Promise<string> | undefined;
  return {
    countAttempt({ outcome, durationMs, lagMs }) {
      attempts.inc({ outcome });
      if (outcome !== "refused") duration.observe(durationMs / 1000);
      if (lagMs !== undefined) lag.observe(Math.max(0, lagMs) / 1000);
    },
    text() {
      underway ??= readDatabase()
        .then(() => registry.metrics())
        .finally(() => {
          underway = undefined;
        });
      return underway;
    },
  };
}

/**
 * The one statement a scrape runs: counts and ages of what is still to do (outbox, delivery queue,
 * set-aside events, endpoints held back), never of the history (webhook_logs, events, deliveries).
 */
export function databaseGaugesStatement() {
  const count = sql<number>`count(*)::int`;
  return queryBuilder.selectNoFrom((eb) => [
    eb.selectFrom("webhooks.outbox").select(count.as("n")).$asScalar().as("outbox"),
    // The oldest row's age: one index probe on the outbox's id.
    sql<number>`coalesce(${eb
      .selectFrom("webhooks.outbox")
      .select(sql<number>`extract(epoch from now() - occurred_at)`.as("age"))
      .orderBy("id")
      .limit(1)}, 0)::float8`.as("outbox_oldest"),
    eb.selectFrom("webhooks.delivery_queue").select(count.as("n")).$asScalar().as("pending"),
    sql<number>`coalesce(${eb
      .selectFrom("webhooks.delivery_queue")
      .select(sql<number>`extract(epoch from now() - min(due_at))`.as("age"))
      .where("due_at", "<=", sql<Date>`now()`)
      .where("claimed_by", "is", null)}, 0)::float8`.as("oldest_pending"),
    eb.selectFrom("webhooks.outbox_set_aside").select(count.as("n")).$asScalar().as("set_aside"),
    eb.selectFrom("webhooks.endpoint_states").select(count.as("n")).where("circuit", "<>", "closed").$asScalar().as("circuit_open"),
    eb.selectFrom("webhooks.webhook_configurations").select(count.as("n")).where("paused", "=", true).$asScalar().as("paused"),
  ]);
}
