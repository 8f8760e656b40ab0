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

/** What one run did, a line per step as webhooks.prune reports it; `busy` lines name a table it left for the next run. */
export interface PruneReport {
  done: string[];
  busy: string[];
}

/**
 * Applies the retention at once (webhooks.prune), on a connection of its own, outside any
 * transaction (the procedure commits after each step). One run at a time over all daemons and
 * CLIs (a session advisory lock of its own, not the steps' one, which replays share): a run that
 * finds another under way reports that and does nothing.
 */
export async function prune(pool: Pool, retentionDays: number): Promise<PruneReport> {
  const client = await pool.connect();
  const report: PruneReport = { done: [], busy: [] };
  const collect = (notice: { message?: string }) => {
    if (notice.message) (notice.message.startsWith("busy:") ? report.busy : report.done).push(notice.message);
  };
  client.on("notice", collect);
  try {
    const { rows } = await client.query<{ ours: boolean }>("select pg_try_advisory_lock(hashtextextended('pg-webhooks:prune-run', 0)) as ours");
    if (!rows[0]!.ours) {
      report.busy.push("busy: another daemon or pg-webhooks prune is applying the retention");
      return report;
    }
    try {
      await client.query("call webhooks.prune(make_interval(days => $1))", [retentionDays]);
    } finally {
      await client.query("select pg_advisory_unlock(hashtextextended('pg-webhooks:prune-run', 0))");
    }
    return report;
  } finally {
    client.off("notice", collect);
    client.release();
  }
}

/** How often the daemon prunes: hourly, or each partition width when the bench set a shorter one. */
export async function pruneIntervalMs(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ ms: number | null }>(
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
      .then(({ done, busy }) => {
        for (const line of done) this.logger.info(line, { retentionDays: this.retentionDays });
        for (const line of busy) this.logger.warn(`${line}; trying again at the next run`, { retentionDays: this.retentionDays });
        if (busy.length === 0) this.appliedAt = new Date();
      })
      .catch((error: unknown) => {
        this.logger.warn("could not apply the retention; trying again at the next run", { error: describeError(error) });
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }
}
