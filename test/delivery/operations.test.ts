import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// The operational promises of the README's "Configuration" section: webhooks.send_test reaches one
// endpoint, and an event over 256 KiB is never sent but logged as a failed attempt with the reason.
// Absence is asserted without sleeping: fan-out creates every delivery of an event in one
// transaction, and a delivery that is dead and out of webhooks.delivery_queue is never attempted.

const h = useHarness({ daemon: true });

async function receiver(): Promise<Receiver> {
  return h.startReceiver();
}

test("send_test reaches only the endpoint it names, even when another endpoint subscribes to everything", async () => {
  const org = await createOrganization(h.db.pool);
  const tested = await receiver();
  const other = await receiver();
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: tested.url, events: ["contact.created"] });
  const everything = await createWebhook(h.db.pool, { organizationId: org, url: other.url, events: ["*"] });

  await h.db.pool.query("select webhooks.send_test($1)", [hook.id]);
  const request = await waitFor("the test POST", () => tested.requests[0]);
  assert.equal(request.headers["x-webhook-event"], "webhook.test");
  const payload = JSON.parse(request.body) as { event: string; organization_id: string; data: { webhook_id: string } };
  assert.equal(payload.event, "webhook.test");
  assert.equal(payload.organization_id, org);
  assert.equal(payload.data.webhook_id, hook.id);

  // The test event's deliveries were all created with the one the tested endpoint received.
  const { rows } = await h.db.pool.query("select webhook_id, state from webhooks.deliveries");
  assert.deepEqual(rows.map((row: { webhook_id: string }) => row.webhook_id), [hook.id], "one delivery, to the tested endpoint");
  assert.equal(rows.some((row: { webhook_id: string }) => row.webhook_id === everything.id), false);
  assert.equal(other.requests.length, 0, "the {*} endpoint received nothing");
  await waitFor("the test delivery to succeed", async () => {
    const { rows: done } = await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state = 'succeeded'", [hook.id]);
    return done.length === 1;
  });
  assert.equal(tested.requests.length, 1, "the tested endpoint received the test once");
});

test("an event whose body exceeds 256 KiB is not sent: the delivery is dead after one failed attempt logged with the reason", async () => {
  const org = await createOrganization(h.db.pool);
  const target = await receiver();
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: target.url, events: ["contact.created"], max_retries: 5 });
  const customFields = { notes: "x".repeat(300 * 1024) };
  await h.db.pool.query("insert into contacts (organization_id, first_name, custom_fields) values ($1, 'Big', $2)", [
    org,
    JSON.stringify(customFields),
  ]);

  const delivery = await waitFor("the delivery to be dead", async () => {
    const { rows } = await h.db.pool.query<{ id: string; attempts: number; last_error: string }>(
      "select id, attempts, last_error from webhooks.deliveries where webhook_id = $1 and state = 'dead'",
      [hook.id],
    );
    return rows[0];
  });
  assert.equal(delivery.attempts, 1, "no retry: retrying cannot shrink the event");
  assert.match(delivery.last_error, /256 KiB/);

  const attempts = (await logs(h.db.pool)).filter((log) => log.webhook_id === hook.id);
  assert.equal(attempts.length, 1);
  const [log] = attempts;
  assert.equal(log!.success, false);
  assert.equal(log!.attempt, 1);
  assert.equal(log!.response_status, null);
  assert.match(String(log!.error), /256 KiB/);
  assert.match(String(log!.error), /payload of \d+ bytes/, "the error gives the payload's size");
  assert.equal(log!.request_body, null, "nothing was sent, so no body is logged");
  const { rows: events } = await h.db.pool.query<{ bytes: number; not_sent_reason: string }>(
    "select octet_length(body) as bytes, not_sent_reason from webhooks.events where id = $1",
    [log!.event_id],
  );
  assert.ok(events[0]!.bytes < 1024, "the stored event keeps only the row's id, not 300 KiB");
  assert.match(events[0]!.not_sent_reason, /256 KiB/);

  const { rows: queued } = await h.db.pool.query("select 1 from webhooks.delivery_queue where delivery_id in (select id from webhooks.deliveries where webhook_id = $1)", [hook.id]);
  assert.equal(queued.length, 0, "nothing left to attempt");
  assert.equal(target.requests.length, 0, "the receiver got nothing");
});
