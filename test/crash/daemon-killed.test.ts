import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { receivedContactIds, streamContacts, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const h = useHarness({ receiver: () => ({ status: 200, body: "ok", delayMs: 50 }) });

async function lockedJobs(): Promise<{ locked_by: string; count: number }[]> {
  const { rows } = await h.db.pool.query<{ locked_by: string; count: number }>(
    `select locked_by, count(*)::int as count from graphile_worker._private_jobs
      where locked_by is not null group by locked_by`,
  );
  return rows;
}

test("a daemon killed with SIGKILL mid-delivery loses nothing: a new daemon delivers every committed event", async (t) => {
  const org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  const first = await h.spawnDaemon();
  const { rows: registered } = await h.db.pool.query<{ worker_pool_id: string }>(
    "select worker_pool_id from webhooks.daemons where pid = $1",
    [first.child.pid],
  );
  const deadPool = registered[0]!.worker_pool_id;

  const stream = streamContacts(h.db.pool, org, { intervalMs: 5, max: 300 });
  try {
    // Kill while the slow receiver keeps deliveries in flight and a backlog is queued.
    await waitFor("deliveries under way", () => h.receiver.requests.length >= 20);
    await waitFor("jobs locked by the first daemon", async () => (await lockedJobs()).some((row) => row.locked_by === deadPool));
    await first.kill("SIGKILL");
    const receivedBeforeKill = h.receiver.requests.length;

    // graphile-worker alone would keep these locked for 4 hours.
    const orphaned = (await lockedJobs()).find((row) => row.locked_by === deadPool)?.count ?? 0;
    assert.ok(orphaned > 0, "the killed daemon held locked jobs");
    t.diagnostic(`killed with ${orphaned} jobs locked, ${receivedBeforeKill} requests received`);
    await stream.committedAtLeast(30);

    const second = await h.spawnDaemon();
    await waitFor("the dead daemon's jobs to be released", async () => !(await lockedJobs()).some((row) => row.locked_by === deadPool), 60_000);
    await stream.committedAtLeast(30);
    await stream.stop();
    assert.ok(receivedBeforeKill < stream.committed.length, "events were still undelivered when the daemon died");

    await waitUntilReceived(h.receiver, stream.committed, 60_000);
    const summary = await waitUntilAllSucceeded(h.db.pool, stream.committed, { timeoutMs: 60_000 });
    assert.deepEqual(summary.states, { succeeded: stream.committed.length });
    const received = receivedContactIds(h.receiver);
    assert.equal(received.size, stream.committed.length, "nothing arrived that was not committed");

    const { rows: live } = await h.db.pool.query<{ pid: number }>("select pid from webhooks.daemons");
    assert.deepEqual(
      live.map((row) => row.pid),
      [second.child.pid],
      "the dead daemon's registration is reaped",
    );
  } finally {
    await stream.stop();
  }
});
