import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate } from "../../src/db/migrate.js";
import { startTestDaemon } from "../support/daemon.js";
import { databaseUrl } from "../support/database.js";
import { startReceiver, type Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// Upgrading a database filled by the previous release (migrations up to 000016) to partitioned
// history (000017): every row is kept, where it was (the <table>_legacy partitions), and what
// was queued is delivered.

const name = `pgw_r_${randomBytes(6).toString("hex")}`;
const logger = createLogger("silent");
const HISTORY = ["webhook_logs", "events", "deliveries", "intake_activity"] as const;
let admin: pg.Client;
let pool: Pool;
let receiver: Receiver;

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  pool = createPool(databaseUrl(name), { max: 3 });
  receiver = await startReceiver();
});
after(async () => {
  await receiver.close();
  await pool.end();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

/** Every table's ids (its primary key's first column), sorted. */
async function ids(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const table of HISTORY) {
    const { rows } = await pool.query<{ id: string }>(`select id::text from webhooks.${table} order by 1`);
    result[table] = rows.map((row) => row.id);
  }
  return result;
}

test("an upgrade keeps every row of the history tables, in legacy partitions, and delivers what was queued, logging it with its stored body", async () => {
  await migrate(pool, logger, { upTo: 16 });
  const { rows: [org] } = await pool.query<{ id: string }>("insert into organizations (name) values ('old') returning id");
  const { rows: [hook] } = await pool.query<{ id: string }>(
    `insert into webhooks.webhook_configurations (organization_id, name, url, events)
     values ($1, 'old hook', $2, '{contact.created}') returning id`,
    [org!.id, receiver.url],
  );
  // As the previous release left them: 300 finished deliveries with an attempt each, a dead one,
  // a queued one (created in another transaction than its event), inbound requests.
  await pool.query(
    `with event as (
       insert into webhooks.events (id, organization_id, event_type, body, occurred_at, dispatched_at)
       select 'ev_' || md5(n::text), $1, 'contact.created', json_build_object('n', n)::text, now() - interval '3 days', now() - interval '3 days'
         from generate_series(1, 300) n
       returning id
     ), delivery as (
       insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, created_at, completed_at)
       select $1, id, $2, 'succeeded', 1, now() - interval '3 days', now() - interval '3 days' from event
       returning id, event_id
     )
     insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                        request_headers, request_body, response_status, success, created_at)
     select $1, $2, event_id, id, 'contact.created', 1, 'https://old.example', '{}', '{}', 200, true, now() - interval '3 days' from delivery`,
    [org!.id, hook!.id],
  );
  await pool.query(
    `update webhooks.deliveries set state = 'dead', last_error = 'HTTP 500'
      where id = (select id from webhooks.deliveries order by id limit 1)`,
  );
  const queuedEvent = `ev_${randomUUID().replace(/-/g, "")}`;
  const body = JSON.stringify({ id: queuedEvent, event: "contact.created", data: { id: "queued before the upgrade" } });
  await pool.query(
    `insert into webhooks.events (id, organization_id, event_type, body, occurred_at, dispatched_at)
     values ($1, $2, 'contact.created', $3, now() - interval '1 hour', now() - interval '1 hour')`,
    [queuedEvent, org!.id, body],
  );
  const { rows: [queued] } = await pool.query<{ id: string }>(
    `with delivery as (
       insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, created_at)
       values ($1, $2, $3, 'failed', 1, now() - interval '59 minutes') returning id, webhook_id, organization_id
     )
     insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, retry, attempts)
     select id, webhook_id, organization_id, true, 1 from delivery returning delivery_id as id`,
    [org!.id, queuedEvent, hook!.id],
  );
  await pool.query(
    `insert into webhooks.intake_activity (request_id, http_status, outcome, error, received_at)
     select 'req_old' || n, 404, 'refused', 'unknown integration', now() - interval '2 days' from generate_series(1, 20) n`,
  );
  const { rows: [last] } = await pool.query<{ id: string }>("select max(id)::text as id from webhooks.webhook_logs");
  const lastLogId = last!.id;
  const before = await ids();

  await migrate(pool, logger);

  assert.deepEqual(await ids(), before, "every row kept");
  const { rows: layout } = await pool.query<{ table: string; kind: string; partitions: string[] }>(
    `select c.relname as table, c.relkind::text as kind,
            array(select p.relname::text from pg_inherits i join pg_class p on p.oid = i.inhrelid
                   where i.inhparent = c.oid order by 1) as partitions
       from pg_class c where c.oid = any (array['webhooks.webhook_logs', 'webhooks.events', 'webhooks.deliveries', 'webhooks.intake_activity']::regclass[])
      order by 1`,
  );
  for (const row of layout) {
    assert.equal(row.kind, "p", `${row.table} is partitioned`);
    assert.deepEqual(row.partitions.filter((p) => !/_p\d{8}_\d{6}$/.test(p)), [`${row.table}_default`, `${row.table}_legacy`], `${row.table}: legacy and default`);
    assert.ok(row.partitions.some((p) => /_p\d{8}_\d{6}$/.test(p)), `${row.table}: today's partition`);
  }
  for (const table of HISTORY) {
    const { rows: [legacy] } = await pool.query<{ n: number }>(`select count(*)::int as n from webhooks.${table}_legacy`);
    assert.equal(legacy!.n, before[table]!.length, `${table}'s rows are in its legacy partition`);
  }
  const { rows: dead } = await pool.query("select delivery_id from webhooks.dead_deliveries");
  assert.equal(dead.length, 1, "the views read the converted tables");

  const daemon = await startTestDaemon(databaseUrl(name));
  try {
    const request = await waitFor("the queued delivery", () => receiver.requests[0]);
    assert.equal(request.body, body);
    const { rows: logged } = await waitFor("its log row", async () => {
      const result = await pool.query<{ id: string; attempt: number; request_body: string; success: boolean }>(
        "select id::text, attempt, request_body, success from webhooks.webhook_logs where delivery_id = $1",
        [queued!.id],
      );
      return result.rows.length > 0 ? result : undefined;
    });
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.attempt, 2, "attempt numbers continue");
    assert.equal(logged[0]!.request_body, body, "the body is read from the legacy partition by id and key");
    assert.ok(BigInt(logged[0]!.id) > BigInt(lastLogId), "log ids continue after the old ones");
  } finally {
    await daemon.stop();
  }
  // Today's partitions exist now (the daemon made them); the legacy ones expire a retention after the upgrade.
  const { rows: [legacy] } = await pool.query<{ n: number }>(
    "select count(*)::int as n from webhooks._partitions('webhook_logs') where partition_name = 'webhook_logs_legacy'",
  );
  assert.equal(legacy!.n, 1, "not expired yet");
});

test("an upgrade is refused, naming them, while a view or a publication of the deployer's reads one of the history tables; it goes through once they are gone", async () => {
  const other = `${name}_dep`;
  await admin.query(`create database ${other}`);
  const otherPool = createPool(databaseUrl(other), { max: 2 });
  try {
    await migrate(otherPool, logger, { upTo: 16 });
    await otherPool.query("create view public.failed_attempts as select * from webhooks.webhook_logs where not success");
    await otherPool.query("create publication history_feed for table webhooks.events");
    await assert.rejects(migrate(otherPool, logger), (error: Error) =>
      /webhooks\.webhook_logs is about to become a partitioned table, and (public\.)?failed_attempts depend on it/.test(error.message));
    await otherPool.query("drop view public.failed_attempts");
    await assert.rejects(migrate(otherPool, logger), /webhooks\.events is about to become a partitioned table, and publication history_feed depend on it/);
    await otherPool.query("drop publication history_feed");
    await migrate(otherPool, logger);
    const { rows } = await otherPool.query("select relkind::text as kind from pg_class where oid = 'webhooks.webhook_logs'::regclass");
    assert.deepEqual(rows, [{ kind: "p" }]);
  } finally {
    await otherPool.end();
    await admin.query(`drop database if exists ${other} with (force)`);
  }
});

