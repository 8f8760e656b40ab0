import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Logger as WorkerLogger, runMigrations as runWorkerMigrations } from "graphile-worker";
import { describeError, type Logger } from "../logger.js";
import { packageRoot } from "../package-info.js";
import { isLockTimeout } from "./backend-report.js";
import { releaseMigrationLock, takeMigrationLock, type MigrationLockOptions } from "./migration-lock.js";
import type { Pool } from "./pool.js";

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

/** The numbered, append-only files of sql/ in order: 000001_name.sql → {id: 1, name}. */
export async function readMigrations(directory = path.join(packageRoot, "sql")): Promise<Migration[]> {
  const files = (await readdir(directory)).filter((file) => /^\d{6}_[a-z0-9_]+\.sql$/.test(file)).sort();
  return Promise.all(
    files.map(async (file) => ({
      id: Number(file.slice(0, 6)),
      name: file.slice(7, -4),
      sql: await readFile(path.join(directory, file), "utf8"),
    })),
  );
}

export interface MigrateOptions {
  /** Stop after this migration (tests of upgrades from an older release's schema). */
  upTo?: number;
  /** Told who holds the migration lock while this waits for it (migration-lock.ts). */
  onWaitingForLock?: MigrationLockOptions["onWaiting"];
}

/**
 * Applies graphile-worker's migrations, then every one of ours not yet applied. Idempotent, and
 * safe when several daemons start at once: all of it runs under one advisory lock, whose holder
 * is named while this waits. On an up-to-date database it only reads, so a daemon logged in as
 * webhooks_dispatcher can run it. A migration that gives up waiting for a lock (lock_timeout, on
 * the daemon's connections) is rolled back and tried again.
 */
export async function migrate(pool: Pool, logger: Logger, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const migrations = (await readMigrations()).filter((migration) => migration.id <= (options.upTo ?? Number.POSITIVE_INFINITY));
  const client = await pool.connect();
  const applied: string[] = [];
  // A migration that repairs data on its way (e.g. 000012) says what it did with RAISE WARNING.
  let running: Migration | undefined;
  const reportWarning = (notice: { message?: string }) =>
    logger.warn(notice.message ?? "warning", { migration: running?.name, id: running?.id });
  client.on("notice", reportWarning);
  try {
    await client.query("set client_min_messages = warning");
    await takeMigrationLock(client, logger, { onWaiting: options.onWaitingForLock });
    try {
      // graphile-worker's schema first: our grants (000004) name its tables.
      await retryingLockTimeouts("graphile-worker's migrations", logger, () =>
        runWorkerMigrations({ pgPool: pool, logger: quietWorkerLogger }),
      );
      const { rows: bootstrap } = await client.query<{ exists: boolean }>(
        "select to_regclass('webhooks.migrations') is not null as exists",
      );
      if (!bootstrap[0]!.exists) {
        await client.query("create schema if not exists webhooks");
        await client.query(`create table if not exists webhooks.migrations (
          id int primary key, name text not null, applied_at timestamptz not null default now())`);
      }
      const { rows } = await client.query<{ id: number }>("select id from webhooks.migrations");
      const done = new Set(rows.map((row) => row.id));
      for (const migration of migrations) {
        if (done.has(migration.id)) continue;
        running = migration;
        await retryingLockTimeouts(`migration ${migration.id} (${migration.name})`, logger, async () => {
          await client.query("begin");
          try {
            await client.query(migration.sql);
            await client.query("insert into webhooks.migrations (id, name) values ($1, $2)", [migration.id, migration.name]);
            await client.query("commit");
          } catch (error) {
            await client.query("rollback");
            throw isLockTimeout(error) ? error : new MigrationError(migration, error);
          }
        });
        applied.push(`${String(migration.id).padStart(6, "0")}_${migration.name}`);
        logger.info("applied migration", { migration: migration.name, id: migration.id });
      }
    } finally {
      await releaseMigrationLock(client);
    }
  } finally {
    client.off("notice", reportWarning);
    client.release();
  }
  return { applied };
}

export class MigrationError extends Error {
  override name = "MigrationError";
  constructor(
    readonly migration: Migration,
    override readonly cause: unknown,
  ) {
    super(`migration ${migration.id} (${migration.name}) failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Runs `work` again, after a back-off, for as long as it fails by waiting longer than
 * lock_timeout: the daemon's lock watch names the blocker while it waits (daemon/stall-watch.ts).
 */
async function retryingLockTimeouts<T>(what: string, logger: Logger, work: () => Promise<T>): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await work();
    } catch (error) {
      if (!isLockTimeout(error)) throw error;
      const retryInMs = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
      logger.warn(`${what} waited longer than lock_timeout for a lock; retrying`, { error: describeError(error), retryInMs });
      await delay(retryInMs);
    }
  }
}

const quietWorkerLogger = new WorkerLogger(() => () => undefined);
