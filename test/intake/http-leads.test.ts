import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { REQUEST_ID, signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// Signed leads over real HTTP: 202 → contact + deal → outbound webhooks; duplicates and conflicts.

const h = useHarness({ receiver: true, daemon: true });
let org: string;
let integration: { id: string; signing_secret: string };
let base: string;

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  org = await createOrganization(h.db.pool, "Leads");
  integration = await createIntegration(h.db.pool, org, { name: "Landing page", lead_stage: "qualified" });
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created", "deal.created"] });
});

async function processed(eventId: string): Promise<{ contact_id: string; deal_id: string } | undefined> {
  const { rows } = await h.db.pool.query(
    "select contact_id, deal_id from webhooks.intake_activity where event_id = $1 and outcome = 'processed'",
    [eventId],
  );
  return rows[0];
}

test("a signed lead is answered 202, becomes a contact and a deal, and fires contact.created and deal.created", async () => {
  const body = JSON.stringify({ customer_phone: "(555) 010-2030", first_name: "Grace", email: "grace@example.com", campaign: "spring" });
  const response = await signedPost(base, integration, body, { key: "lead-1" });
  assert.equal(response.status, 202);
  const answer = (await response.json()) as { event_id: string; status: string; request_id: string };
  assert.deepEqual(Object.keys(answer), ["event_id", "status", "request_id"]);
  assert.match(answer.event_id, /^ev_[0-9a-f]{32}$/);
  assert.equal(answer.status, "accepted");
  assert.match(answer.request_id, REQUEST_ID);

  const lead = await waitFor("the lead processed", () => processed(answer.event_id));
  const { rows: contacts } = await h.db.pool.query("select id, first_name, email, phone, custom_fields from contacts where organization_id = $1", [org]);
  assert.deepEqual(contacts, [{ id: lead.contact_id, first_name: "Grace", email: "grace@example.com", phone: "+15550102030", custom_fields: { campaign: "spring" } }]);
  const { rows: deals } = await h.db.pool.query("select id, contact_id, stage, title from deals where organization_id = $1", [org]);
  assert.deepEqual(deals, [{ id: lead.deal_id, contact_id: lead.contact_id, stage: "qualified", title: "Lead from Landing page" }]);

  const events = await waitFor("both outbound webhooks", () => {
    const seen = h.receiver.requests.map((request) => JSON.parse(request.body) as { event: string; data: { id: string } });
    return seen.length >= 2 ? seen : undefined;
  });
  const byType = Object.fromEntries(events.map((event) => [event.event, event.data.id]));
  assert.deepEqual(byType, { "contact.created": lead.contact_id, "deal.created": lead.deal_id });
});

test("the same key and body again within 24 h answers 200 duplicate with the original event id and no second lead", async () => {
  const body = JSON.stringify({ customer_phone: "+15550103040" });
  const first = (await (await signedPost(base, integration, body, { key: "lead-dup" })).json()) as { event_id: string };
  const again = await signedPost(base, integration, body, { key: "lead-dup" });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), { status: "duplicate", event_id: first.event_id });
  await waitFor("the lead processed", () => processed(first.event_id));
  const { rows } = await h.db.pool.query("select count(*)::int as n from contacts where phone = '+15550103040'");
  assert.equal(rows[0].n, 1);
});

test("the same key with another body answers 409 with a JSON error", async () => {
  const first = await signedPost(base, integration, JSON.stringify({ customer_phone: "+15550104050" }), { key: "lead-conflict" });
  assert.equal(first.status, 202);
  const other = await signedPost(base, integration, JSON.stringify({ customer_phone: "+15550104051" }), { key: "lead-conflict" });
  assert.equal(other.status, 409);
  const answer = (await other.json()) as { error: string; request_id: string };
  assert.match(answer.error, /idempotency-key/);
  assert.match(answer.request_id, REQUEST_ID);
  const { rows } = await h.db.pool.query("select outcome, http_status from webhooks.intake_activity where request_id = $1", [answer.request_id]);
  assert.deepEqual(rows, [{ outcome: "conflict", http_status: 409 }]);
});

test("100 concurrent identical requests produce exactly one event id and one lead", async () => {
  const body = JSON.stringify({ customer_phone: "+15550105060", first_name: "Burst" });
  const timestamp = String(Math.floor(Date.now() / 1000));
  const responses = await Promise.all(
    Array.from({ length: 100 }, () => signedPost(base, integration, body, { key: "lead-burst", timestamp })),
  );
  const answers = await Promise.all(responses.map(async (response) => ({ ...((await response.json()) as { event_id: string }), http: response.status })));
  assert.deepEqual(countBy(answers.map((answer) => answer.http)), { 200: 99, 202: 1 });
  const eventIds = new Set(answers.map((answer) => answer.event_id));
  assert.equal(eventIds.size, 1);
  const [eventId] = eventIds;
  await waitFor("the lead processed", () => processed(eventId!));
  const { rows: contacts } = await h.db.pool.query("select id from contacts where phone = '+15550105060'");
  assert.equal(contacts.length, 1);
  const { rows: deals } = await h.db.pool.query("select count(*)::int as n from deals where contact_id = $1", [contacts[0].id]);
  assert.equal(deals[0].n, 1);
});

function countBy(values: number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}
