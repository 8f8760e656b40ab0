import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate, readMigrations } from "../../src/db/migrate.js";
import { spawnDaemon, type DaemonProcess } from "../support/daemon.js";
import { databaseUrl } from "../support/database.js";
import { waitFor } from "../support/wait.js";

// The daemon's connections wait at most lock_timeout for a lock, its migrations too: a migration
// that gives up is rolled back and tried again until the lock is free, instead of failing the
// start (or queueing an ACCESS EXCLUSIVE request that every other session would queue behind).

const name = `pgw_m_${randomBytes(6).toString("hex")}`;
let admin: pg.Client;
let pool: Pool;
let daemon: DaemonProcess | undefined;

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  pool = createPool(databaseUrl(name), { max: 3 });
});
after(async () => {
  await daemon?.kill();
  await pool.end();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

test("a migration that waits longer than lock_timeout for a table someone reads is retried, and the daemon starts once the reader is done", async () => {
  // The release before flow control: migration 000011 alters webhook_configurations.
  await migrate(pool, createLogger("silent"), { upTo: 10 });
  const reader = await pool.connect();
  let started: DaemonProcess;
  try {
    await reader.query("begin");
    await reader.query("select count(*) from webhooks.webhook_configurations");
    started = daemon = await spawnDaemon(databaseUrl(name), { WEBHOOKS_LOCK_TIMEOUT_MS: "300" }, { healthy: false });
    const retried = await waitFor("a migration retried after a lock timeout", () =>
      started.logLines().find((line) => String(line.message) === "migration 11 (flow_control) waited longer than lock_timeout for a lock; retrying"),
    );
    assert.equal(retried.level, "warn");
    assert.equal((retried.error as { code: string }).code, "55P03");
    assert.equal((await fetch(`${started.url}/healthz`)).status, 503, "still starting");
  } finally {
    await reader.query("rollback");
    reader.release();
  }
  await waitFor("the daemon to start", async () => (await fetch(`${started.url}/healthz`).catch(() => undefined))?.status === 200, 30_000);
  const { rows } = await pool.query<{ id: number }>("select id from webhooks.migrations order by id");
  assert.deepEqual(rows.map((row) => row.id), (await readMigrations()).map((migration) => migration.id), "every migration applied");
  assert.equal(started.child.exitCode, null, "the daemon is running");
});
