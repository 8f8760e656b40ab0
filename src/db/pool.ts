import pg from "pg";
import type { Logger } from "../logger.js";

// bigint (int8) columns as JS strings would leak into arithmetic; ids we use fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** A pg Pool that logs (never throws on) idle-client errors, e.g. while Postgres restarts. */
export function createPool(
  connectionString: string,
  options: { max?: number; applicationName?: string; logger?: Logger } = {},
): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? "pg-webhooks",
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  pool.on("error", (error) => options.logger?.warn("idle database connection failed", { error }));
  // A checked-out client whose connection dies emits "error" too; the query in flight rejects.
  pool.on("connect", (client) => client.on("error", (error) => options.logger?.warn("database connection failed", { error })));
  return pool;
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
