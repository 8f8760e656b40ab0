import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import type { Daemon } from "../../src/daemon.js";
import { freePort } from "../support/free-port.js";
import { useHarness } from "../support/harness.js";

// Where the daemon listens and what it serves there: WEBHOOKS_HTTP_HOST binds the HTTP server,
// WEBHOOKS_METRICS_PORT takes /metrics off it onto a listener of its own (127.0.0.1 unless
// WEBHOOKS_METRICS_HOST says otherwise), and /demo/echo exists only for the local demo.
// Linux answers on all of 127.0.0.0/8, so 127.0.0.2 stands for "another interface".

const h = useHarness();

const portOf = (daemon: Daemon) => (daemon.server.address() as AddressInfo).port;

/** The status of GET/POST http://host:port/path, or the connection error's code. */
async function status(host: string, port: number, path: string, method = "GET"): Promise<number | string> {
  try {
    const response = await fetch(`http://${host}:${port}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return String((error as { cause?: { code?: string } }).cause?.code ?? error);
  }
}

test("without WEBHOOKS_HTTP_HOST the HTTP server listens on every interface, as before", async () => {
  const daemon = await h.startDaemon();
  assert.equal(await status("127.0.0.2", portOf(daemon), "/healthz"), 200);
});

test("WEBHOOKS_HTTP_HOST=127.0.0.1 binds the HTTP server to that address only", async () => {
  const daemon = await h.startDaemon({ WEBHOOKS_HTTP_HOST: "127.0.0.1" });
  assert.equal(await status("127.0.0.1", portOf(daemon), "/healthz"), 200);
  assert.equal(await status("127.0.0.2", portOf(daemon), "/healthz"), "ECONNREFUSED");
});

test("WEBHOOKS_METRICS_PORT serves /metrics on a listener of its own on 127.0.0.1, and the public listener answers 404 for it", async () => {
  const metricsPort = await freePort();
  const daemon = await h.startDaemon({ WEBHOOKS_METRICS_PORT: String(metricsPort) });
  const publicMetrics = await fetch(`http://127.0.0.1:${portOf(daemon)}/metrics`);
  assert.equal(publicMetrics.status, 404);
  assert.deepEqual(await publicMetrics.json(), { error: "not found" });
  assert.equal(await status("127.0.0.1", portOf(daemon), "/healthz"), 200, "/healthz stays on the public listener");

  const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^pg_webhooks_outbox_events \d+$/m);
  assert.equal(await status("127.0.0.2", metricsPort, "/metrics"), "ECONNREFUSED", "the metrics listener is on 127.0.0.1 only");
  assert.equal(await status("127.0.0.1", metricsPort, "/v2/webhook/integration/00000000-0000-4000-8000-000000000000", "POST"), 404,
    "the metrics listener serves nothing else");
});

test("WEBHOOKS_METRICS_HOST chooses the metrics listener's address", async () => {
  const metricsPort = await freePort();
  await h.startDaemon({ WEBHOOKS_METRICS_PORT: String(metricsPort), WEBHOOKS_METRICS_HOST: "127.0.0.2" });
  assert.equal(await status("127.0.0.2", metricsPort, "/metrics"), 200);
  assert.equal(await status("127.0.0.1", metricsPort, "/metrics"), "ECONNREFUSED");
});

test("/demo/echo is not served by a bare `pg-webhooks start`; the `npm start` script turns it on for the local demo", async () => {
  const bare = await h.spawnDaemon();
  assert.equal(await status("127.0.0.1", bare.port, "/demo/echo", "POST"), 404);
  const demo = await h.spawnDaemon({}, undefined, { command: "npm start" });
  const echo = await fetch(`http://127.0.0.1:${demo.port}/demo/echo`, { method: "POST", body: "{}", headers: { "x-webhook-event": "contact.created" } });
  assert.equal(echo.status, 200);
  assert.deepEqual(await echo.json(), { received: true, event: "contact.created", bytes: 2 });
});
