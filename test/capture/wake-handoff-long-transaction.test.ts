/**
 * The wake-up hand-off (src/capture/wake-state.ts): a dispatcher that stops polling releases its
 * lease, then waits for the writers that may have read it. It must wait for those alone: a
 * transaction left open in another database, or on a table that captures nothing, must not keep
 * an idle daemon polling. And a writer that did read the lease must still have its event picked
 * up by the hand-off, with no sweep to fall back on.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import { createTestDatabase } from "../support/database.js";
import { startTestDaemon } from "../support/daemon.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { receivedContactIds, waitUntilReceived } from "../crash/load.js";

const h = useHarness({ receiver: true });
let org: string;

h.before(async () => {
  org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  await h.db.pool.query("create table public.unrelated (id int)");
});

async function insertContact(name: string, client: pg.ClientBase | typeof h.db.pool = h.db.pool): Promise<string> {
  const { rows } = await client.query<{ id: string }>("insert into contacts (organization_id, first_name) values ($1, $2) returning id", [org, name]);
  return rows[0]!.id;
}

/** Transactions committed in the test database so far (read-only ones included), as the statistics have it. */
async function commits(): Promise<number> {
  const { rows } = await h.db.pool.query<{ commits: number }>(
    "select xact_commit as commits from pg_stat_database where datname = current_database()",
  );
  return rows[0]!.commits;
}

/** Commits per second over `ms` (statistics are flushed about once a second, hence the long window). */
async function commitRate(ms = 5000): Promise<number> {
  const before = await commits();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ((await commits()) - before) / (ms / 1000);
}

async function waitUntilLeaseReleased(): Promise<void> {
  await waitFor("the dispatcher to release its awake lease", async () => {
    const { rows } = await h.db.pool.query<{ released: boolean }>("select awake_until = '-infinity' as released from webhooks._dispatcher_wake");
    return rows[0]!.released;
  });
}

test("an idle daemon stays idle while transactions stay open in another database, on a table that captures nothing, and reading the outbox", async (t) => {
  const daemon = await startTestDaemon(h.db.url);
  const other = await createTestDatabase();
  const elsewhere = new pg.Client({ connectionString: other.url });
  const unrelated = new pg.Client({ connectionString: h.db.url });
  const reader = new pg.Client({ connectionString: h.db.url });
  try {
    const first = await insertContact("before");
    await waitUntilReceived(h.receiver, [first], 15_000);
    await waitUntilLeaseReleased();
    await waitFor("the dispatcher to go back to sleep", () => daemon.dispatcher.isAsleep);
    const idle = await commitRate();

    // Idle in transaction, each with a transaction id: the oldest transactions on the server.
    await elsewhere.connect();
    await elsewhere.query("begin");
    await elsewhere.query("create table held_open (id int)");
    await unrelated.connect();
    await unrelated.query("begin");
    await unrelated.query("insert into public.unrelated values (1)");
    // A DBA's look at the outbox, left open: it holds a lock on webhooks.outbox but wrote nothing.
    await reader.connect();
    await reader.query("begin");
    await reader.query("select count(*) from webhooks.outbox");

    const second = await insertContact("during");
    await waitUntilReceived(h.receiver, [second], 15_000);
    await waitUntilLeaseReleased();
    const withOpenTransactions = await commitRate();
    t.diagnostic(`commits per second: idle ${idle}, with the open transactions ${withOpenTransactions}`);
    // Busy-polling is hundreds a second; an idle daemon's sweeps, claims and heartbeats a few dozen.
    assert.ok(
      withOpenTransactions <= 2 * idle + 20,
      `an idle daemon commits ${withOpenTransactions}/s while unrelated transactions are open, ${idle}/s without them`,
    );
    assert.equal(daemon.dispatcher.isAsleep, true, "the dispatcher sleeps");

    const third = await insertContact("still delivered");
    await waitUntilReceived(h.receiver, [third], 15_000);
  } finally {
    await elsewhere.end().catch(() => undefined);
    await unrelated.end().catch(() => undefined);
    await reader.end().catch(() => undefined);
    await daemon.stop();
    await other.drop();
  }
});

test("an event whose writer read the lease and committed after it was released is delivered by the hand-off, not the sweep", async () => {
  // No sweep within the test's patience: only a NOTIFY or the hand-off can pick the event up.
  const daemon = await h.startDaemon({ WEBHOOKS_SWEEP_INTERVAL_MS: "600000" });
  await waitFor("the dispatcher to sleep after its start-up sweep", () => daemon.dispatcher.isAsleep);
  let writer: pg.PoolClient | undefined;
  let during: string | undefined;
  for (let tries = 0; during === undefined; tries++) {
    assert.ok(tries < 5, "a write while the dispatcher holds its lease");
    // A NOTIFY wakes the dispatcher: it holds its lease while it polls.
    await waitUntilReceived(h.receiver, [await insertContact(`wake ${tries}`)], 15_000);
    writer = await h.db.pool.connect();
    await writer.query("begin");
    const id = await insertContact("written during the lease", writer);
    // Still held after the capture trigger read it, and nothing else is written meanwhile: the
    // trigger saw the lease too, and skipped its NOTIFY.
    const { rows } = await writer.query<{ awake: boolean }>("select awake_until > clock_timestamp() as awake from webhooks._dispatcher_wake");
    if (rows[0]!.awake) during = id;
    else {
      await writer.query("rollback");
      writer.release();
    }
  }
  try {
    await waitUntilLeaseReleased();
    await writer!.query("commit");
  } finally {
    writer!.release();
  }
  await waitUntilReceived(h.receiver, [during], 15_000);
  assert.equal(receivedContactIds(h.receiver).get(during), 1);
});
