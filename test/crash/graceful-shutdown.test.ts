import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { receivedContactIds, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const h = useHarness({ receiver: () => ({ status: 200, body: "ok", delayMs: 300 }) });

test("SIGTERM mid-delivery: the daemon finishes what is in flight, unregisters, exits 0; the next one delivers the rest", async (t) => {
  const org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  const first = await h.spawnDaemon();
  const { rows: contacts } = await h.db.pool.query<{ id: string }>(
    `insert into contacts (organization_id, first_name) select $1, 'c' || n from generate_series(1, 60) n returning id`,
    [org],
  );
  const committed = contacts.map((row) => row.id);

  // The receiver records a request on arrival and answers 300 ms later: these are in flight.
  await waitFor("deliveries in flight", () => h.receiver.requests.length >= 4);
  const started = Date.now();
  const code = await first.kill("SIGTERM");
  const inFlight = h.receiver.requests.map((request) => String(request.headers["x-webhook-delivery-id"]));
  t.diagnostic(`exited ${code} after ${Date.now() - started} ms with ${inFlight.length} requests sent`);
  assert.equal(code, 0, `exit code; output:\n${first.output().slice(-2000)}`);
  assert.ok(Date.now() - started < 10_000, "it exits within a few seconds");
  assert.ok(inFlight.length < committed.length, "deliveries were left for the next daemon");

  const { rows: registered } = await h.db.pool.query("select id from webhooks.daemons where pid = $1", [first.child.pid]);
  assert.deepEqual(registered, [], "the daemon removed its registration");
  const { rows: locked } = await h.db.pool.query<{ count: number }>(
    "select count(*)::int as count from webhooks.delivery_queue where claimed_by is not null",
  );
  assert.equal(locked[0]!.count, 0, "no delivery is left claimed by the stopped daemon");
  const { rows: logged } = await h.db.pool.query<{ delivery_id: string }>(
    "select delivery_id from webhooks.webhook_logs where success",
  );
  const loggedIds = new Set(logged.map((row) => row.delivery_id));
  assert.deepEqual(
    inFlight.filter((id) => !loggedIds.has(id)),
    [],
    "every request the stopping daemon sent was answered and logged",
  );

  await h.spawnDaemon();
  await waitUntilReceived(h.receiver, committed, 30_000);
  await waitUntilAllSucceeded(h.db.pool, committed, { timeoutMs: 30_000 });
  const received = receivedContactIds(h.receiver);
  assert.deepEqual([...new Set(received.values())], [1], "nothing finished by the first daemon was sent again");
});
