import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate } from "../../src/db/migrate.js";
import { startTestDaemon } from "../support/daemon.js";
import { databaseUrl } from "../support/database.js";
import { startReceiver, type Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// An upgrade from the previous release (migrations up to 000008, one graphile-worker job per
// delivery) to the delivery queue: nothing queued is lost.

const name = `pgw_u_${randomBytes(6).toString("hex")}`;
const logger = createLogger("silent");
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

test("deliveries the previous release queued as graphile-worker jobs are delivered after the upgrade, and their jobs are gone", async () => {
  await migrate(pool, logger, { upTo: 8 });
  const { rows: [org] } = await pool.query<{ id: string }>("insert into organizations (name) values ('old') returning id");
  const { rows: [hook] } = await pool.query<{ id: string }>(
    `insert into webhooks.webhook_configurations (organization_id, name, url, events)
     values ($1, 'old hook', $2, '{contact.created}') returning id`,
    [org!.id, receiver.url],
  );
  // As the previous release's fan-out left them: events, deliveries (one pending, one failed with a
  // retry due, one succeeded), a deliver job for each unfinished one.
  const deliveries: Record<string, string> = {};
  for (const state of ["pending", "failed", "succeeded"]) {
    const eventId = `evt_${randomBytes(16).toString("hex")}`;
    await pool.query(
      `insert into webhooks.events (id, organization_id, event_type, body, occurred_at)
       values ($1, $2, 'contact.created', $3, now())`,
      [eventId, org!.id, JSON.stringify({ id: eventId, event: "contact.created", data: { state } })],
    );
    const { rows: [delivery] } = await pool.query<{ id: string }>(
      `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, next_attempt_at)
       values ($1, $2, $3, $4, $5, now()) returning id`,
      [org!.id, eventId, hook!.id, state, state === "pending" ? 0 : 1],
    );
    deliveries[state] = delivery!.id;
    if (state !== "succeeded") {
      await pool.query("select graphile_worker.add_job('webhooks.deliver', json_build_object('deliveryId', $1::uuid))", [delivery!.id]);
    }
  }

  await migrate(pool, logger);
  const { rows: queued } = await pool.query<{ delivery_id: string; retry: boolean }>(
    "select delivery_id, retry from webhooks.delivery_queue order by retry",
  );
  assert.deepEqual(queued, [
    { delivery_id: deliveries.pending, retry: false },
    { delivery_id: deliveries.failed, retry: true },
  ]);
  const { rows: jobs } = await pool.query(
    `select 1 from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier = 'webhooks.deliver'`,
  );
  assert.deepEqual(jobs, [], "the old deliver jobs are gone: nothing runs them any more");
  const { rows: states } = await pool.query("select circuit from webhooks.endpoint_states where webhook_id = $1", [hook!.id]);
  assert.deepEqual(states, [{ circuit: "closed" }], "the existing endpoint has its state row");

  const daemon = await startTestDaemon(databaseUrl(name));
  try {
    await waitFor("both unfinished deliveries received", () => receiver.requests.length >= 2);
    await waitFor("both succeeded", async () => {
      const { rows } = await pool.query<{ n: number }>(
        "select count(*)::int as n from webhooks.deliveries where state = 'succeeded' and id = any ($1::uuid[])",
        [[deliveries.pending, deliveries.failed]],
      );
      return rows[0]!.n === 2;
    });
    assert.deepEqual(
      receiver.requests.map((request) => String(request.headers["x-webhook-delivery-id"])).sort(),
      [deliveries.pending, deliveries.failed].sort(),
      "the succeeded one is not sent again",
    );
  } finally {
    await daemon.stop();
  }
});
