import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { isDatabaseUnavailable } from "../../src/db/database-unavailable.js";
import { freePort } from "../support/free-port.js";
import { useHarness } from "../support/harness.js";

// The inbound endpoint answers 503 only when the database is unavailable (isDatabaseUnavailable),
// 500 for anything else. Each error here is produced by a real server or a real connection.

const h = useHarness({ app: true });

async function failure(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

async function clientError(url: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on("error", () => undefined);
  const error = await failure(() => client.connect());
  await client.end().catch(() => undefined);
  return error;
}

test("no server on the port, a role that may not log in, a database that does not exist: unavailable", async () => {
  const url = new URL(h.db.url);
  url.port = String(await freePort());
  assert.equal(isDatabaseUnavailable(await clientError(url.toString())), true, "ECONNREFUSED");

  const role = `pgw_nologin_${randomBytes(5).toString("hex")}`;
  await h.db.pool.query(`create role ${role} nologin`);
  h.defer(() => h.db.pool.query(`drop role if exists ${role}`).catch(() => undefined));
  const noLogin = new URL(h.db.url);
  noLogin.username = role;
  const refused = await clientError(noLogin.toString());
  // 28000 where the server trusts the client; 28P01 where it asks for a password first (embedded Postgres).
  assert.match(String((refused as { code?: string }).code), /^28(000|P01)$/);
  assert.equal(isDatabaseUnavailable(refused), true, "refused log-in");

  const missing = new URL(h.db.url);
  missing.pathname = `/pgw_missing_${randomBytes(5).toString("hex")}`;
  const noDatabase = await clientError(missing.toString());
  assert.equal((noDatabase as { code?: string }).code, "3D000");
  assert.equal(isDatabaseUnavailable(noDatabase), true, "3D000");
});

test("a connection terminated by the server, a pool with no connection to give, a lock wait cut short: unavailable", async () => {
  const client = new pg.Client({ connectionString: h.db.url });
  client.on("error", () => undefined);
  await client.connect();
  const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
  await h.db.pool.query("select pg_terminate_backend($1)", [rows[0]!.pid]);
  assert.equal(isDatabaseUnavailable(await failure(() => client.query("select 1"))), true, "terminated");
  await client.end().catch(() => undefined);

  // Long enough for the one connection to be made on a loaded machine; the second waits it out.
  const pool = new pg.Pool({ connectionString: h.db.url, max: 1, connectionTimeoutMillis: 1000 });
  const held = await pool.connect();
  try {
    const timeout = await failure(() => pool.query("select 1"));
    assert.match(String((timeout as Error).message), /timeout/);
    assert.equal(isDatabaseUnavailable(timeout), true, "pool timeout");
  } finally {
    held.release();
    await pool.end();
  }

  const [locker, waiter] = [await h.db.pool.connect(), await h.db.pool.connect()];
  try {
    await locker.query("begin; lock table organizations in access exclusive mode");
    await waiter.query("begin; set local lock_timeout = '20ms'");
    const waited = await failure(() => waiter.query("select count(*) from organizations"));
    assert.equal((waited as { code?: string }).code, "55P03");
    assert.equal(isDatabaseUnavailable(waited), true, "55P03");
  } finally {
    await waiter.query("rollback");
    await locker.query("rollback");
    waiter.release();
    locker.release();
  }
});

test("a permission, bad data, a failed check, a missing table or a bug of ours: not unavailable", async () => {
  const errors = [
    await failure(() => h.app.pool.query("select * from webhooks._process_lead('ev_00000000000000000000000000000000')")),
    await failure(() => h.db.pool.query("select '1e999999'::numeric")),
    await failure(() => h.db.pool.query("insert into webhooks.inbound_integrations (organization_id, name) values (gen_random_uuid(), ' ')")),
    await failure(() => h.db.pool.query("select * from webhooks.no_such_table")),
    new TypeError("Cannot read properties of undefined (reading 'rows')"),
  ];
  assert.deepEqual(errors.map((error) => (error as { code?: string }).code), ["42501", "22003", "23514", "42P01", undefined]);
  for (const error of errors) assert.equal(isDatabaseUnavailable(error), false, String(error));
});
