import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../support/cli.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// docs/guarantees.md: dead deliveries are a view (webhooks.dead_deliveries) and replayable with
// webhooks.replay(delivery_id) and webhooks.replay_dead(webhook_id), or the CLI wrappers.

const h = useHarness({ daemon: true });

async function receiver(status: number): Promise<Receiver> {
  return h.startReceiver(() => ({ status }));
}

async function insertContact(org: string): Promise<void> {
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
}

interface DeliveryRow {
  id: string;
  state: string;
  attempts: number;
}

/** The webhook's deliveries once there are `count` and all are succeeded or dead. */
async function settled(webhookId: string, count: number): Promise<DeliveryRow[]> {
  return waitFor(`${count} settled deliveries`, async () => {
    const { rows } = await h.db.pool.query<DeliveryRow>(
      "select id, state, attempts from webhooks.deliveries where webhook_id = $1 order by created_at, id",
      [webhookId],
    );
    return rows.length === count && rows.every((row) => row.state === "succeeded" || row.state === "dead") ? rows : undefined;
  });
}

async function attemptsLogged(deliveryId: string): Promise<{ attempt: number; success: boolean }[]> {
  const { rows } = await h.db.pool.query<{ attempt: number; success: boolean }>(
    "select attempt, success from webhooks.webhook_logs where delivery_id = $1 order by id",
    [deliveryId],
  );
  return rows;
}

const cli = (...args: string[]) => runCli(h.db.url, ...args);

test("a replayed dead delivery gets fresh retries, continues its attempt numbers, and succeeds once the receiver recovers", async () => {
  const org = await createOrganization(h.db.pool);
  const target = await receiver(500);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: target.url, events: ["contact.created"], max_retries: 1 });
  await insertContact(org);
  const [dead] = await settled(hook.id, 1);
  assert.deepEqual({ state: dead!.state, attempts: dead!.attempts }, { state: "dead", attempts: 2 });

  const { rows: listed } = await h.db.pool.query(
    `select delivery_id, webhook_id, webhook_name, url, event_type, attempts, last_status, last_error
       from webhooks.dead_deliveries where organization_id = $1`,
    [org],
  );
  assert.deepEqual(listed, [{
    delivery_id: dead!.id, webhook_id: hook.id, webhook_name: "test hook", url: target.url,
    event_type: "contact.created", attempts: 2, last_status: 500, last_error: "HTTP 500",
  }]);

  // Still failing: the replay has max_retries (1) retries of its own, attempts 3 and 4.
  await h.db.pool.query("select webhooks.replay($1)", [dead!.id]);
  await waitFor("the replay to fail twice", async () => (await attemptsLogged(dead!.id)).length === 4);
  await settled(hook.id, 1);

  // Recovered: the next replay succeeds at attempt 5.
  target.respond(() => ({ status: 200 }));
  assert.equal(await cli("replay", dead!.id), `queued delivery ${dead!.id}\n`);
  const [succeeded] = await waitFor("the replayed delivery to succeed", async () => {
    const rows = await settled(hook.id, 1);
    return rows[0]!.state === "succeeded" ? rows : undefined;
  });
  assert.equal(succeeded!.attempts, 5);
  assert.deepEqual(await attemptsLogged(dead!.id), [
    { attempt: 1, success: false },
    { attempt: 2, success: false },
    { attempt: 3, success: false },
    { attempt: 4, success: false },
    { attempt: 5, success: true },
  ]);
  assert.equal(target.requests.length, 5);
  assert.ok(target.requests.every((request) => request.body === target.requests[0]!.body), "the same event each time");
  assert.equal((await h.db.pool.query("select 1 from webhooks.dead_deliveries where organization_id = $1", [org])).rowCount, 0);
});

test("replay_dead re-queues every dead delivery of one webhook and nothing else", async () => {
  const org = await createOrganization(h.db.pool);
  const mine = await receiver(200);
  const other = await receiver(500);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: mine.url, events: ["contact.created"], max_retries: 0 });
  const otherHook = await createWebhook(h.db.pool, { organizationId: org, url: other.url, events: ["contact.created"], max_retries: 0 });

  await insertContact(org); // succeeds at `mine`, dies at `other`
  await settled(hook.id, 1);
  mine.respond(() => ({ status: 500 }));
  await insertContact(org);
  await insertContact(org);
  const before = await settled(hook.id, 3);
  assert.deepEqual(before.map((row) => row.state), ["succeeded", "dead", "dead"]);
  await settled(otherHook.id, 3);
  assert.equal(mine.requests.length, 3);
  assert.equal(other.requests.length, 3);

  mine.respond(() => ({ status: 200 }));
  other.respond(() => ({ status: 200 }));
  assert.equal(await cli("replay", "--dead", "--webhook", hook.id), `queued 2 dead deliveries of webhook ${hook.id}\n`);
  await waitFor("both dead deliveries to succeed", async () =>
    (await settled(hook.id, 3)).every((row) => row.state === "succeeded"));
  assert.equal(mine.requests.length, 5, "the two dead deliveries only, not the one that had succeeded");
  const { rows: others } = await h.db.pool.query<{ state: string }>(
    "select state from webhooks.deliveries where webhook_id = $1", [otherHook.id]);
  assert.deepEqual(others.map((row) => row.state), ["dead", "dead", "dead"], "the other webhook's dead deliveries stay dead");
  assert.equal(other.requests.length, 3);

  const { rows } = await h.db.pool.query<{ queued: number }>("select webhooks.replay_dead($1) as queued", [hook.id]);
  assert.equal(rows[0]!.queued, 0, "nothing left to replay");
});

test("replay names a missing delivery; the CLI explains its usage", async () => {
  await assert.rejects(h.db.pool.query("select webhooks.replay(gen_random_uuid())"), /webhooks\.replay: no delivery /);
  await assert.rejects(h.db.pool.query("select webhooks.replay_dead(gen_random_uuid())"), /webhooks\.replay_dead: no webhook /);
  await assert.rejects(cli("replay", "--dead"), (error: Error & { code?: number; stderr?: string }) => {
    assert.equal(error.code, 1);
    assert.match(String(error.stderr), /usage: pg-webhooks replay <delivery-id>/);
    return true;
  });
});
