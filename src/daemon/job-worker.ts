import { EventEmitter } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import { Logger as WorkerLogger, run, type Runner, type WorkerEvents } from "graphile-worker";
import type { Pool } from "../db/pool.js";
import { describeError, type Logger } from "../logger.js";
import { PROCESS_LEAD_TASK, createProcessLeadTask } from "../intake/process-lead-task.js";

/** The graphile-worker tasks this daemon runs (deliveries have their own queue: delivery/deliverer.ts). */
export const JOB_TASKS = [PROCESS_LEAD_TASK] as const;

export interface JobWorker {
  /** graphile-worker's current pool id: the `locked_by` of every job this daemon holds. */
  readonly workerPoolId: string;
  stop(): Promise<void>;
}

interface StartedPool {
  runner: Runner;
  workerPoolId: string;
  /** Resolves once the pool starts shutting down or has stopped, whoever asked. */
  gone: Promise<void>;
}

/**
 * Runs the daemon's graphile-worker tasks (webhooks.process_lead, the intake's lead task).
 *
 * graphile-worker shuts its pool down for good when it cannot record a job's outcome (e.g. while
 * Postgres restarts: "Could not completeJobs; queue is in an inconsistent state"), and that
 * shutdown may never finish (0.17.3: once a batch has failed, the completion batcher's pending
 * count drifts below zero, its release never resolves and `runner.promise` never settles). The daemon would keep heartbeating with no worker,
 * its locked jobs owned by a pool that looks alive. So as soon as a pool starts shutting down
 * without being asked to, a new pool replaces it (retrying until Postgres answers) and
 * `onNewPool` re-registers the daemon under the new id: the old pool's locked jobs then belong to
 * no live daemon and the registry unlocks them once stale (DaemonRegistry.reapStale).
 */
export async function startJobWorker(options: {
  pool: Pool;
  concurrency: number;
  logger: Logger;
  onNewPool?: (workerPoolId: string) => Promise<void>;
}): Promise<JobWorker> {
  const { pool, concurrency, logger, onNewPool } = options;
  const processLead = createProcessLeadTask({ pool, logger: logger.scope("intake") });
  const workerLog = logger.scope("graphile-worker");
  absorbLocalQueueReleaseFailures(workerLog);
  let stopping = false;
  let restarting: Promise<void> | undefined;

  const startPool = async (): Promise<StartedPool> => {
    const events = new EventEmitter() as WorkerEvents;
    let workerPoolId: string | undefined;
    let fetchedOnce = false;
    let markGone!: () => void;
    const gone = new Promise<void>((resolve) => (markGone = resolve));
    events.on("pool:create", ({ workerPool }) => {
      workerPoolId = workerPool.id;
    });
    events.once("localQueue:getJobs:complete", () => {
      fetchedOnce = true;
    });
    events.once("pool:gracefulShutdown", () => markGone());
    events.once("pool:forcefulShutdown", () => markGone());
    const runner: Runner = await run({
      pgPool: pool,
      concurrency,
      noHandleSignals: true,
      pollInterval: 1000,
      events,
      logger: new WorkerLogger((scope) => (level, message, meta) => {
        const fields = { ...scope, ...(meta ?? {}) } as Record<string, unknown>;
        if (level === "error") workerLog.error(message, fields);
        else if (level === "warning" && !message.startsWith(POOL_SMALLER_THAN_CONCURRENCY)) workerLog.warn(message, fields);
        else workerLog.debug(message, fields);
      }),
      taskList: { [PROCESS_LEAD_TASK]: processLead },
      preset: {
        worker: {
          // Several jobs per worker per fetch: with a backlog, fetching is what the database
          // spends most on (bench: 64 → ~1,700/s, 256 → ~2,800/s on 2 cores).
          localQueue: { size: Math.max(2, concurrency * 4) },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
        },
      },
    });
    runner.promise.then(markGone, markGone);
    if (!workerPoolId) {
      await runner.stop().catch(() => undefined);
      throw new Error("graphile-worker did not report its pool id");
    }
    // graphile-worker 0.17.3 caches the promise of its first task-id lookup; if Postgres drops
    // that query, the rejection is cached and every later fetch fails with it, forever, without
    // the pool exiting. A pool that has not fetched once within the deadline is replaced.
    const poolId = workerPoolId;
    setTimeout(() => {
      if (fetchedOnce || stopping) return;
      logger.warn("the job worker pool has not fetched jobs since it started; replacing it", { workerPool: poolId });
      void runner.stop().catch(() => undefined);
    }, FIRST_FETCH_DEADLINE_MS).unref();
    return { runner, workerPoolId, gone };
  };

  let current = await startPool();
  let currentGone = false;
  const supervise = (started: StartedPool) => {
    void started.gone.then(() => {
      if (started !== current) return;
      currentGone = true;
      if (stopping) return;
      logger.error("the job worker pool is shutting down on its own; starting a new one", { workerPool: started.workerPoolId });
      const replacement = replace();
      restarting = replacement;
      void replacement.finally(() => {
        if (restarting === replacement) restarting = undefined;
      });
    });
  };
  const replace = async () => {
    for (let attempt = 1; !stopping; attempt++) {
      try {
        const next = await startPool();
        if (stopping) {
          await next.runner.stop().catch(() => undefined);
          return;
        }
        current = next;
        currentGone = false;
        supervise(next);
        logger.warn("started a new job worker pool", { workerPool: next.workerPoolId });
        await onNewPool?.(next.workerPoolId).catch((error: unknown) =>
          logger.warn("could not register the new worker pool yet; the next heartbeat will", { error: describeError(error) }),
        );
        return;
      } catch (error) {
        const retryInMs = Math.min(5000, 100 * 2 ** Math.min(attempt, 6));
        logger.warn("could not start a job worker pool; retrying", { error: describeError(error), retryInMs });
        await delay(retryInMs);
      }
    }
  };
  supervise(current);

  return {
    get workerPoolId() {
      return current.workerPoolId;
    },
    async stop() {
      stopping = true;
      await restarting;
      // A pool that is already shutting down on its own may never finish (see above): not awaited.
      if (!currentGone) {
        await current.runner.stop().catch((error: unknown) =>
          logger.warn("the job worker pool did not stop cleanly", { error: describeError(error) }),
        );
      }
    },
  };
}

/**
 * graphile-worker warns when the pool has fewer connections than there are workers. With the
 * local queue a worker holds no connection while it runs a job (jobs are fetched and completed in
 * batches), so 256 deliveries in flight need a few connections, not 256: logged at debug only.
 */
const POOL_SMALLER_THAN_CONCURRENCY = "WARNING: having maxPoolSize";

/** A healthy pool fetches within milliseconds of starting (pollInterval is 1 s). */
const FIRST_FETCH_DEADLINE_MS = 10_000;

const RETURN_JOBS_FAILED = "Error occurred whilst returning jobs from local queue to database queue";
let releaseGuardInstalled = false;

/**
 * graphile-worker 0.17.3 bug: when a pool shuts down (see above) while its local queue holds jobs
 * and Postgres is unreachable, LocalQueue.setModeReleased calls `background()` after switching to
 * RELEASED, which throws before attaching a handler to the returnJobs promise; that promise then
 * rejects unhandled and Node exits. Nothing is lost by absorbing it: the jobs stay locked by the
 * released pool, which no live daemon owns any more, so the registry unlocks them. Every other
 * unhandled rejection is rethrown and still ends the process.
 */
function absorbLocalQueueReleaseFailures(logger: Logger): void {
  if (releaseGuardInstalled) return;
  releaseGuardInstalled = true;
  process.on("unhandledRejection", (reason) => {
    if (reason instanceof Error && reason.message.startsWith(RETURN_JOBS_FAILED)) {
      logger.warn("a stopped worker pool could not return its queued jobs; they are unlocked once stale", {
        error: describeError(reason),
      });
      return;
    }
    throw reason;
  });
}
