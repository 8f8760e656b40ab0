import type http from "node:http";
import type { Config } from "./config.js";
import { createPool, type Pool } from "./db/pool.js";
import { migrate } from "./db/migrate.js";
import type { Logger } from "./logger.js";
import { Dispatcher, defaultDispatcherOptions } from "./capture/dispatcher.js";
import { DELIVERIES_CHANNEL, OUTBOX_CHANNEL, listenForWakeUps, type WakeListener } from "./capture/wake-listener.js";
import { DaemonRegistry } from "./daemon/daemon-registry.js";
import { StallWatch } from "./daemon/stall-watch.js";
import { JOB_TASKS, startJobWorker, type JobWorker } from "./daemon/job-worker.js";
import { Deliverer } from "./delivery/deliverer.js";
import { startHttpServers, type HealthStatus } from "./http/server.js";
import { queryBuilder, toStatement } from "./db/database.js";
import { sql, type InferResult } from "kysely";
import { createIntakeRoutes } from "./intake/intake-route.js";

export interface Daemon {
  id: string;
  pool: Pool;
  /** The public listener (PORT). */
  server: http.Server;
  /** The /metrics listener, when WEBHOOKS_METRICS_PORT gives it one. */
  metricsServer: http.Server | undefined;
  dispatcher: Dispatcher;
  deliverer: Deliverer;
  /** Graceful: stop taking work, finish or release in-flight deliveries, close everything. */
  stop(): Promise<void>;
}

/** Lead jobs are a few statements each: a handful at once is plenty. */
const JOB_CONCURRENCY = 8;

/** Migrates, then runs the dispatcher, the delivery workers and the HTTP server against one database. */
export async function startDaemon(config: Config & { databaseUrl: string }, logger: Logger): Promise<Daemon> {
  let ready = false;
  /** Why /healthz is not ok yet (or any more). */
  let notReady = "migrating the database";
  // Every connection waits at most lock_timeout for a lock: nothing another session holds can
  // hang the daemon silently; the watch names the holder, the step is retried.
  const pool = createPool(config.databaseUrl, {
    max: config.dbPoolSize,
    applicationName: "pg-webhooks",
    logger: logger.scope("db"),
    lockTimeoutMs: config.lockTimeoutMs,
  });
  const watch = new StallWatch({
    pool,
    connectionString: config.databaseUrl,
    lockTimeoutMs: config.lockTimeoutMs,
    stallMs: config.stallSeconds * 1000,
    logger: logger.scope("watch"),
  });
  const health = (): HealthStatus => {
    if (!ready) return { status: notReady === "stopping" ? "stopping" : "starting", reason: notReady };
    const stalls = watch.stalls();
    if (stalls.length === 0) return { status: "ok" };
    // What has stalled and on whom it waits; the statements themselves and errors go to the log only
    // (/healthz may answer anyone who reaches PORT).
    return {
      status: "stalled",
      reason: stalls.map((stall) => stall.reason).join("; "),
      stalls: stalls.map(({ activity, seconds }) => ({ activity, seconds })),
    };
  };
  // Scrapes at once share one reading: /metrics may answer anyone who reaches PORT, and its queries
  // run on the daemon's pool, so a flood of them costs one reading at a time.
  const scrapes = sharedReading(() => metricsText(pool, dispatcher, deliverer, watch));
  const intake = createIntakeRoutes(pool, logger.scope("intake"), {
    bodyTimeoutMs: config.httpReadTimeoutMs,
    bodyMemoryBytes: config.intakeBodyMemoryBytes,
  });
  const servers = await startHttpServers(
    {
      port: config.port,
      host: config.httpHost,
      maxConnections: config.httpMaxConnections,
      readTimeoutMs: config.httpReadTimeoutMs,
      metricsListener: config.metricsListener,
      demoEcho: config.demoEcho,
    },
    {
      status: health,
      metrics: () => scrapes.text(),
    },
    logger.scope("http"),
    intake,
  ).catch(async (error: unknown) => {
    await intake.stop().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw error;
  });
  let dispatcher: Dispatcher | undefined;
  let worker: JobWorker | undefined;
  let deliverer: Deliverer | undefined;
  let listener: WakeListener | undefined;
  const registry = new DaemonRegistry(
    pool,
    logger.scope("registry"),
    { heartbeatIntervalMs: config.heartbeatIntervalMs, staleDaemonMs: config.staleDaemonMs },
    JOB_TASKS,
    watch.activity("heartbeat", "its heartbeat"),
  );
  watch.start();
  try {
    // Watched too, so that a migration waiting for a lock names its holder; a stall while
    // starting shows as "starting" on /healthz, with the migration lock's holder when it waits for that.
    await watch.activity("migrate", "its migrations", { reportsStalls: false }).step(() =>
      migrate(pool, logger.scope("migrate"), { onWaitingForLock: (reason) => (notReady = reason) }),
    );
    notReady = "starting the dispatcher and the delivery workers";
    await registry.register(null);
    worker = await startJobWorker({
      pool,
      concurrency: JOB_CONCURRENCY,
      logger,
      // The old pool's locked jobs then belong to no live daemon and are unlocked like a dead one's.
      onNewPool: (workerPoolId) => registry.register(workerPoolId),
    });
    await registry.register(worker.workerPoolId);
    registry.start();
    const delivering = new Deliverer({
      pool,
      daemonId: registry.id,
      capacity: config.concurrency,
      logger: logger.scope("deliver"),
      allowPrivateTargets: config.allowPrivateTargets,
      allowHttp: config.allowHttp,
      disableAfterFailingHours: config.disableAfterFailingHours,
      activities: { claim: watch.activity("claim", "the delivery queue"), record: watch.activity("record", "attempts into webhook_logs") },
    });
    deliverer = delivering;
    dispatcher = new Dispatcher(
      pool,
      logger.scope("dispatch"),
      { ...defaultDispatcherOptions, sweepIntervalMs: config.sweepIntervalMs },
      () => delivering.wake(),
      watch.activity("dispatch", "the outbox"),
    );
    const dispatching = dispatcher;
    listener = await listenForWakeUps(
      config.databaseUrl,
      { [OUTBOX_CHANNEL]: () => dispatching.wake(), [DELIVERIES_CHANNEL]: () => delivering.wake() },
      logger.scope("listen"),
    );
    delivering.start();
    dispatcher.start();
    ready = true;
  } catch (error) {
    await listener?.close().catch(() => undefined);
    await deliverer?.stop().catch(() => undefined);
    await worker?.stop().catch(() => undefined);
    await registry.stop().catch(() => undefined);
    await watch.stop();
    await servers.close();
    await intake.stop().catch(() => undefined);
    await pool.end().catch(() => undefined);
    throw error;
  }
  const running = dispatcher;
  const delivering = deliverer!;
  return {
    id: registry.id,
    pool,
    server: servers.server,
    metricsServer: servers.metricsServer,
    dispatcher: running,
    deliverer: delivering,
    async stop() {
      ready = false;
      notReady = "stopping";
      await listener?.close().catch(() => undefined);
      await running.stop();
      await delivering.stop();
      await worker?.stop();
      await registry.stop();
      await watch.stop();
      await servers.close();
      await intake.stop();
      await pool.end();
    },
  };
}

/** `read()` once at a time: callers that come while a reading is under way share its result. */
function sharedReading(read: () => Promise<string>): { text(): Promise<string> } {
  let underway: Promise<string> | undefined;
  return {
    text() {
      underway ??= read().finally(() => {
        underway = undefined;
      });
      return underway;
    },
  };
}

async function metricsText(pool: Pool, dispatcher: Dispatcher | undefined, deliverer: Deliverer | undefined, watch: StallWatch): Promise<string> {
  const count = sql<number>`count(*)::int`;
  // What is still to do, never the history: a scrape costs the same on any size of deliveries or logs.
  const pendingCount = queryBuilder.selectFrom("webhooks.delivery_queue").select(count.as("count"));
  const { rows: pending } = await pool.query<InferResult<typeof pendingCount>[number]>(toStatement(pendingCount));
  const outboxSize = queryBuilder.selectFrom("webhooks.outbox").select(count.as("count"));
  const { rows: outbox } = await pool.query<InferResult<typeof outboxSize>[number]>(toStatement(outboxSize));
  // Isolation at a glance: a stuck outbox (its oldest row's age: one index probe), events set
  // aside, endpoints held back by their circuit or paused.
  const glance = queryBuilder.selectNoFrom((eb) => [
    sql<number>`coalesce(${eb
      .selectFrom("webhooks.outbox")
      .select(sql<number>`extract(epoch from now() - occurred_at)`.as("age"))
      .orderBy("id")
      .limit(1)}, 0)::float8`.as("oldest"),
    eb.selectFrom("webhooks.outbox_set_aside").select(count.as("n")).$asScalar().as("set_aside"),
    eb.selectFrom("webhooks.endpoint_states").select(count.as("n")).where("circuit", "<>", "closed").$asScalar().as("circuit_open"),
    eb.selectFrom("webhooks.webhook_configurations").select(count.as("n")).where("paused", "=", true).$asScalar().as("paused"),
  ]);
  const { rows: [isolation] } = await pool.query<InferResult<typeof glance>[number]>(toStatement(glance));
  const lines = [
    "# HELP pg_webhooks_outbox_events Captured events waiting for fan-out.",
    "# TYPE pg_webhooks_outbox_events gauge",
    `pg_webhooks_outbox_events ${outbox[0]?.count ?? 0}`,
    "# HELP pg_webhooks_deliveries_pending Deliveries waiting for an attempt or in flight (first attempts and retries).",
    "# TYPE pg_webhooks_deliveries_pending gauge",
    `pg_webhooks_deliveries_pending ${pending[0]?.count ?? 0}`,
    "# HELP pg_webhooks_attempts_total Attempts this daemon made, by outcome (refused: not sent, e.g. a private target or an oversized event).",
    "# TYPE pg_webhooks_attempts_total counter",
    ...(["success", "failed", "dead", "refused"] as const).map((outcome) => `pg_webhooks_attempts_total{outcome="${outcome}"} ${deliverer?.outcomes.get(outcome) ?? 0}`),
    "# HELP pg_webhooks_dispatched_events_total Events fanned out by this daemon.",
    "# TYPE pg_webhooks_dispatched_events_total counter",
    `pg_webhooks_dispatched_events_total ${dispatcher?.stats.events ?? 0}`,
    "# HELP pg_webhooks_outbox_oldest_seconds Age of the oldest captured event waiting for fan-out (0 when none waits).",
    "# TYPE pg_webhooks_outbox_oldest_seconds gauge",
    `pg_webhooks_outbox_oldest_seconds ${isolation?.oldest ?? 0}`,
    "# HELP pg_webhooks_outbox_set_aside_events Captured events the fan-out failed on, waiting in webhooks.outbox_set_aside.",
    "# TYPE pg_webhooks_outbox_set_aside_events gauge",
    `pg_webhooks_outbox_set_aside_events ${isolation?.set_aside ?? 0}`,
    "# HELP pg_webhooks_endpoints_circuit_open Endpoints whose circuit breaker is open or probing.",
    "# TYPE pg_webhooks_endpoints_circuit_open gauge",
    `pg_webhooks_endpoints_circuit_open ${isolation?.circuit_open ?? 0}`,
    "# HELP pg_webhooks_endpoints_paused Endpoints paused by their owner.",
    "# TYPE pg_webhooks_endpoints_paused gauge",
    `pg_webhooks_endpoints_paused ${isolation?.paused ?? 0}`,
    "# HELP pg_webhooks_attempts_in_flight Attempts this daemon has in flight.",
    "# TYPE pg_webhooks_attempts_in_flight gauge",
    `pg_webhooks_attempts_in_flight ${deliverer?.attemptsInFlight ?? 0}`,
    "# HELP pg_webhooks_stalled_seconds How long each of this daemon's activities has not moved its work (0 while it moves); at WEBHOOKS_STALL_SECONDS it is stalled.",
    "# TYPE pg_webhooks_stalled_seconds gauge",
    ...watch.stuckSeconds().map(({ activity, seconds }) => `pg_webhooks_stalled_seconds{activity="${activity}"} ${seconds}`),
    "# HELP pg_webhooks_stalled Whether the activity is stalled now (1) or not (0).",
    "# TYPE pg_webhooks_stalled gauge",
    ...watch.stuckSeconds().map(({ activity, stalled }) => `pg_webhooks_stalled{activity="${activity}"} ${stalled ? 1 : 0}`),
    "# HELP pg_webhooks_lock_timeouts_total Statements of this daemon that gave up waiting for a lock (lock_timeout) and were retried.",
    "# TYPE pg_webhooks_lock_timeouts_total counter",
    `pg_webhooks_lock_timeouts_total ${watch.lockTimeouts()}`,
  ];
  return lines.join("\n") + "\n";
}
