/**
 * Wake-ups (README "How it works"): a captured write NOTIFYs channel webhooks_outbox only when a dispatcher is alive
 * and not already polling, and the notification carries no row data (the outbox row does).
 *
 * Absence is proven without sleeping: after the write commits, another transaction NOTIFYs a marker;
 * Postgres delivers notifications in commit order, so once the marker arrives, anything the write
 * sent would already have arrived.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { beforeEach, test } from "node:test";
import pg from "pg";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

const h = useHarness();
let org: string;
let listener: pg.Client;
let received: pg.Notification[] = [];

h.before(async () => {
  org = await createOrganization(h.db.pool);
  listener = new pg.Client({ connectionString: h.db.url });
  await listener.connect();
  h.defer(() => listener.end());
  listener.on("notification", (notification) => received.push(notification));
  await listener.query("listen webhooks_outbox");
});
beforeEach(() => {
  received = [];
});

async function setWake(listeningUntil: string, awakeUntil: string): Promise<void> {
  await h.db.pool.query(
    "update webhooks._dispatcher_wake set listening_until = now() + $1::interval, awake_until = $2::timestamptz",
    [listeningUntil, awakeUntil],
  );
}

/** The notifications on webhooks_outbox that arrived before a marker sent after everything committed. */
async function notificationsUntilMarker(): Promise<pg.Notification[]> {
  const marker = `marker-${randomUUID()}`;
  await h.db.pool.query("select pg_notify('webhooks_outbox', $1)", [marker]);
  await waitFor("the marker notification", () => received.some((n) => n.payload === marker));
  return received.filter((n) => n.channel === "webhooks_outbox" && n.payload !== marker);
}

async function insertContact(): Promise<void> {
  await h.db.pool.query(
    "insert into contacts (organization_id, first_name, email, city) values ($1, 'Ada', 'ada@example.com', 'Reykjavik')",
    [org],
  );
}

test("a write notifies webhooks_outbox when a dispatcher is listening and not polling, with no row data", async () => {
  await setWake("1 hour", "-infinity");
  await insertContact();
  const [notification] = await waitFor("the NOTIFY", () => (received.length ? received : undefined));
  assert.equal(notification!.channel, "webhooks_outbox");
  const payload = notification!.payload ?? "";
  assert.match(payload, /^(\d*|[0-9a-f-]{36})$/, "empty or an id only");
  for (const value of ["ada@example.com", "Ada", "Reykjavik", org, "contact"]) {
    assert.equal(payload.includes(value), false, `payload leaks ${value}`);
  }
  const { rows } = await h.db.pool.query("select 1 from webhooks.outbox where data->>'email' = 'ada@example.com'");
  assert.ok(rows.length > 0, "the event itself is in the outbox");
});

test("no NOTIFY is sent while a dispatcher is polling the outbox", async () => {
  await setWake("1 hour", "infinity");
  await insertContact();
  assert.deepEqual(await notificationsUntilMarker(), []);
});

test("no NOTIFY is sent when no dispatcher is alive to hear it", async () => {
  await h.db.pool.query("update webhooks._dispatcher_wake set listening_until = now() - interval '1 second', awake_until = '-infinity'");
  await insertContact();
  assert.deepEqual(await notificationsUntilMarker(), []);
});

test("a rolled-back write sends no NOTIFY; a committed one does", async () => {
  await setWake("1 hour", "-infinity");
  const client = await h.db.pool.connect();
  try {
    await client.query("begin");
    await client.query("insert into contacts (organization_id, first_name) values ($1, 'Ghost')", [org]);
    await client.query("rollback");
  } finally {
    client.release();
  }
  assert.deepEqual(await notificationsUntilMarker(), []);
  received = [];
  await insertContact();
  assert.equal((await notificationsUntilMarker()).length, 1, "the marker check does see a real NOTIFY");
});
