import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { startHttpServers } from "../../src/http/server.js";
import { createLogger } from "../../src/logger.js";
import { useHarness } from "../support/harness.js";

const h = useHarness({ daemon: true });
const base = () => `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;

test("/healthz answers 200 once the daemon runs", async () => {
  const response = await fetch(`${base()}/healthz`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: "ok" });
});

test("/healthz answers 503 with the reason while the daemon is not ready", async () => {
  const status = { status: "starting", reason: "waiting for the migration lock held by pid 1" } as const;
  const options = { port: 0, host: "127.0.0.1", maxConnections: 10, readTimeoutMs: 1000, metricsListener: undefined, demoEcho: false };
  const servers = await startHttpServers(options, { status: () => status, metrics: async () => "" }, createLogger("silent"));
  try {
    const response = await fetch(`http://127.0.0.1:${(servers.server.address() as AddressInfo).port}/healthz`);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), status);
  } finally {
    await servers.close();
  }
});

test("/metrics exposes the outbox backlog, the pending deliveries and attempts by outcome in Prometheus text", async () => {
  await h.db.pool.query("insert into webhooks.outbox (organization_id, event_type, data) values (gen_random_uuid(), 'contact.created', '{}')");
  const response = await fetch(`${base()}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  const text = await response.text();
  assert.match(text, /^pg_webhooks_outbox_events \d+$/m);
  assert.match(text, /^# TYPE pg_webhooks_deliveries_pending gauge$/m);
  assert.match(text, /^pg_webhooks_attempts_total\{outcome="success"\} \d+$/m);
  assert.match(text, /^pg_webhooks_oldest_pending_seconds \d+(\.\d+)?$/m);
  assert.match(text, /^# TYPE pg_webhooks_attempt_duration_seconds histogram$/m);
  assert.match(text, /^# TYPE pg_webhooks_delivery_lag_seconds histogram$/m);
});

test("unknown paths answer 404 and wrong methods 405, as JSON", async () => {
  const missing = await fetch(`${base()}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(await missing.json(), { error: "not found" });
  const wrong = await fetch(`${base()}/healthz`, { method: "POST" });
  assert.equal(wrong.status, 405);
});
