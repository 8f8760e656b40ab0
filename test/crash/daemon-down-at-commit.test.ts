import assert from "node:assert/strict";
import { test } from "node:test";
import type { DaemonProcess } from "../support/daemon.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { receivedContactIds, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const h = useHarness({ receiver: true });
let org: string;
/** The daemons running now, oldest first (the harness kills any left at the end). */
const daemons: DaemonProcess[] = [];

h.before(async () => {
  org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
});

async function insertContacts(count: number, label: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into contacts (organization_id, first_name)
     select $1, $2 || ' ' || n from generate_series(1, $3::int) n returning id`,
    [org, label, count],
  );
  return rows.map((row) => row.id);
}

async function start(): Promise<DaemonProcess> {
  const daemon = await h.spawnDaemon();
  daemons.push(daemon);
  return daemon;
}

async function stop(daemon: DaemonProcess, signal: NodeJS.Signals): Promise<void> {
  await daemon.kill(signal);
  daemons.splice(daemons.indexOf(daemon), 1);
}

const committed: string[] = [];

test("events committed before any daemon ever ran are delivered when the first one starts", async () => {
  const ids = await insertContacts(50, "before");
  committed.push(...ids);
  const { rows } = await h.db.pool.query<{ count: number }>("select count(*)::int as count from webhooks.outbox");
  assert.equal(rows[0]!.count, 50, "the events wait in the outbox");
  assert.equal(h.receiver.requests.length, 0);

  const daemon = await start();
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 30_000 });
  await stop(daemon, "SIGTERM");
});

test("events committed after the daemon stopped gracefully are delivered by the next one", async () => {
  const ids = await insertContacts(50, "after-stop");
  committed.push(...ids);
  await start();
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 30_000 });
});

test("events committed right after a daemon was killed (its NOTIFYs heard by nobody) are delivered by the next one", async () => {
  const [running] = daemons;
  // The killed daemon's listening lease is still valid, so these commits NOTIFY into the void.
  await stop(running!, "SIGKILL");
  const { rows } = await h.db.pool.query<{ listening: boolean }>(
    "select listening_until > clock_timestamp() as listening from webhooks._dispatcher_wake",
  );
  assert.equal(rows[0]!.listening, true, "writers still believe a listener is alive");
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) ids.push(...(await insertContacts(1, `after-kill ${i}`)));
  committed.push(...ids);
  const { rows: outbox } = await h.db.pool.query<{ count: number }>("select count(*)::int as count from webhooks.outbox");
  assert.equal(outbox[0]!.count, ids.length, "the events wait in the outbox");

  await start();
  await waitUntilReceived(h.receiver, ids, 30_000);
  await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 30_000 });
  const received = receivedContactIds(h.receiver);
  assert.equal(received.size, committed.length);
});
