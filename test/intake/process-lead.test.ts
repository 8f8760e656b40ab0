import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { acceptLead, createIntegration, processLead } from "./support.js";

// webhooks._process_lead as the graphile task will call it (as webhooks_dispatcher).

const h = useHarness({ dispatcher: { poolSize: 10 } });
let org: string;
const pool3 = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"];

h.before(async () => {
  org = await createOrganization(h.db.pool, "Leads");
});

let keys = 0;
async function lead(integration: string, body: Record<string, unknown>): Promise<string> {
  const result = await acceptLead(h.dispatcher.pool, integration, `key-${++keys}`, body);
  assert.equal(result.http_status, 202);
  return result.event_id!;
}

test("phones are normalised: separators dropped, leading + kept, 10 digits become +1", async () => {
  const { rows } = await h.db.pool.query(
    `select webhooks._normalize_phone(p) as n from unnest(array['(555) 010-0199', '+1 555 010 0199', '555.010.0199',
       '+44 20 7946 0958', '15550100199', 'no digits']) with ordinality u(p, i) order by i`,
  );
  assert.deepEqual(rows.map((row) => row.n), ["+15550100199", "+15550100199", "+15550100199", "+442079460958", "+15550100199", null]);
});

test("a lead creates a contact and a deal assigned from the pool, and capture emits their events", async () => {
  const integration = (await createIntegration(h.db.pool, org, { name: "Ads", lead_stage: "qualified", assignee_pool: [pool3[0]] })).id;
  const eventId = await lead(integration, {
    customer_phone: "(555) 010-0199", first_name: "Ada", email: "ada@example.com", campaign: "spring",
  });
  const ids = await processLead(h.dispatcher.pool, eventId);
  assert.ok(ids);
  const { rows: contacts } = await h.db.pool.query("select * from contacts where id = $1", [ids.contact_id]);
  assert.equal(contacts[0].phone, "+15550100199");
  assert.equal(contacts[0].first_name, "Ada");
  assert.equal(contacts[0].assigned_to, pool3[0]);
  assert.deepEqual(contacts[0].custom_fields, { campaign: "spring" });
  const { rows: deals } = await h.db.pool.query("select * from deals where id = $1", [ids.deal_id]);
  assert.deepEqual([deals[0].title, deals[0].stage, deals[0].contact_id, deals[0].assigned_to],
    ["Lead from Ads", "qualified", ids.contact_id, pool3[0]]);
  const { rows: events } = await h.db.pool.query(
    "select event_type from webhooks.outbox where data->>'id' in ($1, $2) order by id", [ids.contact_id, ids.deal_id]);
  assert.deepEqual(events.map((row) => row.event_type), ["contact.created", "contact.assigned", "deal.created", "deal.assigned"]);
  const { rows: activity } = await h.db.pool.query(
    "select outcome, contact_id, deal_id, processed_at is not null as processed from webhooks.intake_activity where event_id = $1 and outcome <> 'duplicate'",
    [eventId]);
  assert.deepEqual(activity, [{ outcome: "processed", contact_id: ids.contact_id, deal_id: ids.deal_id, processed: true }]);

  // The same phone spelt differently updates that contact instead of creating another.
  const second = await processLead(h.dispatcher.pool, await lead(integration, {
    customer_phone: "+1 555 010 0199", last_name: "Lovelace", city: "London", campaign: "summer", referrer: "x",
  }));
  assert.equal(second?.contact_id, ids.contact_id);
  assert.notEqual(second?.deal_id, ids.deal_id, "every lead opens a deal");
  const { rows: after } = await h.db.pool.query("select * from contacts where organization_id = $1 and phone like '+1555010019%'", [org]);
  assert.equal(after.length, 1, "one contact for the phone");
  assert.deepEqual([after[0].first_name, after[0].last_name, after[0].email, after[0].city],
    ["Ada", "Lovelace", "ada@example.com", "London"]);
  assert.deepEqual(after[0].custom_fields, { campaign: "summer", referrer: "x" });
  const { rows: updated } = await h.db.pool.query(
    "select count(*)::int as n from webhooks.outbox where event_type = 'contact.updated' and data->>'id' = $1", [ids.contact_id]);
  assert.equal(updated[0].n, 1);
});

test("processing an event again returns the same ids and changes nothing", async () => {
  const integration = (await createIntegration(h.db.pool, org, { assignee_pool: pool3 })).id;
  const eventId = await lead(integration, { customer_phone: "5550100300" });
  const first = await processLead(h.dispatcher.pool, eventId);
  const count = async () => (await h.db.pool.query(
    `select (select count(*) from contacts)::int as contacts, (select count(*) from deals)::int as deals,
            (select count(*) from webhooks.outbox)::int as outbox,
            (select leads_assigned from webhooks.inbound_integrations where id = $1)::int as turns`, [integration])).rows[0];
  const before = await count();
  assert.deepEqual(await processLead(h.dispatcher.pool, eventId), first);
  assert.deepEqual(await count(), before);
});

test("ten leads processed concurrently are assigned round-robin, each assignee within one of the others", async () => {
  const integration = (await createIntegration(h.db.pool, org, { assignee_pool: pool3 })).id;
  const events = [];
  for (let i = 0; i < 10; i++) events.push(await lead(integration, { customer_phone: `555020${String(i).padStart(4, "0")}` }));
  const results = await Promise.all(events.map((eventId) => processLead(h.dispatcher.pool, eventId)));
  const { rows } = await h.db.pool.query(
    "select assigned_to, count(*)::int as n from deals where id = any($1) group by assigned_to", [results.map((r) => r!.deal_id)]);
  const counts = pool3.map((user) => rows.find((row) => row.assigned_to === user)?.n ?? 0);
  assert.equal(counts.reduce((a, b) => a + b), 10);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `fair: ${counts.join(", ")}`);
});

test("concurrent leads for one new phone create a single contact", async () => {
  const integration = (await createIntegration(h.db.pool, org)).id;
  const events = [];
  for (let i = 0; i < 5; i++) events.push(await lead(integration, { customer_phone: i % 2 ? "(555) 030-0001" : "+15550300001" }));
  // Hold contact inserts (SHARE mode) until all five are inside _process_lead, so they overlap.
  const gate = await h.db.pool.connect();
  let results: Awaited<ReturnType<typeof processLead>>[];
  try {
    await gate.query("begin");
    await gate.query("lock table public.contacts in share mode");
    const calls = Promise.all(events.map((eventId) => processLead(h.dispatcher.pool, eventId)));
    await waitFor("five calls blocked inside _process_lead", async () => (await h.db.pool.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where usename = $1 and wait_event_type = 'Lock'", [h.dispatcher.name],
    )).rows[0]!.n === 5);
    await gate.query("commit");
    results = await calls;
  } finally {
    gate.release();
  }
  assert.equal(new Set(results.map((r) => r!.contact_id)).size, 1);
  const { rows } = await h.db.pool.query("select count(*)::int as n from contacts where phone = '+15550300001'");
  assert.equal(rows[0].n, 1);
});

test("a lead without digits in customer_phone is marked failed, returns nothing and is not retried", async () => {
  const integration = (await createIntegration(h.db.pool, org)).id;
  const eventId = await lead(integration, { customer_phone: "call me" });
  assert.equal(await processLead(h.dispatcher.pool, eventId), undefined);
  const { rows } = await h.db.pool.query("select outcome, error from webhooks.intake_activity where event_id = $1", [eventId]);
  assert.deepEqual(rows, [{ outcome: "failed", error: "customer_phone has no digits" }]);
  assert.equal(await processLead(h.dispatcher.pool, eventId), undefined);
  await assert.rejects(processLead(h.dispatcher.pool, "ev_00000000000000000000000000000000"), /no accepted lead/);
});
