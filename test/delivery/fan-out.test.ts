import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// Fan-out decides which endpoints get an event. Fan-out is one transaction (every delivery of an
// event is created at once), so once the expected deliveries have succeeded, an endpoint without
// a delivery row will never be called: absence is asserted without sleeping.

const h = useHarness({ receiver: true, daemon: true });

interface Endpoint {
  id: string;
  path: string;
}

/** An endpoint on the shared receiver, told apart by its own path. */
async function endpoint(organizationId: string, values: Record<string, unknown> = {}): Promise<Endpoint> {
  const path = `/hook/${randomUUID()}`;
  const url = new URL(h.receiver.url);
  url.pathname = path;
  const hook = await createWebhook(h.db.pool, { organizationId, url: url.toString(), ...values });
  return { id: hook.id, path };
}

const received = (hook: Endpoint): ReceivedRequest[] => h.receiver.requests.filter((r) => r.path === hook.path);
const eventsReceived = (hook: Endpoint): string[] =>
  received(hook)
    .map((r) => String(r.headers["x-webhook-event"]))
    .sort();

async function insertContact(organizationId: string, values: Record<string, unknown> = {}): Promise<void> {
  const columns = ["organization_id", ...Object.keys(values)];
  await h.db.pool.query(
    `insert into contacts (${columns.join(", ")}) values (${columns.map((_, i) => `$${i + 1}`).join(", ")})`,
    [organizationId, ...Object.values(values)],
  );
}

/** Webhook ids with a delivery in `organizationId`, once every one of them has succeeded. */
async function settledDeliveries(organizationId: string, expected: number): Promise<string[]> {
  const rows = await waitFor(`${expected} succeeded deliveries`, async () => {
    const { rows } = await h.db.pool.query<{ webhook_id: string; state: string }>(
      "select webhook_id, state from webhooks.deliveries where organization_id = $1",
      [organizationId],
    );
    return rows.length >= expected && rows.every((r) => r.state === "succeeded") ? rows : undefined;
  });
  return rows.map((r) => r.webhook_id).sort();
}

test("an endpoint of another organization never receives the event", async () => {
  const orgA = await createOrganization(h.db.pool, "A");
  const orgB = await createOrganization(h.db.pool, "B");
  const hookA = await endpoint(orgA);
  const hookB = await endpoint(orgB);

  await insertContact(orgA, { first_name: "Ada" });

  const request = await waitFor("org A's delivery", () => received(hookA)[0]);
  assert.equal(JSON.parse(request.body).organization_id, orgA);
  assert.deepEqual(await settledDeliveries(orgA, 1), [hookA.id]);
  const { rows } = await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1", [hookB.id]);
  assert.equal(rows.length, 0, "no delivery was created for org B's endpoint");
  assert.equal(received(hookB).length, 0);
});

test("an endpoint receives only the event types it subscribes to; {*} receives all", async () => {
  const org = await createOrganization(h.db.pool);
  const contacts = await endpoint(org, { events: ["contact.created"] });
  const deals = await endpoint(org, { events: ["deal.created", "deal.assigned"] });
  const updates = await endpoint(org, { events: ["contact.updated"] });
  const everything = await endpoint(org, { events: ["*"] });

  await insertContact(org, { first_name: "Ada" });
  await h.db.pool.query("insert into deals (organization_id, title, assigned_to) values ($1, 'Big one', $2)", [org, randomUUID()]);

  // contact.created → 2 endpoints; deal.created and deal.assigned → 2 endpoints each.
  const deliveredTo = await settledDeliveries(org, 6);
  assert.deepEqual(eventsReceived(everything), ["contact.created", "deal.assigned", "deal.created"]);
  assert.deepEqual(eventsReceived(contacts), ["contact.created"]);
  assert.deepEqual(eventsReceived(deals), ["deal.assigned", "deal.created"]);
  assert.equal(deliveredTo.includes(updates.id), false, "no delivery for an unsubscribed type");
  assert.deepEqual(eventsReceived(updates), []);
});

test("an inactive endpoint receives nothing while an active one of the same organization does", async () => {
  const org = await createOrganization(h.db.pool);
  const active = await endpoint(org);
  const inactive = await endpoint(org, { is_active: false });

  await insertContact(org, { first_name: "Ada" });

  assert.deepEqual(await settledDeliveries(org, 1), [active.id]);
  assert.deepEqual(eventsReceived(active), ["contact.created"]);
  assert.deepEqual(eventsReceived(inactive), []);
});

test("an endpoint with a filter receives only events whose payload contains the filter", async () => {
  const org = await createOrganization(h.db.pool);
  const paris = await endpoint(org, { filter: { data: { city: "Paris" } } });
  const parisUpdates = await endpoint(org, { filter: { event: "contact.updated", data: { city: "Paris" } } });
  const all = await endpoint(org);

  await insertContact(org, { first_name: "Ada", city: "Paris" });
  await insertContact(org, { first_name: "Bob", city: "Lyon" });
  await insertContact(org, { first_name: "Cy" });

  // 3 events to `all`, 1 (Ada) to `paris`, none to `parisUpdates` (they are all contact.created).
  const deliveredTo = await settledDeliveries(org, 4);
  assert.equal(received(all).length, 3);
  const names = received(paris).map((r) => JSON.parse(r.body).data.first_name as string);
  assert.deepEqual(names, ["Ada"]);
  assert.equal(deliveredTo.includes(parisUpdates.id), false);
  assert.equal(received(parisUpdates).length, 0);
});

test("one event to three endpoints makes three deliveries of the same payload, each with its own delivery id", async () => {
  const org = await createOrganization(h.db.pool);
  const hooks = [await endpoint(org), await endpoint(org), await endpoint(org)];

  await insertContact(org, { first_name: "Ada" });

  assert.deepEqual(await settledDeliveries(org, 3), hooks.map((hook) => hook.id).sort());
  const requests = hooks.map((hook) => {
    const all = received(hook);
    assert.equal(all.length, 1, "each endpoint is called once");
    return all[0]!;
  });
  const { rows: deliveries } = await h.db.pool.query<{ id: string; webhook_id: string; event_id: string }>(
    "select id, webhook_id, event_id from webhooks.deliveries where organization_id = $1",
    [org],
  );
  const eventId = deliveries[0]!.event_id;
  assert.ok(deliveries.every((d) => d.event_id === eventId), "one event");

  for (const [i, request] of requests.entries()) {
    assert.equal(request.body, requests[0]!.body, "the same bytes to every endpoint");
    assert.equal(JSON.parse(request.body).id, eventId);
    assert.equal(request.headers["webhook-id"], eventId);
    const delivery = deliveries.find((d) => d.webhook_id === hooks[i]!.id)!;
    assert.equal(request.headers["x-webhook-delivery-id"], delivery.id, "the delivery id of this endpoint");
  }
  const deliveryIds = new Set(requests.map((r) => r.headers["x-webhook-delivery-id"]));
  assert.equal(deliveryIds.size, 3, "a different X-Webhook-Delivery-Id per endpoint");
});
