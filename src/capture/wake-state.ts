import type { Pool } from "../db/pool.js";

/**
 * The row capture triggers read to decide whether to NOTIFY (sql/000003_capture.sql).
 * These are the only writers of webhooks._dispatcher_wake.
 */

/** "A dispatcher polls the outbox until now + ms": writers skip the NOTIFY meanwhile. */
export async function holdAwakeLease(pool: Pool, ms: number): Promise<void> {
  await pool.query(
    `update webhooks._dispatcher_wake
        set awake_until = greatest(awake_until, clock_timestamp() + make_interval(secs => $1::float8 / 1000))`,
    [ms],
  );
}

/**
 * Ends the awake lease and returns the xmax of a snapshot taken after it ended. Once every
 * transaction below that xmax has finished (see `transactionsFinishedBefore`), every writer that
 * skipped its NOTIFY because of the lease has committed or aborted, so one more poll sees its event.
 */
export async function releaseAwakeLease(pool: Pool): Promise<string> {
  await pool.query(`update webhooks._dispatcher_wake set awake_until = '-infinity'`);
  const { rows } = await pool.query<{ xmax: string }>(`select pg_snapshot_xmax(pg_current_snapshot())::text as xmax`);
  return rows[0]!.xmax;
}

export async function transactionsFinishedBefore(pool: Pool, xmax: string): Promise<boolean> {
  const { rows } = await pool.query<{ done: boolean }>(
    `select pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8 as done`,
    [xmax],
  );
  return rows[0]!.done;
}

/** "Some dispatcher is alive and listening until now + ms": writers only NOTIFY while this holds. */
export async function announceListener(pool: Pool, ms: number): Promise<void> {
  await pool.query(
    `update webhooks._dispatcher_wake
        set listening_until = greatest(listening_until, clock_timestamp() + make_interval(secs => $1::float8 / 1000))`,
    [ms],
  );
}
