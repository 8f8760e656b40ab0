import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createApiKey } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// The management API's deliveries (README "API and admin page"): lists with filters and cursors,
// one delivery with each attempt's request and response, replay, and recovery of a window.

let failing = true;
const h = useHarness({ receiver: () => ({ status: failing ? 500 : 200, body: failing ? "down" : "ok" }), daemon: true, twoOrganizations: true });

let base = "";
let keyA = "";
let keyB = "";
let hookId = "";

interface Answer {
  status: number;
  body: Record<string, unknown> & { data?: Record<string, unknown>[]; attempts?: Record<string, unknown>[] };
}

async function call(method: string, path: string, key: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Answer["body"]) : {} };
}

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  keyA = await createApiKey(h.db.pool, h.orgA, "A");
  keyB = await createApiKey(h.db.pool, h.orgB, "B");
  // No retries: each delivery dies on its first failed attempt.
  const created = await call("POST", "/api/v1/webhooks", keyA, {
    url: `${h.receiver.url.replace(/\/$/, "")}/deliveries`, events: ["contact.created", "deal.created"], max_retries: 0,
  });
  hookId = String(created.body.id);
  for (const name of ["one", "two", "three"]) {
    await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, $2)", [h.orgA, name]);
  }
  await waitFor("three dead deliveries", async () =>
    (await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hookId])).rowCount === 3);
});

test("deliveries are listed newest first, filtered by status and event type, page by page", async () => {
  const all = await call("GET", `/api/v1/webhooks/${hookId}/deliveries`, keyA);
  assert.equal(all.status, 200);
  assert.equal(all.body.data!.length, 3);
  const created = all.body.data!.map((d) => Date.parse(String(d.created_at)));
  assert.deepEqual(created, [...created].sort((a, b) => b - a), "newest first");
  assert.ok(all.body.data!.every((d) => d.status === "dead" && d.event_type === "contact.created" && d.attempt_count === 1));
  assert.equal((await call("GET", `/api/v1/webhooks/${hookId}/deliveries?status=succeeded`, keyA)).body.data!.length, 0);
  assert.equal((await call("GET", `/api/v1/webhooks/${hookId}/deliveries?event_type=deal.created`, keyA)).body.data!.length, 0);
  assert.equal((await call("GET", "/api/v1/webhooks/deliveries?event_type=contact.created", keyA)).body.data!.length, 3);

  const first = await call("GET", `/api/v1/webhooks/${hookId}/deliveries?limit=2`, keyA);
  const second = await call("GET", `/api/v1/webhooks/${hookId}/deliveries?limit=2&cursor=${String(first.body.next_cursor)}`, keyA);
  assert.deepEqual([...first.body.data!, ...second.body.data!].map((d) => d.id), all.body.data!.map((d) => d.id));
  assert.equal(second.body.next_cursor, null);
  assert.equal((await call("GET", `/api/v1/webhooks/${hookId}/deliveries?status=lost`, keyA)).body.field, "status");
});

test("one delivery comes with each attempt's request and response", async () => {
  const [listed] = (await call("GET", `/api/v1/webhooks/${hookId}/deliveries?limit=1`, keyA)).body.data!;
  const one = await call("GET", `/api/v1/deliveries/${String(listed!.id)}`, keyA);
  assert.equal(one.status, 200);
  assert.equal(one.body.attempts!.length, 1);
  const [attempt] = one.body.attempts!;
  assert.equal(attempt!.response_status, 500);
  assert.equal(attempt!.response_body, "down");
  assert.equal(JSON.parse(String(attempt!.request_body)).event, "contact.created");
  assert.match(String((attempt!.request_headers as Record<string, string>)["webhook-signature"]), /^v1,/);
});

test("replay sends one delivery again; recover sends every dead one of a window; both are 404 for another organization", async () => {
  const { data } = (await call("GET", `/api/v1/webhooks/${hookId}/deliveries`, keyA)).body;
  failing = false;
  assert.equal((await call("POST", `/api/v1/deliveries/${String(data![0]!.id)}/replay`, keyB)).status, 404);
  assert.equal((await call("POST", `/api/v1/webhooks/${hookId}/recover`, keyB, { since: "2000-01-01T00:00:00Z" })).status, 404);

  const replayed = await call("POST", `/api/v1/deliveries/${String(data![0]!.id)}/replay`, keyA);
  assert.deepEqual([replayed.status, replayed.body], [202, { status: "queued" }]);
  await waitFor("the replayed delivery", async () =>
    (await call("GET", `/api/v1/deliveries/${String(data![0]!.id)}`, keyA)).body.status === "succeeded");

  assert.equal((await call("POST", `/api/v1/webhooks/${hookId}/recover`, keyA, { since: "2030-01-01T00:00:00Z", until: "2020-01-01T00:00:00Z" })).status, 400);
  const recovered = await call("POST", `/api/v1/webhooks/${hookId}/recover`, keyA, { since: new Date(Date.now() - 3_600_000).toISOString() });
  assert.deepEqual([recovered.status, recovered.body], [202, { queued: 2 }]);
  await waitFor("every delivery succeeded", async () =>
    (await call("GET", `/api/v1/webhooks/${hookId}/deliveries?status=succeeded`, keyA)).body.data!.length === 3);
  assert.equal((await call("GET", "/api/v1/deliveries/00000000-0000-4000-8000-000000000000", keyA)).status, 404);
});
