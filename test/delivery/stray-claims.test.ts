import assert from "node:assert/strict";
import { test } from "node:test";
import { fanOut } from "../../src/capture/fan-out.js";
import { DeliveryStore } from "../../src/delivery/delivery-store.js";
import { createLogger } from "../../src/logger.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

// A claim's COMMIT can succeed on the server while its reply is lost with the connection: the
// daemon then holds claims it never got, and as it is alive no reaper gives them back. The store
// notices a failed COMMIT and gives back its claims that are not in flight.

const h = useHarness({});
const logger = createLogger("silent");

async function queuedDeliveries(count: number): Promise<string> {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: "https://receiver.example/hook", events: ["contact.created"] });
  await h.db.pool.query("insert into contacts (organization_id, first_name) select $1, 'C' || n from generate_series(1, $2::int) n", [org, count]);
  await fanOut(h.db.pool, 100, logger);
  return hook.id;
}

test("a claim whose COMMIT fails leaves the store uncertain of its claims", async () => {
  await queuedDeliveries(1);
  const store = new DeliveryStore(h.db.pool, "daemon-commit-fails");
  // A deferred check that fails at COMMIT, as a connection lost at that moment would.
  await h.db.pool.query(`
    create function pg_temp_fail_at_commit() returns trigger language plpgsql as $$ begin raise exception 'commit lost'; end $$;
    create constraint trigger fail_at_commit after update on webhooks.delivery_queue deferrable initially deferred
      for each row execute function pg_temp_fail_at_commit();`);
  try {
    assert.equal(store.claimsUncertain, false);
    await assert.rejects(store.claim(10, () => 0), /commit lost/);
    assert.equal(store.claimsUncertain, true);
  } finally {
    await h.db.pool.query("drop trigger fail_at_commit on webhooks.delivery_queue; drop function pg_temp_fail_at_commit()");
  }
  // Here the COMMIT did not happen: giving back finds nothing of this daemon's, and says so.
  assert.equal(await store.releaseStrayClaims([]), 0);
  assert.equal(store.claimsUncertain, false);
});

test("stray claims are given back, each logged as an attempt never made, those in flight kept; the next claim takes them", async () => {
  const webhookId = await queuedDeliveries(3);
  const store = new DeliveryStore(h.db.pool, "daemon-lost-reply");
  const claimed = await store.claim(10, () => 0);
  const ours = claimed.filter((delivery) => delivery.webhookId === webhookId);
  assert.equal(ours.length, 3);
  // As if the reply had been lost: the daemon is attempting only the first of them.
  const [inFlight, ...lost] = ours;
  const released = await store.releaseStrayClaims([inFlight!.id, ...claimed.filter((d) => d.webhookId !== webhookId).map((d) => d.id)]);
  assert.equal(released, 2);

  const { rows: queue } = await h.db.pool.query<{ delivery_id: string; claimed_by: string | null; attempts: number }>(
    "select delivery_id, claimed_by, attempts from webhooks.delivery_queue where webhook_id = $1 order by delivery_id",
    [webhookId],
  );
  for (const row of queue) {
    if (row.delivery_id === inFlight!.id) assert.equal(row.claimed_by, "daemon-lost-reply", "the attempt in flight keeps its claim");
    else assert.deepEqual({ by: row.claimed_by, attempts: row.attempts }, { by: null, attempts: 1 });
  }
  const { rows: logs } = await h.db.pool.query<{ delivery_id: string; attempt: number; error: string }>(
    "select delivery_id, attempt, error from webhooks.webhook_logs where webhook_id = $1",
    [webhookId],
  );
  assert.deepEqual(logs.map((log) => log.delivery_id).sort(), lost.map((d) => d.id).sort());
  for (const log of logs) {
    assert.equal(log.attempt, 1);
    assert.match(log.error, /^interrupted: this attempt was never made: the daemon that claimed it \(daemon-lost-reply\) lost the reply/);
  }

  const again = await new DeliveryStore(h.db.pool, "daemon-next").claim(10, () => 0);
  const retaken = again.filter((delivery) => lost.some((d) => d.id === delivery.id));
  assert.equal(retaken.length, 2, "attempted again");
  assert.deepEqual(retaken.map((d) => d.attempts), [1, 1], "as attempt 2");
});
