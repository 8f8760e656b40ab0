import assert from "node:assert/strict";
import { test } from "node:test";
import { createTestDatabase } from "../support/database.js";
import { spawnDaemon, type DaemonProcess } from "../support/daemon.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { receivedContactIds, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

// Each test brings its daemons up and down itself and checks only its own contacts, so the tests
// hold in any order. The first needs a database no daemon has ever served: it gets its own.

const h = useHarness({ receiver: true });

async function organizationWithWebhook(pool = h.db.pool): Promise<string> {
  const org = await createOrganization(pool);
  await createWebhook(pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  return org;
}

async function insertContacts(org: string, count: number, label: string, pool = h.db.pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into contacts (organization_id, first_name)
     select $1, $2 || ' ' || n from generate_series(1, $3::int) n returning id`,
    [org, label, count],
  );
  return rows.map((row) => row.id);
}

async function outboxCount(pool = h.db.pool): Promise<number> {
  const { rows } = await pool.query<{ count: number }>("select count(*)::int as count from webhooks.outbox");
  return rows[0]!.count;
}

test("events committed before any daemon ever ran are delivered when the first one starts", async () => {
  const fresh = await createTestDatabase();
  h.defer(() => fresh.drop());
  const org = await organizationWithWebhook(fresh.pool);
  const ids = await insertContacts(org, 50, "before", fresh.pool);
  assert.equal(await outboxCount(fresh.pool), 50, "the events wait in the outbox");

  const daemon = await spawnDaemon(fresh.url);
  h.defer(() => daemon.kill());
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(fresh.pool, ids, { timeoutMs: 30_000 });
  await daemon.kill("SIGTERM");
});

test("events committed after the daemon stopped gracefully are delivered by the next one", async () => {
  const org = await organizationWithWebhook();
  const first = await h.spawnDaemon();
  await first.kill("SIGTERM");
  const ids = await insertContacts(org, 50, "after-stop");

  const next = await h.spawnDaemon();
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(h.db.pool, ids, { timeoutMs: 30_000 });
  await next.kill("SIGTERM");
});

test("events committed right after a daemon was killed (its NOTIFYs heard by nobody) are delivered by the next one", async () => {
  const org = await organizationWithWebhook();
  const killed: DaemonProcess = await h.spawnDaemon();
  // The killed daemon's listening lease is still valid, so these commits NOTIFY into the void.
  await killed.kill("SIGKILL");
  const { rows } = await h.db.pool.query<{ listening: boolean }>(
    "select listening_until > clock_timestamp() as listening from webhooks._dispatcher_wake",
  );
  assert.equal(rows[0]!.listening, true, "writers still believe a listener is alive");
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(...(await insertContacts(org, 1, `after-kill ${i}`)));
  assert.equal(await outboxCount(), ids.length, "the events wait in the outbox");

  const next = await h.spawnDaemon();
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(h.db.pool, ids, { timeoutMs: 30_000 });
  const received = receivedContactIds(h.receiver);
  assert.ok(ids.every((id) => received.has(id)));
  await next.kill("SIGTERM");
});
