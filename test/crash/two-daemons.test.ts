import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { DaemonProcess } from "../support/daemon.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { Receiver } from "../support/receiver.js";
import { receivedContactIds, streamContacts, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const EVENTS = 300;

const h = useHarness();
let receivers: Receiver[] = [];
const daemons: { process: DaemonProcess; port: number }[] = [];

h.before(async () => {
  receivers = await Promise.all([1, 2].map(() => h.startReceiver(() => ({ status: 200, body: "ok", delayMs: 10 }))));
});

async function startDaemon(): Promise<void> {
  const process = await h.spawnDaemon();
  const port = Number(/"message":"pg-webhooks is running".*?"port":(\d+)/.exec(process.output())?.[1]);
  assert.ok(port > 0, "the daemon logs its HTTP port");
  daemons.push({ process, port });
}

async function dispatchedBy(port: number): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^pg_webhooks_dispatched_events_total (\d+)$/m.exec(metrics)?.[1]);
}

test("two daemons on one database deliver each (event, endpoint) exactly once", async (t) => {
  const org = await createOrganization(h.db.pool);
  for (const receiver of receivers) {
    await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"] });
  }
  await startDaemon();
  await startDaemon();
  const { rows: registered } = await h.db.pool.query<{ id: string }>("select id from webhooks.daemons");
  assert.equal(registered.length, 2);

  // Which daemons hold claimed deliveries while the load runs: both should take a share.
  const lockers = new Set<string>();
  const stream = streamContacts(h.db.pool, org, { intervalMs: 2, max: EVENTS, maxMs: 30_000 });
  let sampling = true;
  const sampler = (async () => {
    const deadline = Date.now() + 60_000;
    while (sampling && Date.now() < deadline) {
      const { rows } = await h.db.pool.query<{ claimed_by: string }>(
        "select distinct claimed_by from webhooks.delivery_queue where claimed_by is not null",
      );
      for (const row of rows) lockers.add(row.claimed_by);
      await delay(10);
    }
  })();
  try {
    await stream.committedAtLeast(EVENTS, 30_000);
    await stream.stop();
    for (const receiver of receivers) await waitUntilReceived(receiver, stream.committed, 30_000);
    await waitUntilAllSucceeded(h.db.pool, stream.committed, { endpoints: 2, timeoutMs: 30_000 });
  } finally {
    sampling = false;
    await stream.stop();
    await sampler;
  }

  for (const receiver of receivers) {
    const received = receivedContactIds(receiver);
    assert.equal(received.size, EVENTS);
    assert.deepEqual([...new Set(received.values())], [1], "no endpoint got an event twice");
  }
  const { rows: deliveries } = await h.db.pool.query<{ rows: number; pairs: number; succeeded: number; first_try: number }>(
    `select count(*)::int as rows, count(distinct (event_id, webhook_id))::int as pairs,
            count(*) filter (where state = 'succeeded')::int as succeeded,
            count(*) filter (where attempts = 1)::int as first_try
       from webhooks.deliveries`,
  );
  assert.deepEqual(deliveries[0], { rows: 2 * EVENTS, pairs: 2 * EVENTS, succeeded: 2 * EVENTS, first_try: 2 * EVENTS });
  const { rows: logs } = await h.db.pool.query<{ rows: number; deliveries: number }>(
    "select count(*)::int as rows, count(distinct delivery_id)::int as deliveries from webhooks.webhook_logs",
  );
  assert.deepEqual(logs[0], { rows: 2 * EVENTS, deliveries: 2 * EVENTS }, "one attempt logged per delivery");

  const dispatched = await Promise.all(daemons.map((daemon) => dispatchedBy(daemon.port)));
  t.diagnostic(`events fanned out per daemon: ${dispatched.join(", ")}; daemons seen holding claims: ${lockers.size}`);
  assert.equal(dispatched[0]! + dispatched[1]!, EVENTS, "each event was fanned out by exactly one daemon");
  for (const { id } of registered) {
    assert.ok(lockers.has(id), `daemon ${id} took a share of the deliveries`);
  }
});
