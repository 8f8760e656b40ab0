import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { receivedContactIds, streamContacts, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const h = useHarness({ receiver: () => ({ status: 200, body: "ok", delayMs: 50 }) });

async function claims(): Promise<{ claimed_by: string; count: number }[]> {
  const { rows } = await h.db.pool.query<{ claimed_by: string; count: number }>(
    `select claimed_by, count(*)::int as count from webhooks.delivery_queue
      where claimed_by is not null group by claimed_by`,
  );
  return rows;
}

test("a daemon killed with SIGKILL mid-delivery loses nothing: a new daemon delivers every committed event", async (t) => {
  const org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  const first = await h.spawnDaemon();
  const { rows: registered } = await h.db.pool.query<{ id: string }>("select id from webhooks.daemons where pid = $1", [first.child.pid]);
  const dead = registered[0]!.id;

  // Room to keep writing after the kill even when the first daemon is slow to get going (a loaded machine).
  const stream = streamContacts(h.db.pool, org, { intervalMs: 5, max: 1000 });
  try {
    // Kill while the slow receiver keeps deliveries in flight and a backlog is queued.
    await waitFor("deliveries under way", () => h.receiver.requests.length >= 20);
    await waitFor("deliveries claimed by the first daemon", async () => (await claims()).some((row) => row.claimed_by === dead));
    await first.kill("SIGKILL");
    const receivedBeforeKill = h.receiver.requests.length;

    const orphaned = (await claims()).find((row) => row.claimed_by === dead)?.count ?? 0;
    assert.ok(orphaned > 0, "the killed daemon held claimed deliveries");
    t.diagnostic(`killed with ${orphaned} deliveries claimed, ${receivedBeforeKill} requests received`);
    await stream.committedAtLeast(30);

    const second = await h.spawnDaemon();
    await waitFor("the dead daemon's claims to be released", async () => !(await claims()).some((row) => row.claimed_by === dead), 60_000);
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
