import type http from "node:http";
import type { Config } from "./config.js";
import { createPool, type Pool } from "./db/pool.js";
import { migrate } from "./db/migrate.js";
import type { Logger } from "./logger.js";
import { Dispatcher, defaultDispatcherOptions } from "./capture/dispatcher.js";
import { DELIVERIES_CHANNEL, OUTBOX_CHANNEL, listenForWakeUps, type WakeListener } from "./capture/wake-listener.js";
import { DaemonRegistry } from "./daemon/daemon-registry.js";
import { StallWatch } from "./daemon/stall-watch.js";
import { createAdminRoutes } from "./admin/admin-routes.js";
import { createApiRoutes } from "./api/api-routes.js";
import { createDaemonMetrics } from "./daemon/metrics.js";
import { RetentionSchedule } from "./daemon/retention.js";
import { JOB_TASKS, startJobWorker, type JobWorker } from "./daemon/job-worker.js";
import { Deliverer } from "./delivery/deliverer.js";
import { startHttpServers, type HealthStatus } from "./http/server.js";
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
  // Scrapes at once share one reading (daemon/metrics.ts): /metrics may answer anyone who reaches
  // PORT, and its queries run on the daemon's pool, so a flood of them costs one reading at a time.
  const retention = new RetentionSchedule(pool, config.retentionDays, logger.scope("retention"));
  const metrics = createDaemonMetrics({ pool, dispatcher: () => dispatcher, deliverer: () => deliverer, watch, retention });
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
      metrics: () => metrics.text(),
    },
    logger.scope("http"),
    intake,
    [createApiRoutes(pool), createAdminRoutes(pool, logger.scope("admin"))],
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
    // Partitions ready before anything is written to them; expired history dropped.
    notReady = "applying the retention";
    await retention.start();
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
      onAttempt: (report) => metrics.countAttempt(report),
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
    await retention.stop();
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
      await retention.stop();
      await worker?.stop();
      await registry.stop();
      await watch.stop();
      await servers.close();
      await intake.stop();
      await pool.end();
    },
  };
}
