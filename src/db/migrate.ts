import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Logger as WorkerLogger, runMigrations as runWorkerMigrations } from "graphile-worker";
import { describeError, type Logger } from "../logger.js";
import { packageRoot } from "../package-info.js";
import { isLockTimeout } from "./backend-report.js";
import { releaseMigrationLock, takeMigrationLock, type MigrationLockOptions } from "./migration-lock.js";
import type { Pool, PoolClient } from "./pool.js";

export interface Migration {
  id: number;
  name: string;
  sql: string;
  /** sha256 (hex) of the file with CRLF read as LF, as webhooks.migrations.checksum keeps it. */
  checksum: string;
}

/** The numbered, append-only files of sql/ in order: 000001_name.sql → {id: 1, name}. */
export async function readMigrations(directory = path.join(packageRoot, "sql")): Promise<Migration[]> {
  const files = (await readdir(directory)).filter((file) => /^\d{6}_[a-z0-9_]+\.sql$/.test(file)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(path.join(directory, file), "utf8");
      return {
        id: Number(file.slice(0, 6)),
        name: file.slice(7, -4),
        sql,
        checksum: createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex"),
      };
    }),
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
 * the daemon's connections) is rolled back and tried again. Applied migrations are append-only:
 * a file whose checksum differs from the one this database recorded is refused (ChangedMigrationError)
 * before anything is applied.
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
      const recorded = await recordedChecksums(client);
      const done = new Set(recorded.keys());
      for (const migration of migrations) {
        const checksum = recorded.get(migration.id);
        if (checksum && checksum !== migration.checksum) throw new ChangedMigrationError(migration, checksum);
      }
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
      await recordMissingChecksums(client, migrations);
    } finally {
      await releaseMigrationLock(client);
    }
  } finally {
    client.off("notice", reportWarning);
    client.release();
  }
  return { applied };
}

/** Whether webhooks.migrations keeps checksums yet (sql/000016). */
async function keepsChecksums(client: PoolClient): Promise<boolean> {
  const { rows } = await client.query<{ exists: boolean }>(
    `select exists (select 1 from information_schema.columns
                     where table_schema = 'webhooks' and table_name = 'migrations' and column_name = 'checksum') as exists`,
  );
  return rows[0]!.exists;
}

/** Applied migration id → its recorded checksum (null: applied before checksums were kept). */
async function recordedChecksums(client: PoolClient): Promise<Map<number, string | null>> {
  const column = (await keepsChecksums(client)) ? "checksum" : "null::text as checksum";
  const { rows } = await client.query<{ id: number; checksum: string | null }>(`select id, ${column} from webhooks.migrations`);
  return new Map(rows.map((row) => [row.id, row.checksum]));
}

/** Fills in the checksums of applied migrations that have none: writes only when one is missing. */
async function recordMissingChecksums(client: PoolClient, migrations: Migration[]): Promise<void> {
  if (!(await keepsChecksums(client))) return;
  const recorded = await recordedChecksums(client);
  const missing = migrations.filter((migration) => recorded.has(migration.id) && recorded.get(migration.id) === null);
  if (missing.length === 0) return;
  await client.query(
    `update webhooks.migrations m set checksum = f.checksum
       from unnest($1::int[], $2::text[]) as f(id, checksum)
      where m.id = f.id and m.checksum is null`,
    [missing.map((migration) => migration.id), missing.map((migration) => migration.checksum)],
  );
}

/** A migration file that differs from what this database applied: released migrations are append-only. */
export class ChangedMigrationError extends Error {
  override name = "ChangedMigrationError";
  constructor(
    readonly migration: Migration,
    readonly recordedChecksum: string,
  ) {
    const file = `sql/${String(migration.id).padStart(6, "0")}_${migration.name}.sql`;
    super(
      `${file} is not the file this database applied (checksum ${migration.checksum.slice(0, 12)}…, applied ${recordedChecksum.slice(0, 12)}…): ` +
        `released migrations are append-only. Restore the file as released and put the change in a new migration.`,
    );
  }
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
