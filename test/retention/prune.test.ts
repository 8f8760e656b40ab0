import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import pg from "pg";
import { runCliWithEnv } from "../support/cli.js";
import { createOrganization, organizationWithEndpoint } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// Retention (README "Retention and monitoring", sql/000017): expired history goes by whole
// partitions; what a queued delivery needs stays; old rows can still be written. History is
// made by backdating: partitions created back in time (call webhooks.create_partitions(since)) and
// rows written with old timestamps, as a restore or a backfill would.

const h = useHarness({ receiver: true, dispatcher: true });

const HISTORY = ["webhook_logs", "events", "deliveries", "intake_activity"] as const;

interface Partition {
  table: string;
  partition: string;
  upper: Date | null;
}

async function partitions(): Promise<Partition[]> {
  const { rows } = await h.db.pool.query<Partition>(
    `select h.table_name as table, p.partition_name as partition, p.upper_bound as upper
       from webhooks._partitioned h cross join lateral webhooks._partitions(h.table_name) p
      order by 1, p.upper_bound nulls last`,
  );
  return rows;
}

/** Which partition holds the row (tableoid), or undefined when the row is gone. */
async function partitionOf(table: string, where: string, values: unknown[]): Promise<string | undefined> {
  const { rows } = await h.db.pool.query<{ partition: string }>(
    `select tableoid::regclass::text as partition from webhooks.${table} where ${where}`,
    values,
  );
  return rows[0]?.partition;
}

/** A time `days` ago as an SQL literal: one instant for all the rows of one backdated delivery. */
async function daysBefore(days: number): Promise<string> {
  const { rows } = await h.db.pool.query<{ at: string }>("select (now() - $1::float8 * interval '1 day')::text as at", [days]);
  return `'${rows[0]!.at}'::timestamptz`;
}

interface Backdated {
  eventId: string;
  deliveryId: string;
  logId: string;
  requestId: string;
}

/**
 * One finished delivery `daysAgo` old, as the daemon leaves it: its event, its delivery
 * (succeeded), one attempt's log row, one refused inbound request.
 */
async function finishedDelivery(org: string, webhookId: string, daysAgo: number): Promise<Backdated> {
  const at = await daysBefore(daysAgo);
  const eventId = `ev_${randomUUID().replace(/-/g, "")}`;
  await h.db.pool.query(
    `insert into webhooks.events (id, organization_id, event_type, body, occurred_at, dispatched_at)
     values ($1, $2, 'contact.created', '{"old":true}', ${at}, ${at})`,
    [eventId, org],
  );
  const { rows: [delivery] } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, created_at, updated_at, completed_at)
     values ($1, $2, $3, 'succeeded', 1, ${at}, ${at}, ${at}) returning id`,
    [org, eventId, webhookId],
  );
  const { rows: [log] } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                        request_headers, request_body, response_status, success, created_at)
     values ($1, $2, $3, $4, 'contact.created', 1, 'https://old.example/hook', '{}', '{"old":true}', 200, true, ${at})
     returning id`,
    [org, webhookId, eventId, delivery!.id],
  );
  const requestId = `req_${randomUUID().replace(/-/g, "")}`;
  await h.db.pool.query(
    `insert into webhooks.intake_activity (request_id, http_status, outcome, error, received_at)
     values ($1, 404, 'refused', 'unknown integration', ${at})`,
    [requestId],
  );
  return { eventId, deliveryId: delivery!.id, logId: log!.id, requestId };
}

/** A delivery `daysAgo` old still waiting in the queue (its endpoint was paused all along). */
async function queuedDelivery(org: string, webhookId: string, daysAgo: number): Promise<{ eventId: string; deliveryId: string }> {
  const at = await daysBefore(daysAgo);
  const eventId = `ev_${randomUUID().replace(/-/g, "")}`;
  const body = JSON.stringify({ id: eventId, event: "contact.created", data: { id: "kept" } });
  await h.db.pool.query(
    `insert into webhooks.events (id, organization_id, event_type, body, occurred_at, dispatched_at)
     values ($1, $2, 'contact.created', $3, ${at}, ${at})`,
    [eventId, org, body],
  );
  const { rows: [delivery] } = await h.db.pool.query<{ id: string }>(
    `with delivery as (
       insert into webhooks.deliveries (organization_id, event_id, webhook_id, created_at)
       values ($1, $2, $3, ${at}) returning id, webhook_id, organization_id, created_at
     )
     insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, delivery_created_at, event_dispatched_at)
     select id, webhook_id, organization_id, created_at, ${at} from delivery returning delivery_id as id`,
    [org, eventId, webhookId],
  );
  return { eventId, deliveryId: delivery!.id };
}

/** The NOTICEs a statement raised (a procedure's report of its steps). */
async function noticesOf(sql: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: h.db.url });
  await client.connect();
  const notices: string[] = [];
  client.on("notice", (notice) => notices.push(notice.message ?? ""));
  try {
    await client.query(sql);
    return notices;
  } finally {
    await client.end();
  }
}

const prune = (days: number) => runCliWithEnv(h.db.url, { WEBHOOKS_RETENTION_DAYS: String(days) }, "prune");

test("pg-webhooks prune drops the partitions older than the retention and nothing newer; a queued delivery and its event stay and are delivered", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '40 days')");
  const { org, hook, requests } = await organizationWithEndpoint(h.db.pool, h.receiver, { paused: true });
  const expired = await finishedDelivery(org, hook.id, 35);
  const kept = await finishedDelivery(org, hook.id, 20);
  const waiting = await queuedDelivery(org, hook.id, 35);
  const lead = `req_${randomUUID().replace(/-/g, "")}`;
  await h.db.pool.query(
    `insert into webhooks.intake_activity (request_id, event_id, http_status, outcome, body, received_at)
     values ($1, $2, 202, 'accepted', '{}', now() - interval '35 days')`,
    [lead, `ev_${randomUUID().replace(/-/g, "")}`],
  );
  const before = await partitions();
  assert.ok(before.some((p) => p.upper !== null && p.upper.getTime() < Date.now() - 34 * 86_400_000), "backdated partitions exist");

  const output = await prune(30);
  assert.match(output, /^dropped webhook_logs_p\d{8}_000000, 0 rows kept for queued deliveries$/m);
  assert.match(output, /^dropped deliveries_p\d{8}_000000, 1 rows kept for queued deliveries$/m);
  assert.match(output, /retention 30 days applied/);

  const cutoff = Date.now() - 30 * 86_400_000;
  const after = await partitions();
  assert.deepEqual(after.filter((p) => p.upper !== null && p.upper.getTime() <= cutoff), [], "no partition older than the retention is left");
  assert.deepEqual(
    after.map((p) => p.partition),
    before.filter((p) => p.upper === null || p.upper.getTime() > cutoff).map((p) => p.partition),
    "every newer partition is still there",
  );
  for (const table of HISTORY) assert.ok(after.some((p) => p.partition === `${table}_default`), `${table} keeps its DEFAULT partition`);

  assert.equal(await partitionOf("events", "id = $1", [expired.eventId]), undefined, "the expired event is gone");
  assert.equal(await partitionOf("deliveries", "id = $1", [expired.deliveryId]), undefined, "the expired delivery is gone");
  assert.equal(await partitionOf("webhook_logs", "id = $1", [expired.logId]), undefined, "the expired attempt is gone");
  assert.equal(await partitionOf("intake_activity", "request_id = $1", [expired.requestId]), undefined, "the expired request is gone");
  assert.match((await partitionOf("events", "id = $1", [kept.eventId]))!, /^webhooks\.events_p\d{8}_000000$/, "20 days old: kept");
  assert.match((await partitionOf("deliveries", "id = $1", [kept.deliveryId]))!, /^webhooks\.deliveries_p/);
  assert.match((await partitionOf("webhook_logs", "id = $1", [kept.logId]))!, /^webhooks\.webhook_logs_p/);
  assert.match((await partitionOf("intake_activity", "request_id = $1", [kept.requestId]))!, /^webhooks\.intake_activity_p/);

  assert.equal(await partitionOf("deliveries", "id = $1", [waiting.deliveryId]), "webhooks.deliveries_default", "the queued delivery stays");
  assert.equal(await partitionOf("events", "id = $1", [waiting.eventId]), "webhooks.events_default", "and so does its event");
  assert.equal(await partitionOf("intake_activity", "request_id = $1", [lead]), "webhooks.intake_activity_default", "an unprocessed lead stays");

  // Unpaused, the kept delivery is sent and logged with the stored body, found in the DEFAULT partition.
  await h.startDaemon();
  await h.db.pool.query("update webhooks.webhook_configurations set paused = false where id = $1", [hook.id]);
  const [request] = await waitFor("the kept delivery", () => (requests().length > 0 ? requests() : undefined));
  assert.equal(JSON.parse(request!.body).data.id, "kept");
  const { rows: logged } = await waitFor("its log row", async () => {
    const result = await h.db.pool.query<{ request_body: string; success: boolean }>(
      "select request_body, success from webhooks.webhook_logs where delivery_id = $1",
      [waiting.deliveryId],
    );
    return result.rows.length > 0 ? result : undefined;
  });
  assert.deepEqual(logged, [{ request_body: request!.body, success: true }]);

  // Delivered, it is expired history like the rest: the next run deletes it (and its event)
  // from the DEFAULT partition; its new attempt, written today, stays.
  await waitFor("the delivery to succeed", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where id = $1 and state = 'succeeded'", [waiting.deliveryId])).rowCount === 1);
  assert.match(await prune(30), /deleted \d+ expired rows from deliveries_default/);
  assert.equal(await partitionOf("deliveries", "id = $1", [waiting.deliveryId]), undefined);
  assert.equal(await partitionOf("events", "id = $1", [waiting.eventId]), undefined);
  assert.match((await partitionOf("webhook_logs", "delivery_id = $1", [waiting.deliveryId]))!, /^webhooks\.webhook_logs_p/);
});

test("old and future rows can be written (a restore, a backfill): the DEFAULT partition takes them, a partition made for their range later takes them over, and expired ones are deleted", async () => {
  const org = await createOrganization(h.db.pool);
  const insertLog = async (createdAt: string) => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                          request_headers, success, created_at)
       values ($1, $2, 'ev_backfill', $3, 'contact.created', 1, 'https://old.example/hook', '{}', false, ${createdAt}) returning id`,
      [org, randomUUID(), randomUUID()],
    );
    return rows[0]!.id;
  };
  const ancient = await insertLog("timestamptz '2001-01-01 00:00:00+00'");
  const future = await insertLog("now() + interval '400 days'");
  // Older than any partition the other tests make, within this test's 90 days.
  const recent = await insertLog("now() - interval '70 days'");
  assert.equal(await partitionOf("webhook_logs", "id = $1", [ancient]), "webhooks.webhook_logs_default");
  assert.equal(await partitionOf("webhook_logs", "id = $1", [future]), "webhooks.webhook_logs_default");

  // Partitions created for a backfill's range take over what the DEFAULT partition holds of it.
  const created = await noticesOf("call webhooks.create_partitions(now() - interval '71 days')");
  assert.ok(created.some((line) => /^created webhook_logs_p\d{8}_000000 \(1 rows moved in from webhook_logs_default\)$/.test(line)), JSON.stringify(created));
  assert.match((await partitionOf("webhook_logs", "id = $1", [recent]))!, /^webhooks\.webhook_logs_p\d{8}_000000$/);

  assert.match(await prune(90), /deleted 1 expired rows from webhook_logs_default/);
  assert.equal(await partitionOf("webhook_logs", "id = $1", [ancient]), undefined, "expired: deleted from the DEFAULT partition");
  assert.equal(await partitionOf("webhook_logs", "id = $1", [future]), "webhooks.webhook_logs_default", "the future row stays");
  assert.ok(await partitionOf("webhook_logs", "id = $1", [recent]), "70 days old: kept for 90 days");
});

test("two prunes at once (two daemons, or a daemon and the CLI) both succeed and drop each partition once", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '45 days')");
  const old = async () =>
    (await partitions()).filter((p) => p.upper !== null && p.upper.getTime() <= Date.now() - 30 * 86_400_000).length;
  assert.ok((await old()) > 0);
  const clients = await Promise.all([0, 1].map(async () => {
    const client = new pg.Client({ connectionString: h.db.url });
    await client.connect();
    return client;
  }));
  try {
    await Promise.all(clients.map((client) => client.query("call webhooks.prune(interval '30 days')")));
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
  assert.equal(await old(), 0);
});

test("the daemon applies WEBHOOKS_RETENTION_DAYS on its own when it starts and creates the coming partitions", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '10 days')");
  const olderThan = async (days: number) =>
    (await partitions()).filter((p) => p.upper !== null && p.upper.getTime() <= Date.now() - days * 86_400_000).length;
  assert.ok((await olderThan(5)) > 0);
  const before = Date.now();
  const daemon = await h.startDaemon({ WEBHOOKS_RETENTION_DAYS: "5" });
  assert.equal(await olderThan(5), 0);
  const metrics = await (await fetch(`http://127.0.0.1:${(daemon.server.address() as AddressInfo).port}/metrics`)).text();
  const applied = Number(/^pg_webhooks_retention_applied_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
  assert.ok(applied * 1000 >= before - 1000 && applied * 1000 <= Date.now() + 1000, `pg_webhooks_retention_applied_timestamp_seconds ${applied}`);
  assert.ok((await olderThan(3)) > 0, "nothing newer than the retention is dropped");
  const ahead = (await partitions()).filter((p) => p.upper !== null && p.upper.getTime() > Date.now() + 2 * 86_400_000);
  assert.deepEqual([...new Set(ahead.map((p) => p.table))].sort(), [...HISTORY].sort(), "each table has partitions two days ahead");
});

test("a retention under a minute is refused, and under a day for the daemon's role (the intake's idempotency window); nothing is dropped", async () => {
  const count = (await partitions()).length;
  await assert.rejects(h.db.pool.query("select webhooks.drop_expired_partition(interval '10 seconds')"), /retention must be at least a minute/);
  await assert.rejects(h.dispatcher.pool.query("select webhooks.drop_expired_partition(interval '1 hour')"),
    /webhooks\.drop_expired_partition: retention must be at least a day, not 01:00:00/);
  await assert.rejects(h.dispatcher.pool.query("select webhooks.delete_expired_rows(interval '1 hour')"), /retention must be at least a day/);
  assert.equal((await partitions()).length, count);
  await assert.rejects(runCliWithEnv(h.db.url, { WEBHOOKS_RETENTION_DAYS: "0" }, "prune"), /WEBHOOKS_RETENTION_DAYS must be at least 1/);
});

test("a run in a session with another TimeZone and DateStyle keeps a queued delivery written just before its partition's end", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '40 days')");
  const { org, hook } = await organizationWithEndpoint(h.db.pool, h.receiver, { paused: true });
  const { rows: [edge] } = await h.db.pool.query<{ days: number }>(
    "select extract(epoch from now() - (date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '35 days' + interval '23 hours')) / 86400 as days",
  );
  const waiting = await queuedDelivery(org, hook.id, edge!.days);
  const client = new pg.Client({ connectionString: h.db.url });
  await client.connect();
  try {
    await client.query("set timezone = 'UTC+3'; set datestyle = 'Postgres, DMY'");
    await client.query("call webhooks.prune(interval '30 days')");
  } finally {
    await client.end();
  }
  assert.equal(await partitionOf("deliveries", "id = $1", [waiting.deliveryId]), "webhooks.deliveries_default");
  assert.equal(await partitionOf("events", "id = $1", [waiting.eventId]), "webhooks.events_default");
});

test("replaying a delivery whose event has expired is refused as no longer sendable, and queues nothing", async () => {
  const { org, hook } = await organizationWithEndpoint(h.db.pool, h.receiver);
  const { rows: [dead] } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, completed_at)
     values ($1, 'ev_expired', $2, 'dead', 3, now()) returning id`,
    [org, hook.id],
  );
  await assert.rejects(h.db.pool.query("select webhooks.replay($1)", [dead!.id]), (error: pg.DatabaseError) =>
    error.code === "P0002" && /can no longer be sent: its event has expired/.test(error.message));
  const { rows } = await h.db.pool.query("select 1 from webhooks.delivery_queue where delivery_id = $1", [dead!.id]);
  assert.equal(rows.length, 0);
});

