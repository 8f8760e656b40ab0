import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { REQUEST_ID, signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// The README's error list, over real HTTP against a running daemon. Each refusal is a JSON
// {error, request_id}. A refusal before the sender has shown it holds the secret is counted in
// webhooks.intake_refusals (per minute, integration and reason), not written as an activity row;
// one after it (a signed body that is not a lead) leaves one intake_activity row (outcome refused).

const h = useHarness({ daemon: true });
let org: string;
let integration: { id: string; signing_secret: string };
let port: number;
const base = () => `http://127.0.0.1:${port}`;
const valid = JSON.stringify({ customer_phone: "+15550109999", first_name: "Ada" });
/** What this file's requests should add up to in webhooks.intake_refusals: "<integration or null> <reason>" → count. */
const counted = new Map<string, number>();

h.before(async () => {
  port = (h.daemon.server.address() as AddressInfo).port;
  org = await createOrganization(h.db.pool, "Refusals");
  integration = await createIntegration(h.db.pool, org);
});

/** Asserts the JSON error shape; returns the body. */
async function assertJsonError(response: { status: number; headers: Headers; json(): Promise<unknown> }, status: number): Promise<{ error: string; request_id: string }> {
  assert.equal(response.status, status);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = (await response.json()) as { error: string; request_id: string };
  assert.equal(typeof body.error, "string");
  assert.match(body.request_id, REQUEST_ID);
  return body;
}

/** A refusal before authentication: JSON, no activity row, counted under (integration, reason). Returns the error text. */
async function assertRefused(response: Response, status: number, reason: string, integrationId: string | null = integration.id): Promise<string> {
  const body = await assertJsonError(response, status);
  const { rows } = await h.db.pool.query("select 1 from webhooks.intake_activity where request_id = $1", [body.request_id]);
  assert.deepEqual(rows, [], "no intake_activity row for a request refused before authentication");
  const key = `${integrationId} ${reason}`;
  counted.set(key, (counted.get(key) ?? 0) + 1);
  return body.error;
}

/** A refusal of a signed request: JSON and one intake_activity row with its request id. Returns the error text. */
async function assertRecorded(response: Response, status: number): Promise<string> {
  const body = await assertJsonError(response, status);
  const { rows } = await h.db.pool.query(
    "select integration_id, http_status, outcome, error, event_id from webhooks.intake_activity where request_id = $1",
    [body.request_id],
  );
  assert.deepEqual(rows, [{ integration_id: integration.id, http_status: status, outcome: "refused", error: body.error, event_id: null }]);
  return body.error;
}

async function leadCount(): Promise<number> {
  const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.intake_activity where outcome <> 'refused'");
  return rows[0].n;
}

test("a wrong signature (signed with another secret) is refused with 401", async () => {
  const error = await assertRefused(await signedPost(base(), integration, valid, { signWith: "another-secret-0123456789" }), 401, "invalid_signature");
  assert.match(error, /invalid signature/);
});

test("a missing or malformed x-webhook-signature header is refused with 401", async () => {
  await assertRefused(await signedPost(base(), integration, valid, { omit: ["x-webhook-signature"] }), 401, "invalid_signature");
  await assertRefused(await signedPost(base(), integration, valid, { signatureHeader: "signature=abc" }), 401, "invalid_signature");
  await assertRefused(await signedPost(base(), integration, valid, { signatureHeader: "sha256=" + "0".repeat(64) }), 401, "invalid_signature");
});

test("a timestamp more than 300 s old or ahead is refused with 401, even when correctly signed", async () => {
  const now = Math.floor(Date.now() / 1000);
  assert.match(await assertRefused(await signedPost(base(), integration, valid, { timestamp: String(now - 301) }), 401, "invalid_timestamp"), /300 seconds/);
  await assertRefused(await signedPost(base(), integration, valid, { timestamp: String(now + 400) }), 401, "invalid_timestamp");
});

test("a non-integer or missing timestamp is refused with 401", async () => {
  const now = Math.floor(Date.now() / 1000);
  await assertRefused(await signedPost(base(), integration, valid, { timestamp: `${now}.5` }), 401, "invalid_timestamp");
  await assertRefused(await signedPost(base(), integration, valid, { timestamp: new Date().toISOString() }), 401, "invalid_timestamp");
  await assertRefused(await signedPost(base(), integration, valid, { omit: ["x-webhook-timestamp"] }), 401, "invalid_timestamp");
});

test("an unknown integration id (uuid or not) is refused with 404", async () => {
  const unknown = { id: "00000000-0000-4000-8000-000000000000", signing_secret: integration.signing_secret };
  assert.match(await assertRefused(await signedPost(base(), unknown, valid), 404, "unknown_integration", null), /unknown integration/);
  await assertRefused(await signedPost(base(), { ...unknown, id: "not-a-uuid" }, valid), 404, "unknown_integration", null);
});

test("an inactive integration is refused with 404 even with a valid signature", async () => {
  const inactive = await createIntegration(h.db.pool, org, { name: "Paused", is_active: false });
  assert.match(await assertRefused(await signedPost(base(), inactive, valid), 404, "inactive_integration", inactive.id), /inactive/);
});

test("malformed JSON is 400 with a valid signature, and 401 without one", async () => {
  assert.match(await assertRecorded(await signedPost(base(), integration, "{not json"), 400), /JSON/);
  await assertRefused(await signedPost(base(), integration, "{not json", { signWith: "another-secret-0123456789" }), 401, "invalid_signature");
  await assertRecorded(await signedPost(base(), integration, "[1, 2]"), 400);
});

test("a body without customer_phone is 400 with a valid signature, and 401 without one", async () => {
  const body = JSON.stringify({ first_name: "Ada" });
  assert.match(await assertRecorded(await signedPost(base(), integration, body), 400), /customer_phone/);
  await assertRefused(await signedPost(base(), integration, body, { signWith: "another-secret-0123456789" }), 401, "invalid_signature");
});

test("an idempotency-key outside [A-Za-z0-9_-]{1,200} (or none) is refused with 400, though signed over it", async () => {
  for (const key of ["has.dot", "x".repeat(201), "spa ce"]) {
    assert.match(await assertRefused(await signedPost(base(), integration, valid, { key }), 400, "invalid_idempotency_key"), /idempotency-key/);
  }
  await assertRefused(await signedPost(base(), integration, valid, { omit: ["idempotency-key"] }), 400, "invalid_idempotency_key");
  assert.equal(await leadCount(), 0, "no refusal queued a lead");
});

test("a declared Content-Length over 1 MiB is refused with 413 before the body is read", async () => {
  // Only the headers are sent: the answer cannot depend on reading (or signing) the body.
  const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = http.request(`${base()}/v2/webhook/integration/${integration.id}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(1024 * 1024 + 1) },
    });
    request.on("response", (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => {
        request.destroy();
        resolve({ status: res.statusCode!, body: text });
      });
    });
    request.on("error", reject);
    request.flushHeaders();
  });
  const headers = new Headers({ "content-type": "application/json" });
  await assertRefused({ status: response.status, headers, json: async () => JSON.parse(response.body) } as Response, 413, "body_too_large");
});

test("a streamed (chunked) body passing 1 MiB is refused with 413", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= 2 * 1024 * 1024) return controller.close();
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
  const response = await fetch(`${base()}/v2/webhook/integration/${integration.id}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: stream,
    duplex: "half",
  } as RequestInit);
  await assertRefused(response, 413, "body_too_large");
});

test("a body of exactly 1 MiB is read and checked (here: 401 for its bad signature), not refused as too large", async () => {
  const body = JSON.stringify({ customer_phone: "+15550100000", pad: "" }).slice(0, -2);
  const exact = body + "x".repeat(1024 * 1024 - body.length - 2) + '"}';
  assert.equal(Buffer.byteLength(exact), 1024 * 1024);
  await assertRefused(await signedPost(base(), integration, exact, { signWith: "another-secret-0123456789" }), 401, "invalid_signature");
});

test("GET and PUT on the intake path answer 405 with Allow: POST", async () => {
  const url = `${base()}/v2/webhook/integration/${integration.id}`;
  const get = await fetch(url);
  assert.equal(get.headers.get("allow"), "POST");
  await assertRefused(get, 405, "method_not_allowed");
  await assertRefused(await fetch(url, { method: "PUT", body: valid }), 405, "method_not_allowed");
});

test("the retired v1 path answers 410 with JSON pointing to the v2 path", async () => {
  const response = await fetch(`${base()}/webhook/integration/${integration.id}`, { method: "POST", body: valid });
  assert.equal(response.status, 410);
  const body = (await response.json()) as { error: string; request_id: string; use: string };
  assert.match(body.error, /2026-06-30/);
  assert.match(body.error, /\/v2\/webhook\/integration\/:id/);
  assert.equal(body.use, `/v2/webhook/integration/${integration.id}`);
  assert.match(body.request_id, REQUEST_ID);
  counted.set(`${integration.id} retired_endpoint`, (counted.get(`${integration.id} retired_endpoint`) ?? 0) + 1);
});

test("every refusal above that came before authentication is counted in webhooks.intake_refusals by integration and reason", async () => {
  const expected = Object.fromEntries([...counted].sort());
  const actual = await waitFor("the daemon's next write of its counts", async () => {
    const { rows } = await h.db.pool.query<{ key: string; count: number }>(
      "select coalesce(integration_id::text, 'null') || ' ' || reason as key, sum(count)::int as count from webhooks.intake_refusals group by 1 order by 1");
    const seen = Object.fromEntries(rows.map((row) => [row.key, row.count]));
    return JSON.stringify(seen) === JSON.stringify(expected) ? seen : undefined;
  });
  assert.deepEqual(actual, expected);
  const { rows } = await h.db.pool.query(
    "select distinct organization_id, http_status, reason from webhooks.intake_refusals where integration_id = $1 order by reason", [integration.id]);
  assert.deepEqual(rows, [
    { organization_id: org, http_status: 413, reason: "body_too_large" },
    { organization_id: org, http_status: 400, reason: "invalid_idempotency_key" },
    { organization_id: org, http_status: 401, reason: "invalid_signature" },
    { organization_id: org, http_status: 401, reason: "invalid_timestamp" },
    { organization_id: org, http_status: 405, reason: "method_not_allowed" },
    { organization_id: org, http_status: 410, reason: "retired_endpoint" },
  ]);
});
