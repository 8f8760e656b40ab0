import assert from "node:assert/strict";
import { test } from "node:test";
import { createPool, withTransaction } from "../../src/db/pool.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// A delivery has at most one attempt in flight, and its attempt numbers are unique: replaying a
// delivery that is already queued or being attempted sends nothing more and says so
// (webhooks.replay in sql/000012_tenant_hardening.sql). Real daemon, real receiver that holds the
// replayed request open until every replay has returned, so "one request" is not luck of timing.

const h = useHarness({ daemon: true });

interface Gate {
  open(): void;
  opened: Promise<void>;
}

function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** A delivery that died after one attempt (max_retries 0) at a receiver answering 500, and that receiver. */
async function deadDelivery(): Promise<{ deliveryId: string; receiver: Receiver }> {
  const org = await createOrganization(h.db.pool);
  const receiver = await h.startReceiver(() => ({ status: 500 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], max_retries: 0 });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
  const deliveryId = await waitFor("the delivery to die", async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      "select id from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hook.id]);
    return rows[0]?.id;
  });
  return { deliveryId, receiver };
}

/** Once the delivery has left the queue (nothing more can be sent): its state and every attempt logged. */
async function settled(deliveryId: string): Promise<{ state: string; attempts: number[] }> {
  return waitFor("the delivery to leave the queue", async () => {
    const { rows } = await h.db.pool.query<{ state: string; queued: boolean; attempts: number[] }>(
      `select d.state, exists (select 1 from webhooks.delivery_queue q where q.delivery_id = d.id) as queued,
              array(select l.attempt from webhooks.webhook_logs l where l.delivery_id = d.id order by l.id) as attempts
         from webhooks.deliveries d where d.id = $1`,
      [deliveryId],
    );
    const row = rows[0]!;
    return !row.queued && row.state !== "pending" ? { state: row.state, attempts: row.attempts } : undefined;
  });
}

test("three replays in one transaction send the delivery once: the first queues it, the others say it is already queued", async () => {
  const { deliveryId, receiver } = await deadDelivery();
  const release = gate();
  receiver.respond(() => ({ status: 200, hold: release.opened }));

  const answers = await withTransaction(h.db.pool, async (client) => {
    const said: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { rows } = await client.query<{ replay: string }>("select webhooks.replay($1)", [deliveryId]);
      said.push(rows[0]!.replay);
    }
    return said;
  });
  assert.deepEqual(answers, ["queued", "already queued", "already queued"]);

  await waitFor("the replayed request", () => receiver.requests.length === 2);
  release.open();
  assert.deepEqual(await settled(deliveryId), { state: "succeeded", attempts: [1, 2] });
  assert.equal(receiver.requests.length, 2, "the first attempt and one replay, nothing more");
});

test("replays from several sessions at once send the delivery once, and attempt numbers stay unique", async () => {
  const { deliveryId, receiver } = await deadDelivery();
  const release = gate();
  receiver.respond(() => ({ status: 200, hold: release.opened }));
  const sessions = createPool(h.db.url, { max: 8 });
  h.defer(() => sessions.end());

  const answers = await Promise.all(
    Array.from({ length: 8 }, () => sessions.query<{ replay: string }>("select webhooks.replay($1)", [deliveryId])),
  );
  const said = answers.map((result) => result.rows[0]!.replay);
  assert.equal(said.filter((answer) => answer === "queued").length, 1, `one replay queues it: ${said.join(", ")}`);
  assert.ok(said.every((answer) => ["queued", "already queued", "in flight"].includes(answer)), said.join(", "));

  await waitFor("the replayed request", () => receiver.requests.length === 2);
  // While the request is held open, more replays find it in flight and change nothing.
  const { rows: during } = await sessions.query<{ replay: string }>("select webhooks.replay($1)", [deliveryId]);
  assert.equal(during[0]!.replay, "in flight");
  release.open();
  assert.deepEqual(await settled(deliveryId), { state: "succeeded", attempts: [1, 2] });
  assert.equal(receiver.requests.length, 2, "the first attempt and one replay, nothing more");
});

test("a replay while a failing attempt is in flight sends nothing more and says so: the attempt's outcome stands", async () => {
  const { deliveryId, receiver } = await deadDelivery();
  const release = gate();
  receiver.respond(() => ({ status: 500, hold: release.opened }));
  const { rows: first } = await h.db.pool.query<{ replay: string }>("select webhooks.replay($1)", [deliveryId]);
  assert.equal(first[0]!.replay, "queued");
  await waitFor("the replayed request", () => receiver.requests.length === 2);

  const { rows: during } = await h.db.pool.query<{ replay: string }>("select webhooks.replay($1)", [deliveryId]);
  assert.equal(during[0]!.replay, "in flight");
  release.open();
  // max_retries 0: the replay's one attempt fails and the delivery is dead again; the replay
  // made in flight queued no extra attempt.
  assert.deepEqual(await settled(deliveryId), { state: "dead", attempts: [1, 2] });
  assert.equal(receiver.requests.length, 2);
});

test("a claim given back while its attempt is still in flight (its daemon taken for dead) never reuses the attempt's number", async () => {
  const org = await createOrganization(h.db.pool);
  const release = gate();
  const receiver = await h.startReceiver(() => ({ status: 200, hold: release.opened }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], max_retries: 0 });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
  await waitFor("the first attempt's request", () => receiver.requests.length === 1);

  // What the registry does for a daemon whose heartbeat stopped (releaseClaimsStatement): the
  // claim goes back to the queue, although this attempt is still waiting for its answer.
  const { rows: [queued] } = await h.db.pool.query<{ delivery_id: string }>(
    "update webhooks.delivery_queue set claimed_by = null, claimed_at = null where webhook_id = $1 returning delivery_id", [hook.id]);
  await waitFor("the delivery claimed and sent again", () => receiver.requests.length === 2);
  release.open();
  await settled(queued!.delivery_id);
  const { rows } = await h.db.pool.query<{ attempt: number }>(
    "select attempt from webhooks.webhook_logs where delivery_id = $1 order by attempt", [queued!.delivery_id]);
  assert.deepEqual(rows.map((row) => row.attempt), [1, 2], "both attempts logged, each under its own number");
  assert.deepEqual(
    receiver.requests.map((request) => request.headers["x-webhook-delivery-id"]),
    [queued!.delivery_id, queued!.delivery_id],
  );
});
