import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate, readMigrations } from "../../src/db/migrate.js";
import { databaseUrl } from "../support/database.js";

const name = `pgw_m_${randomBytes(6).toString("hex")}`;
const logger = createLogger("silent");
let admin: pg.Client;
let pools: Pool[] = [];

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  // An empty database, not the migrated template: this file tests migrating from nothing.
  await admin.query(`create database ${name}`);
  pools = [0, 1, 2].map(() => createPool(databaseUrl(name), { max: 2 }));
});
after(async () => {
  await Promise.all(pools.map((pool) => pool.end()));
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

test("three daemons migrating one empty database at once all succeed and apply each migration once", async () => {
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
  const again = await migrate(pools[1]!, logger);
  assert.deepEqual(again.applied, []);
  const { rows } = await pools[1]!.query("select count(*)::int as n from webhooks.event_types where source = 'catalog'");
  assert.equal(rows[0].n, 18, "seed rows were not inserted twice");
});

test("migration files are numbered, append-only and in order", async () => {
  const files = await readMigrations();
  assert.deepEqual(files.map((file) => file.id), files.map((_, index) => index + 1));
});
