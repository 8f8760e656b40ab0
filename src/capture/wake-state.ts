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
 * Ends the awake lease and returns the transactions that may have read it: those holding a lock
 * on webhooks.outbox (their `virtualtransaction` in pg_locks), looked up after the release has
 * committed. A capture trigger appends to the outbox before it reads the lease
 * (webhooks._enqueue, sql/000003_capture.sql and sql/000009_poison_isolation.sql), and a
 * transaction keeps the RowExclusiveLock that the append took until it ends. So a writer that
 * read the lease before the release committed, and skipped its NOTIFY, either has finished (a
 * poll now sees its event) or is among these; a writer that reads it later sees it released and
 * NOTIFYs. Unrelated transactions, in this database or any other, are never waited for.
 */
export async function releaseAwakeLease(pool: Pool): Promise<string[]> {
  await pool.query(`update webhooks._dispatcher_wake set awake_until = '-infinity'`);
  const { rows } = await pool.query<{ writers: string[] }>({
    name: "pg-webhooks:outbox-writers",
    text: `select coalesce(array_agg(distinct l.virtualtransaction), '{}') as writers
             from pg_locks l
            where l.locktype = 'relation' and l.relation = 'webhooks.outbox'::regclass and l.granted
              -- Writers: a reader (AccessShareLock: a psql session, pg_dump) wrote nothing to wait for.
              and l.mode = 'RowExclusiveLock'
              and l.database = (select oid from pg_database where datname = current_database())`,
  });
  return rows[0]!.writers;
}

/** Whether any of these transactions still holds its lock on webhooks.outbox (it has not ended). */
export async function writersStillOpen(pool: Pool, writers: string[]): Promise<boolean> {
  const { rows } = await pool.query<{ open: boolean }>({
    name: "pg-webhooks:outbox-writers-open",
    text: `select exists (select 1 from pg_locks l
                           where l.locktype = 'relation' and l.relation = 'webhooks.outbox'::regclass and l.granted
                             and l.mode = 'RowExclusiveLock'
                             and l.virtualtransaction = any ($1::text[])) as open`,
    values: [writers],
  });
  return rows[0]!.open;
}

/** "Some dispatcher is alive and listening until now + ms": writers only NOTIFY while this holds. */
export async function announceListener(pool: Pool, ms: number): Promise<void> {
  await pool.query(
    `update webhooks._dispatcher_wake
        set listening_until = greatest(listening_until, clock_timestamp() + make_interval(secs => $1::float8 / 1000))`,
    [ms],
  );
}
