import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { ChangedMigrationError, migrate, readMigrations } from "../../src/db/migrate.js";
import { databaseUrl } from "../support/database.js";

// Each test migrates an empty database of its own (not the migrated template), so they hold in
// any order.

const logger = createLogger("silent");
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** An empty database and `pools` pools on it, dropped at the end of the file. */
async function emptyDatabase(pools = 1): Promise<Pool[]> {
  const name = `pgw_m_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const created = Array.from({ length: pools }, () => createPool(databaseUrl(name), { max: 2 }));
  cleanups.push(async () => {
    await Promise.all(created.map((pool) => pool.end()));
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  });
  return created;
}

test("three daemons migrating one empty database at once all succeed and apply each migration once", async () => {
  const pools = await emptyDatabase(3);
  const results = await Promise.all(pools.map((pool) => migrate(pool, logger)));
  const files = await readMigrations();
  const applied = results.flatMap((result) => result.applied);
  assert.equal(applied.length, files.length, "every migration applied by exactly one of them");
  assert.equal(new Set(applied).size, files.length);

  const { rows } = await pools[0]!.query<{ id: number }>("select id from webhooks.migrations order by id");
  assert.deepEqual(rows.map((row) => row.id), files.map((file) => file.id));
  const { rows: worker } = await pools[0]!.query("select count(*)::int as n from graphile_worker.migrations");
  assert.ok(worker[0].n > 0, "graphile-worker's own migrations ran too");
});

test("migrating an up-to-date database again changes nothing", async () => {
  const [pool] = await emptyDatabase();
  await migrate(pool!, logger);
  const again = await migrate(pool!, logger);
  assert.deepEqual(again.applied, []);
  const { rows } = await pool!.query("select count(*)::int as n from webhooks.event_types where source = 'catalog'");
  assert.equal(rows[0].n, 18, "seed rows were not inserted twice");
});

test("migration files are numbered 1, 2, 3, … in order", async () => {
  const files = await readMigrations();
  assert.deepEqual(files.map((file) => file.id), files.map((_, index) => index + 1));
});

test("each applied migration's checksum is kept, also for those applied before checksums were kept", async () => {
  const [pool] = await emptyDatabase();
  const files = await readMigrations();
  await migrate(pool!, logger, { upTo: 15 });
  await migrate(pool!, logger);
  const { rows } = await pool!.query<{ id: number; checksum: string }>("select id, checksum from webhooks.migrations order by id");
  assert.deepEqual(rows, files.map((file) => ({ id: file.id, checksum: file.checksum })));
});

test("a released migration whose file changed after it was applied is refused, naming the file", async () => {
  const [pool] = await emptyDatabase();
  await migrate(pool!, logger);
  // As if sql/000003 had been edited after this database applied it.
  await pool!.query("update webhooks.migrations set checksum = repeat('0', 64) where id = 3");
  await assert.rejects(migrate(pool!, logger), (error: Error) => {
    assert.ok(error instanceof ChangedMigrationError);
    assert.match(error.message, /sql\/000003_capture\.sql is not the file this database applied/);
    assert.match(error.message, /append-only/);
    return true;
  });
  const { rows } = await pool!.query<{ checksum: string }>("select checksum from webhooks.migrations where id = 3");
  assert.equal(rows[0]!.checksum, "0".repeat(64), "the recorded checksum is left as it was, for a person to look at");
});
