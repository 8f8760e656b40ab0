import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import type { Daemon } from "../../src/daemon.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { receivedContactIds, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const h = useHarness({ receiver: true });
let daemon: Daemon;
let org: string;
const committed: string[] = [];

h.before(async () => {
  org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  daemon = await h.startDaemon();
});

async function listenBackends(): Promise<number[]> {
  const { rows } = await h.db.pool.query<{ pid: number }>(
    `select pid from pg_stat_activity where application_name = 'pg-webhooks:listen' and datname = current_database()`,
  );
  return rows.map((row) => row.pid);
}

/** Waits until the dispatcher sleeps: from then on only a NOTIFY or the sweep makes it poll again. */
async function waitUntilDispatcherSleeps(): Promise<void> {
  await waitFor("the dispatcher to go back to sleep", () => daemon.dispatcher.isAsleep);
}

async function insertOneByOne(count: number, label: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { rows } = await h.db.pool.query<{ id: string }>(
      "insert into contacts (organization_id, first_name) values ($1, $2) returning id",
      [org, `${label} ${i}`],
    );
    ids.push(rows[0]!.id);
  }
  committed.push(...ids);
  return ids;
}

test("events committed while the LISTEN connection is gone are delivered, and the listener comes back", async () => {
  for (let round = 0; round < 3; round++) {
    const [listener] = await waitFor("a LISTEN backend", async () => {
      const pids = await listenBackends();
      return pids.length === 1 ? pids : undefined;
    });
    await waitUntilDispatcherSleeps();
    const { rows } = await h.db.pool.query<{ terminated: boolean }>("select pg_terminate_backend($1) as terminated", [listener]);
    assert.equal(rows[0]!.terminated, true);
    // Their NOTIFYs go out while nobody is listening.
    const ids = await insertOneByOne(10, `round ${round}`);
    await waitUntilReceived(h.receiver, ids, 15_000);
    const [replacement] = await waitFor("the listener to reconnect", async () => {
      const pids = await listenBackends();
      return pids.length === 1 && pids[0] !== listener ? pids : undefined;
    });
    assert.notEqual(replacement, listener);
  }
  await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 15_000 });
});

test("with no NOTIFY ever sent, the sweep still delivers every event", async () => {
  // Writers only NOTIFY while listening_until is in the future; pin it in the past for good.
  await h.db.pool.query(`
    create function public.force_never_listening() returns trigger language plpgsql as $$
    begin new.listening_until := '-infinity'; return new; end $$;
    create trigger never_listening before update on webhooks._dispatcher_wake
      for each row execute function public.force_never_listening();
    update webhooks._dispatcher_wake set listening_until = '-infinity';`);
  const listener = new pg.Client({ connectionString: h.db.url });
  await listener.connect();
  let notifications = 0;
  listener.on("notification", () => (notifications += 1));
  await listener.query("listen webhooks_outbox");
  try {
    const wakeupsBefore = daemon.dispatcher.stats.wakeups;
    for (let round = 0; round < 3; round++) {
      await waitUntilDispatcherSleeps();
      const ids = await insertOneByOne(10, `silent ${round}`);
      await waitUntilReceived(h.receiver, ids, 15_000);
    }
    await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 15_000 });
    // A round-trip on the LISTEN connection delivers any notification still queued for it.
    await listener.query("select 1");
    assert.equal(notifications, 0, "no NOTIFY was sent");
    assert.ok(daemon.dispatcher.stats.wakeups >= wakeupsBefore + 3, "the sleeping dispatcher woke up for each round");
    assert.equal(receivedContactIds(h.receiver).size, committed.length);
  } finally {
    await listener.end();
  }
});
