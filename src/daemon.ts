import type http from "node:http";
import type { Config } from "./config.js";
import { createPool, type Pool } from "./db/pool.js";
import { migrate } from "./db/migrate.js";
import type { Logger } from "./logger.js";
import { Dispatcher, defaultDispatcherOptions } from "./capture/dispatcher.js";
import { DELIVER_TASK } from "./capture/fan-out.js";
import { PROCESS_LEAD_TASK } from "./intake/process-lead-task.js";
import { listenForWakeUps, type WakeListener } from "./capture/wake-listener.js";
import { DaemonRegistry } from "./daemon/daemon-registry.js";
import { startDeliveryWorker, type DeliveryWorker } from "./delivery/delivery-worker.js";
import { startHttpServer } from "./http/server.js";
import { createIntakeRoutes } from "./intake/intake-route.js";

export interface Daemon {
  id: string;
  pool: Pool;
  server: http.Server;
  dispatcher: Dispatcher;
  /** Graceful: stop taking work, finish or release in-flight deliveries, close everything. */
  stop(): Promise<void>;
}

/** Migrates, then runs the dispatcher, the delivery workers and the HTTP server against one database. */
export async function startDaemon(config: Config & { databaseUrl: string }, logger: Logger): Promise<Daemon> {
  let ready = false;
  const pool = createPool(config.databaseUrl, {
    max: config.dbPoolSize,
    applicationName: "pg-webhooks",
    logger: logger.scope("db"),
  });
  const server = await startHttpServer(
    config.port,
    {
      ready: () => ready,
      metrics: async () => metricsText(pool, dispatcher),
    },
    logger.scope("http"),
    createIntakeRoutes(pool, logger.scope("intake")),
  );
  let dispatcher: Dispatcher | undefined;
  let worker: DeliveryWorker | undefined;
  let listener: WakeListener | undefined;
  const registry = new DaemonRegistry(
    pool,
    logger.scope("registry"),
    { heartbeatIntervalMs: config.heartbeatIntervalMs, staleDaemonMs: config.staleDaemonMs },
    [DELIVER_TASK, PROCESS_LEAD_TASK],
  );
  try {
    await migrate(pool, logger.scope("migrate"));
    await registry.register(null);
    worker = await startDeliveryWorker({
      pool,
      concurrency: config.concurrency,
      logger,
      allowPrivateTargets: config.allowPrivateTargets,
      allowHttp: config.allowHttp,
      disableAfterFailingHours: config.disableAfterFailingHours,
      // The old pool's locked jobs then belong to no live daemon and are unlocked like a dead one's.
      onNewPool: (workerPoolId) => registry.register(workerPoolId),
    });
    await registry.register(worker.workerPoolId);
    registry.start();
    dispatcher = new Dispatcher(pool, logger.scope("dispatch"), {
      ...defaultDispatcherOptions,
      sweepIntervalMs: config.sweepIntervalMs,
    });
    const wake = dispatcher.wake.bind(dispatcher);
    listener = await listenForWakeUps(config.databaseUrl, wake, logger.scope("listen"));
    dispatcher.start();
    ready = true;
  } catch (error) {
    await listener?.close().catch(() => undefined);
    await worker?.stop().catch(() => undefined);
    await registry.stop().catch(() => undefined);
    await new Promise((resolve) => server.close(resolve));
    await pool.end().catch(() => undefined);
    throw error;
  }
  const running = dispatcher;
  return {
    id: registry.id,
    pool,
    server,
    dispatcher: running,
    async stop() {
      ready = false;
      await listener?.close().catch(() => undefined);
      await running.stop();
      await worker?.stop();
      await registry.stop();
      await new Promise((resolve) => server.close(resolve));
      server.closeAllConnections();
      await pool.end();
    },
  };
}

async function metricsText(pool: Pool, dispatcher: Dispatcher | undefined): Promise<string> {
  const { rows } = await pool.query<{ state: string; count: number }>(
    `select state, count(*)::int as count from webhooks.deliveries group by state`,
  );
  const { rows: outbox } = await pool.query<{ count: number }>(`select count(*)::int as count from webhooks.outbox`);
  const lines = [
    "# HELP pg_webhooks_outbox_events Captured events waiting for fan-out.",
    "# TYPE pg_webhooks_outbox_events gauge",
    `pg_webhooks_outbox_events ${outbox[0]?.count ?? 0}`,
    "# HELP pg_webhooks_deliveries Deliveries by state.",
    "# TYPE pg_webhooks_deliveries gauge",
    ...rows.map((row) => `pg_webhooks_deliveries{state="${row.state}"} ${row.count}`),
    "# HELP pg_webhooks_dispatched_events_total Events fanned out by this daemon.",
    "# TYPE pg_webhooks_dispatched_events_total counter",
    `pg_webhooks_dispatched_events_total ${dispatcher?.stats.events ?? 0}`,
  ];
  return lines.join("\n") + "\n";
}
