import { EventEmitter } from "node:events";
import { Logger as WorkerLogger, run, type Runner, type WorkerEvents } from "graphile-worker";
import type { Pool } from "../db/pool.js";
import type { Logger } from "../logger.js";
import { DELIVER_TASK } from "../capture/fan-out.js";
import { createDeliverTask } from "./deliver-task.js";
import { DeliveryStore } from "./delivery-store.js";
import { HttpSender } from "./send.js";

export interface DeliveryWorker {
  /** graphile-worker's pool id: the `locked_by` of every job this daemon holds. */
  workerPoolId: string;
  stop(): Promise<void>;
}

/**
 * Runs the deliver task on graphile-worker with its batching on (local queue, batched
 * completions): without it job bookkeeping, not HTTP, bounds throughput.
 */
export async function startDeliveryWorker(options: {
  pool: Pool;
  concurrency: number;
  logger: Logger;
}): Promise<DeliveryWorker> {
  const { pool, concurrency, logger } = options;
  const sender = new HttpSender();
  const store = new DeliveryStore(pool, DELIVER_TASK);
  const events = new EventEmitter() as WorkerEvents;
  let workerPoolId: string | undefined;
  events.on("pool:create", ({ workerPool }) => {
    workerPoolId = workerPool.id;
  });
  const workerLog = logger.scope("graphile-worker");
  const runner: Runner = await run({
    pgPool: pool,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    events,
    logger: new WorkerLogger((scope) => (level, message, meta) => {
      const fields = { ...scope, ...(meta ?? {}) } as Record<string, unknown>;
      if (level === "error") workerLog.error(message, fields);
      else if (level === "warning") workerLog.warn(message, fields);
      else workerLog.debug(message, fields);
    }),
    taskList: { [DELIVER_TASK]: createDeliverTask({ store, sender, logger: logger.scope("deliver") }) },
    preset: {
      worker: {
        localQueue: { size: Math.max(2, concurrency) },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
  if (!workerPoolId) throw new Error("graphile-worker did not report its pool id");
  return {
    workerPoolId,
    async stop() {
      await runner.stop();
      await sender.close();
    },
  };
}
