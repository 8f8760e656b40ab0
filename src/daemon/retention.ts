import { describeError, type Logger } from "../logger.js";
import type { Pool } from "../db/pool.js";

/**
 * Retention (README "Retention and monitoring"): webhooks.prune (sql/000017) creates the coming
 * partitions of the history tables, drops those older than the retention (keeping what queued
 * deliveries need) and deletes expired stragglers, each step in a transaction of its own under
 * one advisory lock, so that daemons and `pg-webhooks prune` running at once never race.
 */

/** WEBHOOKS_RETENTION_DAYS' default. */
export const DEFAULT_RETENTION_DAYS = 30;

/** The daemon prunes at least this often, and once per partition width when that is shorter. */
export const MAX_PRUNE_INTERVAL_MS = 60 * 60 * 1000;

/**
 * Applies the retention at once. Returns what was done, a line per step, as webhooks.prune
 * reports it. Runs on a connection of its own, outside any transaction (the procedure commits
 * after each step).
 */
export async function prune(pool: Pool, retentionDays: number): Promise<string[]> {
  const client = await pool.connect();
  const done: string[] = [];
  const report = (notice: { message?: string }) => {
    if (notice.message) done.push(notice.message);
  };
  client.on("notice", report);
  try {
    await client.query("call webhooks.prune(make_interval(days => $1))", [retentionDays]);
    return done;
  } finally {
    client.off("notice", report);
    client.release();
  }
}

/** How often the daemon prunes: hourly, or each partition width when that is shorter (the bench's minutes). */
export async function pruneIntervalMs(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ ms: number }>(
    "select (extract(epoch from width) * 1000)::float8 as ms from webhooks._partitioning",
  );
  return Math.min(MAX_PRUNE_INTERVAL_MS, rows[0]?.ms ?? MAX_PRUNE_INTERVAL_MS);
}

/**
 * The daemon's schedule: prunes when started (so partitions are ready before any delivery is
 * written), then every pruneIntervalMs. A run that fails (a table held locked by a long
 * transaction, say) is logged and tried at the next one; nothing waits for it.
 */
export class RetentionSchedule {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** When this schedule last applied the retention with success. */
  appliedAt: Date | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly retentionDays: number,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.run();
    const intervalMs = await pruneIntervalMs(this.pool).catch(() => MAX_PRUNE_INTERVAL_MS);
    if (this.stopped) return;
    this.timer = setInterval(() => void this.run(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private run(): Promise<void> {
    // One run at a time in this daemon; other daemons wait on the advisory lock, step by step.
    this.running ??= prune(this.pool, this.retentionDays)
      .then((done) => {
        this.appliedAt = new Date();
        for (const line of done) this.logger.info(line, { retentionDays: this.retentionDays });
      })
      .catch((error: unknown) => {
        this.logger.warn("could not apply the retention; trying again at the next run", { error: describeError(error) });
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }
}
