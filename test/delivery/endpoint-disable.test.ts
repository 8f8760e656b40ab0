import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// docs/guarantees.md: 410 Gone disables an endpoint; so does failing continuously for longer than
// WEBHOOKS_DISABLE_AFTER_FAILING_HOURS (default 120). The span is not waited out: the tests move
// failing_since back in time, as if the failures had begun days ago.

const h = useHarness({ daemon: true });

async function receiver(status: number): Promise<Receiver> {
  return h.startReceiver(() => ({ status, body: `status ${status}` }));
}

interface EndpointRow {
  is_active: boolean;
  disabled_reason: string | null;
  failing_since: Date | null;
}

async function endpoint(webhookId: string): Promise<EndpointRow> {
  const { rows } = await h.db.pool.query<EndpointRow>(
    "select is_active, disabled_reason, failing_since from webhooks.webhook_configurations where id = $1",
    [webhookId],
  );
  return rows[0]!;
}

async function insertContact(org: string): Promise<string> {
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into contacts (organization_id, first_name) values ($1, 'Ada') returning id",
    [org],
  );
  return rows[0]!.id;
}

/** Waits until the webhook's deliveries number `count` and none is pending or awaiting a retry. */
async function settledDeliveries(webhookId: string, count: number) {
  return waitFor(`${count} settled deliveries`, async () => {
    const { rows } = await h.db.pool.query<{ id: string; state: string; attempts: number; last_error: string | null; event_id: string }>(
      "select id, state, attempts, last_error, event_id from webhooks.deliveries where webhook_id = $1 order by created_at, id",
      [webhookId],
    );
    return rows.length === count && rows.every((row) => row.state === "succeeded" || row.state === "dead") ? rows : undefined;
  });
}

test("410 Gone disables the endpoint with a reason, ends the delivery without retries, and skips its other pending deliveries", async () => {
  const org = await createOrganization(h.db.pool);
  const target = await receiver(500);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: target.url, events: ["contact.created"], max_retries: 5, retry_base_seconds: 2 });

  // The first event fails and is scheduled for a retry about a second later ...
  await insertContact(org);
  await waitFor("the first attempt", () => target.requests.length === 1);
  await waitFor("the retry to be scheduled", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state = 'failed'", [hook.id])).rowCount);
  // ... meanwhile the endpoint answers 410 to a second event.
  target.respond(() => ({ status: 410, body: "gone" }));
  await insertContact(org);

  const [first, second] = await settledDeliveries(hook.id, 2);
  assert.deepEqual(
    { state: second!.state, attempts: second!.attempts, last_error: second!.last_error },
    { state: "dead", attempts: 1, last_error: "HTTP 410 Gone: endpoint disabled" },
    "a 410 is not retried",
  );
  assert.deepEqual(
    { state: first!.state, attempts: first!.attempts, last_error: first!.last_error },
    { state: "dead", attempts: 1, last_error: "endpoint is inactive" },
    "the pending retry of the disabled endpoint is not sent",
  );
  assert.equal(target.requests.length, 2, "nothing was sent after the 410");

  const row = await endpoint(hook.id);
  assert.equal(row.is_active, false);
  assert.match(String(row.disabled_reason), /^HTTP 410 Gone from http:\/\/127\.0\.0\.1:\d+\/hook at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.ok(row.disabled_reason!.includes(target.url), "the reason names the URL");

  const { rows: logs } = await h.db.pool.query<{ attempt: number; response_status: number; success: boolean }>(
    "select attempt, response_status, success from webhooks.webhook_logs where webhook_id = $1 order by id",
    [hook.id],
  );
  assert.deepEqual(logs, [
    { attempt: 1, response_status: 500, success: false },
    { attempt: 1, response_status: 410, success: false },
  ]);

  // A disabled endpoint gets no new deliveries, and its dead ones cannot be replayed until re-activated.
  await insertContact(org);
  await waitFor("the outbox to drain", async () => (await h.db.pool.query("select 1 from webhooks.outbox")).rowCount === 0);
  await assert.rejects(h.db.pool.query("select webhooks.replay($1)", [second!.id]), (error: Error & { code?: string }) => {
    assert.equal(error.code, "55000");
    assert.match(error.message, /webhook .* is inactive \(HTTP 410 Gone from /);
    return true;
  });
  assert.equal((await settledDeliveries(hook.id, 2)).length, 2);
  assert.equal(target.requests.length, 2);
});

test("an endpoint failing for longer than the span is disabled on its next failure; within the span it stays active", async () => {
  const org = await createOrganization(h.db.pool);
  const target = await receiver(503);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: target.url, events: ["contact.created"], max_retries: 0 });
  assert.equal((await endpoint(hook.id)).failing_since, null, "a new endpoint is not failing");

  await insertContact(org);
  await settledDeliveries(hook.id, 1);
  const afterFirstFailure = await endpoint(hook.id);
  assert.equal(afterFirstFailure.is_active, true, "one failure disables nothing");
  assert.ok(afterFirstFailure.failing_since instanceof Date, "the first failure starts the clock");

  // The failures began 119 hours ago: still within the default 120.
  await h.db.pool.query("update webhooks.webhook_configurations set failing_since = now() - interval '119 hours' where id = $1", [hook.id]);
  const since = (await endpoint(hook.id)).failing_since;
  await insertContact(org);
  await settledDeliveries(hook.id, 2);
  const withinSpan = await endpoint(hook.id);
  assert.equal(withinSpan.is_active, true);
  assert.deepEqual(withinSpan.failing_since, since, "further failures keep the start of the run");

  // 121 hours ago: the next failure disables it.
  await h.db.pool.query("update webhooks.webhook_configurations set failing_since = now() - interval '121 hours' where id = $1", [hook.id]);
  await insertContact(org);
  await settledDeliveries(hook.id, 3);
  const disabled = await endpoint(hook.id);
  assert.equal(disabled.is_active, false);
  assert.match(
    String(disabled.disabled_reason),
    /^failing continuously since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(longer than 120 hours\) at http:\/\/127\.0\.0\.1:\d+\/hook; disabled at \d{4}-/,
  );
  assert.equal(target.requests.length, 3);

  // Re-activating clears the reason and the failure clock: one more failure does not disable it again.
  await h.db.pool.query("update webhooks.webhook_configurations set is_active = true where id = $1", [hook.id]);
  assert.deepEqual(await endpoint(hook.id), { is_active: true, disabled_reason: null, failing_since: null });
  await insertContact(org);
  await settledDeliveries(hook.id, 4);
  assert.equal((await endpoint(hook.id)).is_active, true);
  assert.equal(target.requests.length, 4);
});

test("a success resets the failure clock, so an endpoint that recovers is not disabled", async () => {
  const org = await createOrganization(h.db.pool);
  const target = await receiver(200);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: target.url, events: ["contact.created"], max_retries: 0 });
  // As if it had been failing for 200 hours.
  await h.db.pool.query("update webhooks.webhook_configurations set failing_since = now() - interval '200 hours' where id = $1", [hook.id]);

  await insertContact(org);
  const [delivered] = await settledDeliveries(hook.id, 1);
  assert.equal(delivered!.state, "succeeded");
  assert.deepEqual(await endpoint(hook.id), { is_active: true, disabled_reason: null, failing_since: null });

  // Failing again starts a new run now, far from the span.
  target.respond(() => ({ status: 500 }));
  await insertContact(org);
  await settledDeliveries(hook.id, 2);
  const row = await endpoint(hook.id);
  assert.equal(row.is_active, true);
  const { rows } = await h.db.pool.query<{ recent: boolean }>(
    "select failing_since > now() - interval '1 minute' as recent from webhooks.webhook_configurations where id = $1",
    [hook.id],
  );
  assert.equal(rows[0]!.recent, true);
});
