import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// The rules of a fifo lane (README "Ordered delivery"): what waits, what moves on, where a replay
// goes, and what an endpoint's change of ordering does to what is queued.

const h = useHarness({ daemon: true });

/** A contact's update's counter (custom_fields.n), and the contact. */
function update(request: ReceivedRequest): { contact: string; n: number } {
  const body = JSON.parse(request.body) as { data: { id: string; custom_fields: { n?: number } } };
  return { contact: body.data.id, n: body.data.custom_fields.n ?? 0 };
}

async function contact(org: string): Promise<string> {
  return (await h.db.pool.query<{ id: string }>("insert into contacts (organization_id, first_name) values ($1, 'x') returning id", [org])).rows[0]!.id;
}

/** One update of the contact: its counter goes up by one. */
async function bump(id: string): Promise<void> {
  await h.db.pool.query(
    "update contacts set custom_fields = jsonb_set(custom_fields, '{n}', to_jsonb(coalesce((custom_fields->>'n')::int, 0) + 1)) where id = $1", [id]);
}

async function queueOf(webhookId: string) {
  const { rows } = await h.db.pool.query<{ lane: string | null; waiting: boolean; claimed: boolean }>(
    `select lane, due_at = 'infinity' as waiting, claimed_by is not null as claimed
       from webhooks.delivery_queue where webhook_id = $1 order by lane_position`, [webhookId]);
  return rows;
}

test("ordering is none or fifo; anything else is refused naming the column", async () => {
  const org = await createOrganization(h.db.pool);
  await assert.rejects(createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/h", ordering: "lifo" }),
    (error: { column?: string; message: string }) => error.column === "ordering" && /none or fifo/.test(error.message));
  const { id } = await createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/h" });
  const { rows } = await h.db.pool.query("select ordering from webhooks.webhook_configurations where id = $1", [id]);
  assert.deepEqual(rows, [{ ordering: "none" }], "none by default");
});

test("a resource whose delivery keeps failing holds up its own lane only: the endpoint's other resources go on, in order", async () => {
  const org = await createOrganization(h.db.pool);
  const stuck = await contact(org);
  const receiver = await h.startReceiver((request) => (update(request).contact === stuck ? { status: 503 } : { status: 200 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.updated"], ordering: "fifo", max_retries: 20 });
  const free = await contact(org);
  for (let i = 0; i < 3; i++) {
    await bump(stuck);
    await bump(free);
  }
  await waitFor("the free contact's three updates", () => receiver.requests.filter((r) => update(r).contact === free).length === 3);
  assert.deepEqual(receiver.requests.filter((r) => update(r).contact === free).map((r) => update(r).n), [1, 2, 3]);
  const tried = new Set(receiver.requests.filter((r) => update(r).contact === stuck).map((r) => update(r).n));
  assert.deepEqual([...tried], [1], "only the stuck lane's first delivery was attempted (again and again)");
  const queue = (await queueOf(hook.id)).filter((row) => row.lane === stuck);
  assert.equal(queue.length, 3);
  assert.deepEqual(queue.slice(1).map((row) => row.waiting), [true, true], "the rest of its lane waits, out of the claims' way");
});

test("a dead delivery lets its lane move on; replayed, it goes behind the deliveries of its lane still queued", async () => {
  const org = await createOrganization(h.db.pool);
  const id = await contact(org);
  let failFirst = true;
  const receiver = await h.startReceiver((request) => {
    if (failFirst && update(request).n === 1) return { status: 500 };
    return { status: 200 };
  });
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.updated"], ordering: "fifo", max_retries: 0 });
  await bump(id);
  await bump(id);
  const dead = await waitFor("the first update's delivery dead", async () =>
    (await h.db.pool.query<{ id: string }>("select id from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hook.id])).rows[0]?.id);
  await waitFor("the second delivered after it", () => receiver.requests.some((r) => update(r).n === 2));
  failFirst = false;

  await h.db.pool.query("update webhooks.webhook_configurations set paused = true where id = $1", [hook.id]);
  await bump(id);
  await bump(id);
  // The first of them is due once the second update's delivery has ended (the record statement
  // hands over, or the heartbeat does when the two crossed).
  await waitFor("two more queued, the first of them due", async () =>
    JSON.stringify((await queueOf(hook.id)).map((row) => row.waiting)) === "[false,true]");
  assert.equal((await h.db.pool.query<{ status: string }>("select webhooks.replay($1) as status", [dead])).rows[0]!.status, "queued");
  assert.deepEqual((await queueOf(hook.id)).map((row) => row.waiting), [false, true, true], "the replay waits behind both");
  const before = receiver.requests.length;
  await h.db.pool.query("update webhooks.webhook_configurations set paused = false where id = $1", [hook.id]);
  await waitFor("all three sent", () => receiver.requests.length === before + 3);
  assert.deepEqual(receiver.requests.slice(before).map((r) => update(r).n), [3, 4, 1], "3 and 4 first, then the replayed 1");
});

test("switching to fifo with deliveries queued puts them in their lanes in commit order; switching back makes every one due", async () => {
  const org = await createOrganization(h.db.pool);
  const receiver = await h.startReceiver(() => ({ status: 200, delayMs: 20 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.updated"], paused: true });
  const [a, b] = [await contact(org), await contact(org)];
  for (let i = 0; i < 4; i++) {
    await bump(a);
    await bump(b);
  }
  await waitFor("eight queued", async () => (await queueOf(hook.id)).length === 8);
  assert.ok((await queueOf(hook.id)).every((row) => row.lane === null && !row.waiting));

  await h.db.pool.query("update webhooks.webhook_configurations set ordering = 'fifo' where id = $1", [hook.id]);
  const laned = await queueOf(hook.id);
  assert.deepEqual(laned.map((row) => row.lane), [a, b, a, b, a, b, a, b]);
  assert.equal(laned.filter((row) => !row.waiting).length, 2, "one due per lane");

  await h.db.pool.query("update webhooks.webhook_configurations set ordering = 'none' where id = $1", [hook.id]);
  assert.ok((await queueOf(hook.id)).every((row) => row.lane === null && !row.waiting), "none: every one due as before");

  await h.db.pool.query("update webhooks.webhook_configurations set ordering = 'fifo', paused = false where id = $1", [hook.id]);
  await waitFor("all eight sent", () => receiver.requests.length === 8);
  for (const id of [a, b]) {
    assert.deepEqual(receiver.requests.filter((r) => update(r).contact === id).map((r) => update(r).n), [1, 2, 3, 4], `contact ${id}`);
  }
});

test("a lane whose first delivery waits with nothing ahead of it (the fan-out/record race) is made due by the heartbeat", async () => {
  const org = await createOrganization(h.db.pool);
  const receiver = await h.startReceiver();
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.updated"], ordering: "fifo", paused: true });
  const id = await contact(org);
  await bump(id);
  await bump(id);
  await waitFor("two queued", async () => (await queueOf(hook.id)).length === 2);
  // As if the head had ended while the second was being queued behind it, neither seeing the other.
  await h.db.pool.query(
    "delete from webhooks.delivery_queue where delivery_id = (select delivery_id from webhooks.delivery_queue where webhook_id = $1 order by lane_position limit 1)",
    [hook.id]);
  assert.deepEqual((await queueOf(hook.id)).map((row) => row.waiting), [true]);
  await h.db.pool.query("update webhooks.webhook_configurations set paused = false where id = $1", [hook.id]);
  await waitFor("the stranded delivery sent", () => receiver.requests.some((r) => update(r).n === 2));
});

test("with the circuit breaker: an endpoint down long enough to open its circuit gets each lane in order once it is back", async () => {
  const org = await createOrganization(h.db.pool);
  let failures = 0;
  const receiver = await h.startReceiver(() => (failures++ < 12 ? { status: 503 } : { status: 200 }));
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.updated"], ordering: "fifo", max_retries: 20 });
  const ids = [await contact(org), await contact(org), await contact(org)];
  for (let i = 0; i < 4; i++) for (const id of ids) await bump(id);
  await waitFor("the circuit opened", async () =>
    (await h.db.pool.query("select 1 from webhooks.endpoint_states where webhook_id = $1 and circuit_trips > 0", [hook.id])).rowCount, 30_000);
  await waitFor("every update delivered", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state = 'succeeded'", [hook.id])).rowCount === 12, 60_000);
  const succeeded = receiver.requests.slice(12);
  for (const id of ids) {
    assert.deepEqual(succeeded.filter((r) => update(r).contact === id).map((r) => update(r).n), [1, 2, 3, 4], `contact ${id}`);
  }
});
