import os from "node:os";
import { randomBytes } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { createDb, type Database } from "../db/database.js";
import type { Pool } from "../db/pool.js";
import type { Logger } from "../logger.js";
import { Activity } from "./activity.js";
import { announceListener } from "../capture/wake-state.js";
import { advanceStuckLanes } from "../delivery/lane-repair.js";
import { releaseClaimsStatement } from "../delivery/release-claims-statement.js";

export interface RegistryOptions {
  heartbeatIntervalMs: number;
  /** A daemon silent for this long is taken for dead and its jobs are unlocked. */
  staleDaemonMs: number;
}

/**
 * Liveness of the daemons sharing a database. Each daemon refreshes its row every heartbeat and
 * reaps rows that went stale: a crashed (kill -9) daemon's claimed deliveries go back to the
 * queue, each with a webhook_logs row for the attempt it interrupted, and its graphile-worker jobs (which graphile-worker would leave locked for 4 hours) are
 * unlocked with graphile_worker.force_unlock_workers.
 */
export class DaemonRegistry {
  readonly id = `daemon-${os.hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private workerPoolId: string | null = null;
  private readonly db: Kysely<Database>;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly options: RegistryOptions,
    /** The graphile-worker tasks this daemon runs: only their jobs are unlocked for dead daemons. */
    private readonly taskIdentifiers: readonly string[],
    /** Heartbeats, watched for stalls. */
    private readonly activity: Activity = new Activity("heartbeat", "its heartbeat"),
  ) {
    this.db = createDb(pool);
  }

  async register(workerPoolId: string | null): Promise<void> {
    this.workerPoolId = workerPoolId;
    await this.db
      .insertInto("webhooks.daemons")
      .values({ id: this.id, worker_pool_id: workerPoolId, hostname: os.hostname(), pid: process.pid })
      .onConflict((conflict) =>
        conflict.column("id").doUpdateSet({ worker_pool_id: workerPoolId, heartbeat_at: sql<Date>`now()` }),
      )
      .execute();
    await announceListener(this.pool, this.options.staleDaemonMs);
  }

  start(): void {
    const tick = async () => {
      try {
        await this.activity.step(async () => {
          await this.beat();
          await this.reapStale();
          const advanced = await advanceStuckLanes(this.pool);
          if (advanced > 0) this.logger.info("made the first waiting delivery of fifo lanes due", { lanes: advanced });
        });
      } catch (error) {
        this.logger.warn(...this.activity.retryLine(error, this.options.heartbeatIntervalMs));
      }
      if (this.timer) this.timer = setTimeout(() => void (this.ticking = tick()), this.options.heartbeatIntervalMs);
    };
    this.timer = setTimeout(() => void (this.ticking = tick()), this.options.heartbeatIntervalMs);
  }

  async beat(): Promise<void> {
    // A row reaped while this daemon was unreachable (e.g. a long Postgres outage) is re-created;
    // the pool id is rewritten too, in case registering a replacement
    // delivery worker pool failed (see startDeliveryWorker).
    const { numUpdatedRows } = await this.db
      .updateTable("webhooks.daemons")
      .set({ heartbeat_at: sql<Date>`now()`, worker_pool_id: this.workerPoolId })
      .where("id", "=", this.id)
      .executeTakeFirst();
    if (numUpdatedRows === 0n) {
      this.logger.warn("this daemon's registration was reaped; re-registering");
      await this.register(this.workerPoolId);
    }
    await announceListener(this.pool, this.options.staleDaemonMs);
  }

  /**
   * Forgets daemons whose heartbeat is older than staleDaemonMs and unlocks every job of our tasks
   * locked longer than that by a worker pool no live daemon owns (a crashed daemon's, including
   * one that died before it could register its pool id).
   */
  async reapStale(): Promise<string[]> {
    const rows = await this.db
      .deleteFrom("webhooks.daemons")
      .where("heartbeat_at", "<", sql<Date>`now() - make_interval(secs => ${this.options.staleDaemonMs / 1000})`)
      .where("id", "<>", this.id)
      .returning("id")
      .execute();
    for (const row of rows) this.logger.warn("a daemon stopped sending heartbeats; treating it as dead", { daemon: row.id });
    // Deliveries claimed by a daemon that is gone go back to their queue, each attempt it was
    // making logged as interrupted (release-claims-statement.ts). A daemon publishes rows in
    // endpoint_claims with every claim, and they go with its claims: only when some belong to no
    // registered daemon is the queue searched (not on every heartbeat of every daemon).
    const { rows: orphaned } = await this.pool.query<{ found: boolean }>(
      "select exists (select 1 from webhooks.endpoint_claims where daemon_id not in (select id from webhooks.daemons)) as found",
    );
    const { rows: released } = orphaned[0]!.found
      ? await this.pool.query<{ claimed_by: string }>(releaseClaimsStatement("unregistered"))
      : { rows: [] };
    if (released.length > 0) {
      this.logger.warn("gave back the claimed deliveries of dead daemons: each logged as an interrupted attempt, to be attempted again", {
        daemons: [...new Set(released.map((row) => row.claimed_by))],
        deliveries: released.length,
      });
    }
    // graphile-worker's private tables are not in our Database types: raw SQL.
    const { rows: orphans } = await this.pool.query<{ locked_by: string }>(
      `select distinct job.locked_by
         from graphile_worker._private_jobs job
         join graphile_worker._private_tasks task on task.id = job.task_id
        where task.identifier = any ($1::text[])
          and job.locked_by is not null
          and job.locked_at < now() - make_interval(secs => $2::float8 / 1000)
          and job.locked_by not in (select worker_pool_id from webhooks.daemons where worker_pool_id is not null)`,
      [this.taskIdentifiers, this.options.staleDaemonMs],
    );
    const workerIds = orphans.map((row) => row.locked_by);
    if (workerIds.length > 0) {
      await this.pool.query(`select graphile_worker.force_unlock_workers($1::text[])`, [workerIds]);
      this.logger.warn("unlocked the jobs of dead workers", { workers: workerIds });
    }
    return workerIds;
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A heartbeat under way finishes first: the pool is closed after this returns.
    await this.ticking;
    await this.db.deleteFrom("webhooks.daemons").where("id", "=", this.id).execute().catch(() => undefined);
  }
}
