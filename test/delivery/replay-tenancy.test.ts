import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { createEvent, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { asTenant } from "../tenancy/roles.js";

// webhooks.replay and webhooks.replay_dead run as their owner (they write deliveries and queue
// jobs, which the application cannot), so they check the caller's tenant themselves. No daemon
// runs here: a replay is observable as the delivery's state and a queued job.

const h = useHarness({ app: true, dispatcher: true, twoOrganizations: true });
let hookB: string;
let deliveryA: string;
let deliveryB: string;

h.before(async () => {
  const hookA = (await createWebhook(h.db.pool, { organizationId: h.orgA, url: "https://a.example/hook" })).id;
  hookB = (await createWebhook(h.db.pool, { organizationId: h.orgB, url: "https://b.example/hook" })).id;
  deliveryA = await deadDelivery(h.orgA, hookA);
  deliveryB = await deadDelivery(h.orgB, hookB);
});

/** A delivery that has died after 3 attempts, as the daemon leaves it. */
async function deadDelivery(org: string, webhookId: string): Promise<string> {
  const eventId = await createEvent(h.db.pool, org);
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts, last_status, last_error, completed_at)
     values ($1, $2, $3, 'dead', 3, 500, 'HTTP 500', now()) returning id`,
    [org, eventId, webhookId],
  );
  return rows[0]!.id;
}

async function state(deliveryId: string): Promise<{ state: string; jobs: number }> {
  const { rows } = await h.db.pool.query<{ state: string; jobs: number }>(
    `select d.state,
            (select count(*)::int from webhooks.delivery_queue q where q.delivery_id = d.id) as jobs
       from webhooks.deliveries d where d.id = $1`,
    [deliveryId],
  );
  return rows[0]!;
}

function refusedAs(code: string, message: RegExp) {
  return (error: pg.DatabaseError) => {
    assert.equal(error.code, code, `${error.code}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  };
}

test("an application cannot replay another organization's delivery or webhook, and learns nothing about them", async () => {
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.replay($1)", [deliveryB])),
    refusedAs("P0002", /^webhooks\.replay: no delivery /),
  );
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.replay_dead($1)", [hookB])),
    refusedAs("P0002", /^webhooks\.replay_dead: no webhook /),
  );
  assert.deepEqual(await state(deliveryB), { state: "dead", jobs: 0 }, "org B's delivery is untouched");
});

test("an application without an organization for its transaction cannot replay at all", async () => {
  await assert.rejects(
    asTenant(h.app.pool, null, (client) => client.query("select webhooks.replay($1)", [deliveryB])),
    refusedAs("42501", /^webhooks\.replay: no organization set for this transaction/),
  );
  await assert.rejects(
    asTenant(h.app.pool, null, (client) => client.query("select webhooks.replay_dead($1)", [hookB])),
    refusedAs("42501", /^webhooks\.replay_dead: no organization set for this transaction/),
  );
  assert.deepEqual(await state(deliveryB), { state: "dead", jobs: 0 });
});

test("an application sees only its own dead deliveries and replays them: pending again, one job queued", async () => {
  const seen = await asTenant(h.app.pool, h.orgA, (client) => client.query<{ delivery_id: string }>(
    "select delivery_id from webhooks.dead_deliveries"));
  assert.deepEqual(seen.rows.map((row) => row.delivery_id), [deliveryA]);

  await asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.replay($1)", [deliveryA]));
  assert.deepEqual(await state(deliveryA), { state: "pending", jobs: 1 });
  const { rows } = await h.db.pool.query("select attempts, attempts_before_replay, completed_at from webhooks.deliveries where id = $1", [deliveryA]);
  assert.deepEqual(rows, [{ attempts: 3, attempts_before_replay: 3, completed_at: null }], "attempt numbers continue; retries count afresh");
});

test("the daemon's role replays for any organization without setting one", async () => {
  const { rows } = await h.dispatcher.pool.query<{ queued: number }>("select webhooks.replay_dead($1) as queued", [hookB]);
  assert.equal(rows[0]!.queued, 1);
  assert.deepEqual(await state(deliveryB), { state: "pending", jobs: 1 });
});
