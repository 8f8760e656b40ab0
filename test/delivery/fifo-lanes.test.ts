import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// Ordered delivery lanes (README "Ordered delivery"), under real concurrency: writers racing on
// the same rows, an endpoint that fails at random, two daemons, one of them killed with SIGKILL.

const h = useHarness();

const WRITERS = 4;
const CONTACTS = 50;
const ROUNDS = 20;

/** The counter a contact's update carries (custom_fields.n, incremented by every update). */
function counterOf(request: ReceivedRequest): { contact: string; n: number; event: string } {
  const body = JSON.parse(request.body) as { id: string; data: { id: string; custom_fields: { n: number } } };
  return { contact: body.data.id, n: body.data.custom_fields.n, event: body.id };
}

test("4 writers × 50 contacts × 20 updates, 20 % of attempts failing, two daemons and a kill -9: each contact's received counters are 1, 2, 3, … in order, no gaps", async (t) => {
  const succeeded: ReceivedRequest[] = [];
  const receiver = await h.startReceiver((request) => {
    if (Math.random() < 0.2) return { status: 500, body: "random failure" };
    succeeded.push(request);
    return { status: 200, body: "ok" };
  });
  const org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, {
    organizationId: org, url: receiver.url, events: ["contact.updated"], ordering: "fifo",
    max_retries: 25, retry_base_seconds: 1, max_in_flight: 100,
  });
  const { rows: contacts } = await h.db.pool.query<{ id: string }>(
    "insert into contacts (organization_id, first_name) select $1, 'c' || i from generate_series(1, $2) i returning id", [org, CONTACTS]);

  const env = { WEBHOOKS_CONCURRENCY: "32" };
  const first = await h.spawnDaemon(env);
  await h.spawnDaemon(env);

  // Each writer updates every contact ROUNDS times, in its own random order: the same rows, at once.
  let updates = 0;
  const writers = Array.from({ length: WRITERS }, async () => {
    const client = new pg.Client({ connectionString: h.db.url });
    await client.connect();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const order = contacts.map((c) => c.id).sort(() => Math.random() - 0.5);
        for (const id of order) {
          await client.query(
            `update contacts set custom_fields = jsonb_set(custom_fields, '{n}', to_jsonb(coalesce((custom_fields->>'n')::int, 0) + 1))
              where id = $1`, [id]);
          updates++;
        }
      }
    } finally {
      await client.end();
    }
  });

  await waitFor("half the updates written and deliveries under way", () => updates >= (WRITERS * CONTACTS * ROUNDS) / 2 && succeeded.length > 100, 120_000);
  await first.kill("SIGKILL");
  t.diagnostic(`killed one daemon after ${updates} updates and ${succeeded.length} successful receipts`);
  await h.spawnDaemon(env);
  await Promise.all(writers);

  const total = WRITERS * CONTACTS * ROUNDS;
  await waitFor(`all ${total} deliveries succeeded`, async () => {
    const { rows } = await h.db.pool.query<{ n: number }>("select count(*)::int as n from webhooks.deliveries where state = 'succeeded'");
    return rows[0]!.n === total;
  }, 240_000);

  // At least once: an attempt the killed daemon made may arrive twice. A receiver deduplicates by
  // the event's id; the first arrival of each event is what counts.
  const seen = new Set<string>();
  const byContact = new Map<string, number[]>();
  for (const request of succeeded) {
    const { contact, n, event } = counterOf(request);
    if (seen.has(event)) continue;
    seen.add(event);
    byContact.set(contact, [...(byContact.get(contact) ?? []), n]);
  }
  assert.equal(seen.size, total, "every update's event received");
  const expected = Array.from({ length: WRITERS * ROUNDS }, (_, i) => i + 1);
  for (const { id } of contacts) assert.deepEqual(byContact.get(id), expected, `contact ${id}: its counters in commit order`);
  t.diagnostic(`${succeeded.length} successful receipts (${succeeded.length - total} repeated), ${receiver.requests.length} requests in all`);
});
