import pg from "pg";
import type { Logger } from "../logger.js";

// bigint (int8) columns as JS strings would leak into arithmetic; ids we use fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  max?: number;
  applicationName?: string;
  logger?: Logger;
  /**
   * lock_timeout of every connection, sent with the connection's start-up parameters (no
   * statement of its own): a statement waits at most this long for a lock, then fails with
   * lock_not_available (55P03). Unset: the server's setting.
   */
  lockTimeoutMs?: number;
  /** statement_timeout of every connection, likewise. */
  statementTimeoutMs?: number;
}

/** The backend process ids of each pool's open connections (see `backendPids`). */
const backends = new WeakMap<pg.Pool, Set<number>>();

/** A pg Pool that logs (never throws on) idle-client errors, e.g. while Postgres restarts. */
export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? "pg-webhooks",
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    ...(options.lockTimeoutMs !== undefined ? { lock_timeout: options.lockTimeoutMs } : {}),
    ...(options.statementTimeoutMs !== undefined ? { statement_timeout: options.statementTimeoutMs } : {}),
  });
  const pids = new Set<number>();
  backends.set(pool, pids);
  const pidOf = (client: pg.PoolClient) => (client as unknown as { processID: number | null }).processID;
  pool.on("error", (error) => options.logger?.warn("idle database connection failed", { error }));
  pool.on("connect", (client) => {
    const pid = pidOf(client);
    if (pid !== null) pids.add(pid);
    // A checked-out client whose connection dies emits "error" too; the query in flight rejects.
    client.on("error", (error) => options.logger?.warn("database connection failed", { error }));
  });
  pool.on("remove", (client) => {
    const pid = pidOf(client);
    if (pid !== null) pids.delete(pid);
  });
  return pool;
}

/** The server process ids of the pool's open connections: what pg_stat_activity and pg_locks call `pid`. */
export function backendPids(pool: pg.Pool): number[] {
  return [...(backends.get(pool) ?? [])];
}

/** Runs `work` in a transaction on one pooled client; rolls back on error. */
export async function withTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    const result = await work(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
