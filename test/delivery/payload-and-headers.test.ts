import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { packageRoot } from "../../src/package-info.js";
import { organizationWithEndpoint, type LogRow } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// What an endpoint receives (docs/payload.md: the body and every header) and that the log keeps the same bytes.

const h = useHarness({ receiver: true, daemon: true });

const packageVersion = (JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string }).version;

const ownEndpoint = (values: Record<string, unknown> = {}) => organizationWithEndpoint(h.db.pool, h.receiver, values);

async function insertContact(org: string, values: Record<string, unknown>): Promise<string> {
  const columns = ["organization_id", ...Object.keys(values)];
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into contacts (${columns.join(", ")}) values (${columns.map((_, i) => `$${i + 1}`).join(", ")}) returning id`,
    [org, ...Object.values(values)],
  );
  return rows[0]!.id;
}

async function logFor(deliveryId: string): Promise<LogRow> {
  return waitFor("the attempt's log row", async () => {
    const { rows } = await h.db.pool.query<LogRow>("select * from webhooks.webhook_logs where delivery_id = $1", [deliveryId]);
    return rows[0];
  });
}

test("every request carries the documented headers: content type, user agent, event, delivery id, webhook-id, timestamp", async () => {
  const { org, hook, requests } = await ownEndpoint();
  await insertContact(org, { first_name: "Ada" });

  const request = await waitFor("the POST", () => requests()[0]);
  const nowSeconds = Date.now() / 1000;
  const { rows } = await h.db.pool.query<{ id: string; event_id: string }>(
    "select id, event_id from webhooks.deliveries where webhook_id = $1",
    [hook.id],
  );
  assert.equal(rows.length, 1);
  const delivery = rows[0]!;

  assert.equal(request.method, "POST");
  assert.equal(request.headers["content-type"], "application/json");
  assert.equal(request.headers["user-agent"], `pg-webhooks/${packageVersion}`);
  assert.equal(request.headers["x-webhook-event"], "contact.created");
  assert.equal(request.headers["x-webhook-delivery-id"], delivery.id);
  assert.equal(request.headers["webhook-id"], delivery.event_id);
  assert.equal(request.headers["webhook-id"], JSON.parse(request.body).id, "webhook-id is the payload id");
  const timestamp = String(request.headers["webhook-timestamp"]);
  assert.match(timestamp, /^\d+$/, "unix seconds");
  assert.ok(Math.abs(Number(timestamp) - nowSeconds) < 10, `webhook-timestamp ${timestamp} is about now (${nowSeconds})`);
  assert.match(String(request.headers["webhook-signature"]), /^v1,[A-Za-z0-9+/]+={0,2}$/);
});

test("the configuration's static headers are sent with every request and logged by name, their values redacted", async () => {
  const { org, requests } = await ownEndpoint({
    headers: { "X-Tenant": "acme", Authorization: "Bearer static-token" },
  });
  await insertContact(org, { first_name: "Ada" });

  const request = await waitFor("the POST", () => requests()[0]);
  assert.equal(request.headers["x-tenant"], "acme");
  assert.equal(request.headers["authorization"], "Bearer static-token");
  assert.equal(request.headers["content-type"], "application/json", "static headers add to, never replace, the standard ones");
  const log = await logFor(String(request.headers["x-webhook-delivery-id"]));
  const logged = Object.fromEntries(Object.entries(log.request_headers).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(logged["x-tenant"], "[redacted]");
  assert.equal(logged["authorization"], "[redacted]");
});

test("an update's payload has the row after the change and {column: {old, new}} for each changed column", async () => {
  const { org, requests } = await ownEndpoint({ events: ["contact.updated"] });
  const id = await insertContact(org, { first_name: "Ada", city: "Lyon", email: "ada@old.example", phone: "+33 1" });
  await h.db.pool.query("update contacts set city = 'Paris', email = 'ada@new.example' where id = $1", [id]);

  const request = await waitFor("the contact.updated POST", () => requests()[0]);
  assert.equal(request.headers["x-webhook-event"], "contact.updated");
  const payload = JSON.parse(request.body) as {
    id: string;
    event: string;
    timestamp: string;
    organization_id: string;
    data: Record<string, unknown>;
    changes: Record<string, { old: unknown; new: unknown }>;
  };
  assert.deepEqual(Object.keys(payload), ["id", "event", "timestamp", "organization_id", "data", "changes"]);
  assert.match(payload.id, /^evt_[0-9a-f]{32}$/);
  assert.equal(payload.event, "contact.updated");
  assert.equal(payload.organization_id, org);
  assert.equal(new Date(payload.timestamp).toISOString(), payload.timestamp, "ISO 8601 in UTC with milliseconds");
  assert.equal(payload.data.id, id);
  assert.equal(payload.data.city, "Paris");
  assert.equal(payload.data.email, "ada@new.example");
  assert.equal(payload.data.phone, "+33 1", "data is the whole row, unchanged columns included");

  const { updated_at: updatedAt, ...changes } = payload.changes;
  assert.deepEqual(changes, {
    city: { old: "Lyon", new: "Paris" },
    email: { old: "ada@old.example", new: "ada@new.example" },
  });
  if (updatedAt) assert.equal(updatedAt.new, payload.data.updated_at);
});

test("the body received is byte for byte the logged request_body and the event's stored body", async () => {
  const { org, requests } = await ownEndpoint();
  await insertContact(org, {
    first_name: "Zoë",
    last_name: "Ünal-東京 🚀",
    address: 'line "one"\nline \\two\\',
    custom_fields: { note: "€ <tag> & 'quote'", nested: { n: 1.5, empty: null } },
  });

  const request = await waitFor("the POST", () => requests()[0]);
  const log = await logFor(String(request.headers["x-webhook-delivery-id"]));
  const { rows } = await h.db.pool.query<{ body: string }>("select body from webhooks.events where id = $1", [log.event_id]);

  const sent = Buffer.from(request.body, "utf8");
  assert.equal(Number(request.headers["content-length"]), sent.length, "the receiver got every byte");
  assert.ok(sent.equals(Buffer.from(log.request_body ?? "", "utf8")), "request_body is the bytes sent");
  assert.ok(sent.equals(Buffer.from(rows[0]!.body, "utf8")), "the event's body is the bytes sent");
  assert.equal(log.request_headers["webhook-signature"], request.headers["webhook-signature"]);
  const payload = JSON.parse(request.body) as { data: Record<string, unknown> };
  assert.equal(payload.data.last_name, "Ünal-東京 🚀");
  assert.deepEqual(payload.data.custom_fields, { note: "€ <tag> & 'quote'", nested: { n: 1.5, empty: null } });
});
