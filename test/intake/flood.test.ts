import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { Daemon } from "../../src/daemon.js";
import { createOrganization } from "../support/fixtures.js";
import { heldRequest, type RawAnswer } from "../support/held-request.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { REQUEST_ID, signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// Unauthenticated senders cannot make the daemon hold memory or connections: the integration is
// checked before a byte of the body is read, bodies being read share one memory budget, and
// headers and bodies that do not arrive in time are cut off.

const MiB = 1024 * 1024;
const h = useHarness({ daemon: true });
let org: string;
let integration: { id: string; signing_secret: string };

h.before(async () => {
  org = await createOrganization(h.db.pool, "Flooded");
  integration = await createIntegration(h.db.pool, org);
});

const portOf = (daemon: Daemon) => (daemon.server.address() as AddressInfo).port;
const intakePath = (id: string) => `/v2/webhook/integration/${id}`;
const lead = () => JSON.stringify({ customer_phone: `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}` });

function assertJsonError(answer: RawAnswer, status: number, what: string): { error: string; request_id: string } {
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer)}`);
  assert.match(answer.headers["content-type"] ?? "", /^application\/json/, what);
  const body = JSON.parse(answer.body) as { error: string; request_id: string };
  assert.equal(typeof body.error, "string", what);
  assert.match(body.request_id, REQUEST_ID, what);
  return body;
}

async function bodyBytesInFlight(daemon: Daemon): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${portOf(daemon)}/metrics`)).text();
  const value = /^pg_webhooks_intake_body_bytes_in_flight (\d+)$/m.exec(text)?.[1];
  assert.ok(value !== undefined, "pg_webhooks_intake_body_bytes_in_flight is on /metrics");
  return Number(value);
}

test("200 connections holding 1 MiB − 1 byte bodies for unknown or inactive integrations are answered 404 unread, memory stays flat, and a signed lead still gets its 202", async () => {
  const inactive = await createIntegration(h.db.pool, org, { name: "Off", is_active: false });
  const port = portOf(h.daemon);
  const body = Buffer.alloc(MiB - 1, 0x20);
  const ids = (i: number) => [`not-a-uuid-${i}`, randomUUID(), inactive.id, randomUUID()][i % 4]!;
  const baseline = process.memoryUsage().rss;
  let peak = 0;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss - baseline));
  const sampler = setInterval(sample, 5);

  // Content-Length 1 MiB (the most a lead may be; the last 4 declare 8 MiB), 1 MiB − 1 byte sent, then held.
  const flood = Array.from({ length: 200 }, (_, i) => heldRequest(port, {
    path: intakePath(ids(i)),
    headers: { "content-type": "application/json", "content-length": String(i >= 196 ? 8 * MiB : MiB) },
    body,
  }));
  try {
    const accepted = await signedPost(`http://127.0.0.1:${port}`, integration, lead());
    assert.equal(accepted.status, 202, "a signed lead during the flood");
    // Wait for every answer; before the fix the bodies were buffered and the requests held, so stop
    // waiting once memory shows it.
    let answered = false;
    void Promise.all(flood.map((request) => request.answer)).then(() => (answered = true));
    const deadline = Date.now() + 60_000;
    while (!answered && peak < 100 * MiB && Date.now() < deadline) await delay(20);
    sample();
    assert.ok(peak < 100 * MiB, `the daemon's resident memory grew by ${Math.round(peak / MiB)} MiB`);
    const answers = await Promise.all(flood.map((request) => request.answer));
    answers.forEach((answer, i) => {
      const error = assertJsonError(answer, 404, `flood request ${i} (${ids(i)})`);
      assert.match(error.error, i % 4 === 2 ? /inactive integration/ : /unknown integration/);
      assert.equal(answer.headers.connection, "close", "the connection is closed instead of reading the body");
    });
  } finally {
    clearInterval(sampler);
    flood.forEach((request) => request.close());
  }
});

test("past WEBHOOKS_INTAKE_BODY_MEMORY_MB a body for a real integration is refused 503 with Retry-After, unread; a body that stalls is cut off with 408; then leads flow again", async () => {
  const daemon = await h.startDaemon({ WEBHOOKS_INTAKE_BODY_MEMORY_MB: "4", WEBHOOKS_HTTP_READ_TIMEOUT_MS: "5000" });
  const port = portOf(daemon);
  const stalled = (n: number) => Array.from({ length: n }, () => heldRequest(port, {
    path: intakePath(integration.id),
    headers: { "content-type": "application/json", "content-length": String(MiB) },
    body: '{"customer_phone":',
  }));
  const holders = stalled(4);
  const refused = [];
  try {
    await waitFor("4 MiB of bodies being read", async () => (await bodyBytesInFlight(daemon)) === 4 * MiB);
    refused.push(...stalled(3));
    for (const [i, request] of refused.entries()) {
      const answer = await request.answer;
      assertJsonError(answer, 503, `over-budget request ${i}`);
      assert.match(answer.headers["retry-after"] ?? "", /^\d+$/, "Retry-After in seconds");
    }
    for (const [i, request] of holders.entries()) {
      const error = assertJsonError(await request.answer, 408, `stalled request ${i}`);
      assert.match(error.error, /body/);
    }
  } finally {
    [...holders, ...refused].forEach((request) => request.close());
  }
  await waitFor("the budget released", async () => (await bodyBytesInFlight(daemon)) === 0);
  assert.equal((await signedPost(`http://127.0.0.1:${port}`, integration, lead())).status, 202);
});

test("past WEBHOOKS_HTTP_MAX_CONNECTIONS a new connection is closed at once; connections that never finish their headers are closed with a JSON 408", async () => {
  const daemon = await h.startDaemon({ WEBHOOKS_HTTP_MAX_CONNECTIONS: "20", WEBHOOKS_HTTP_READ_TIMEOUT_MS: "2000" });
  const port = portOf(daemon);
  const idle = Array.from({ length: 20 }, (_, i) => heldRequest(port, i % 2 ? { head: false } : {
    path: intakePath(integration.id),
    headers: { "content-type": "application/json" },
    endHead: false,
  }));
  try {
    await Promise.all(idle.map((request) => request.connected));
    const extra = heldRequest(port, { method: "GET", path: "/healthz" });
    const dropped = await extra.answer;
    assert.equal(dropped.status, null, `the 21st connection was served: ${JSON.stringify(dropped)}`);
    for (const [i, request] of idle.entries()) assertJsonError(await request.answer, 408, `idle connection ${i}`);
  } finally {
    idle.forEach((request) => request.close());
  }
  const health = await waitFor("the daemon serving again", () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0));
  assert.equal(health, 200);
  assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), /^pg_webhooks_http_connections_dropped_total 1$/m);
});
