import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Daemon } from "../../src/daemon.js";
import { HttpSender } from "../../src/delivery/send.js";
import { startTestDaemon } from "../support/daemon.js";
import { createOrganization, createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

/** A receiver on every loopback address (dual-stack `::`, else 127.0.0.1) that counts what reaches it. */
interface Canary {
  port: number;
  hits: string[];
  close(): Promise<void>;
}

async function startCanary(): Promise<Canary> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.headers.host} ${req.url}`);
    req.resume();
    res.end("reached");
  });
  await new Promise<void>((resolve) => {
    server.once("error", () => server.listen(0, "127.0.0.1", resolve));
    server.listen({ port: 0, host: "::", ipv6Only: false }, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const h = useHarness();
let canary: Canary;

h.before(async () => {
  canary = await startCanary();
  h.defer(() => canary.close());
});

/** Inserts one contact (every `*` webhook gets a delivery) and waits until every delivery has ended. */
async function deliverOneEvent(org: string, count: number) {
  await h.db.pool.query("insert into contacts (organization_id, first_name, email) values ($1, 'Eve', 'eve@example.com')", [org]);
  return waitFor(`${count} deliveries to end`, async () => {
    const { rows } = await h.db.pool.query<{ webhook_id: string; state: string; attempts: number; last_error: string | null }>(
      "select webhook_id, state, attempts, last_error from webhooks.deliveries where organization_id = $1",
      [org],
    );
    return rows.length === count && rows.every((row) => row.state === "dead" || row.state === "succeeded") ? rows : undefined;
  });
}

describe("WEBHOOKS_ALLOW_PRIVATE_TARGETS=false, WEBHOOKS_ALLOW_HTTP=true", () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startTestDaemon(h.db.url, { WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false", WEBHOOKS_ALLOW_HTTP: "true" });
  });
  after(async () => {
    await daemon?.stop();
  });

  const spellings = (port: number) => [
    `http://127.0.0.1:${port}/`,
    `http://2130706433:${port}/`,
    `http://0x7f.1:${port}/`,
    `http://0177.0.0.1:${port}/`,
    `http://127.1:${port}/`,
    `http://[::1]:${port}/`,
    `http://[::ffff:127.0.0.1]:${port}/`,
    `http://localhost:${port}/`,
  ];

  test("every spelling of loopback reaches the canary when the guard is off (control)", async () => {
    const unguarded = new HttpSender({ allowPrivateTargets: true, allowHttp: true });
    try {
      for (const url of spellings(canary.port)) {
        const result = await unguarded.send({ url, headers: {}, body: "{}", timeoutMs: 5000 });
        // [::1] and [::ffff:…] reach it only where IPv6 loopback exists; the rest always do.
        if (!url.includes("[")) assert.equal(result.status, 200, `${url}: ${result.error}`);
      }
    } finally {
      await unguarded.close();
    }
    assert.ok(canary.hits.length >= 6, canary.hits.join("\n"));
    canary.hits.length = 0;
  });

  test("no spelling of loopback receives a request: each delivery is dead after one refused attempt, logged with the reason", async () => {
    const org = await createOrganization(h.db.pool, "Guarded");
    const hooks = new Map<string, string>();
    for (const url of spellings(canary.port)) {
      const hook = await createWebhook(h.db.pool, { organizationId: org, url, max_retries: 10 });
      hooks.set(hook.id, url);
    }
    const deliveries = await deliverOneEvent(org, hooks.size);

    assert.deepEqual(canary.hits, [], "the canary saw a request");
    for (const delivery of deliveries) {
      const url = hooks.get(delivery.webhook_id)!;
      assert.equal(delivery.state, "dead", url);
      assert.equal(delivery.attempts, 1, `${url} was retried`);
      assert.match(delivery.last_error!, /^refused: .*(loopback|IPv4-mapped form of 127\.0\.0\.1).*\(WEBHOOKS_ALLOW_PRIVATE_TARGETS=false\)$/, url);
    }
    const rows = (await logs(h.db.pool)).filter((row) => row.organization_id === org);
    assert.equal(rows.length, hooks.size, "one log row per delivery");
    for (const row of rows) {
      assert.equal(row.success, false);
      assert.equal(row.response_status, null);
      assert.match(row.error!, /^refused: /, row.url);
    }
    const byUrl = new Map(rows.map((row) => [row.url, row.error]));
    const port = canary.port;
    assert.equal(byUrl.get(`http://127.0.0.1:${port}/`), "refused: 127.0.0.1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)");
    assert.equal(byUrl.get(`http://2130706433:${port}/`), "refused: 127.0.0.1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)");
    assert.equal(byUrl.get(`http://0x7f.1:${port}/`), "refused: 127.0.0.1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)");
    assert.equal(byUrl.get(`http://[::1]:${port}/`), "refused: ::1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)");
    assert.match(byUrl.get(`http://localhost:${port}/`)!, /^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
  });

  test("metadata and private addresses are refused the same way", async () => {
    const org = await createOrganization(h.db.pool, "Metadata");
    for (const url of ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://10.0.0.1/", "http://100.100.100.200/"]) {
      await createWebhook(h.db.pool, { organizationId: org, url, max_retries: 10 });
    }
    const deliveries = await deliverOneEvent(org, 4);
    for (const delivery of deliveries) {
      assert.equal(delivery.state, "dead");
      assert.equal(delivery.attempts, 1);
      assert.match(delivery.last_error!, /^refused: .* is a (cloud metadata|private) address \(WEBHOOKS_ALLOW_PRIVATE_TARGETS=false\)$/);
    }
  });

  test("a URL with credentials is refused by the configuration itself", async () => {
    const org = await createOrganization(h.db.pool, "Credentials");
    await assert.rejects(
      createWebhook(h.db.pool, { organizationId: org, url: `http://user@127.0.0.1:${canary.port}/` }),
      /credentials/,
    );
    assert.deepEqual(canary.hits, []);
  });
});

describe("WEBHOOKS_ALLOW_PRIVATE_TARGETS=false, WEBHOOKS_ALLOW_HTTP=false", () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startTestDaemon(h.db.url, { WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false", WEBHOOKS_ALLOW_HTTP: "false" });
  });
  after(async () => {
    await daemon?.stop();
  });

  test("plain http to a public-looking host is refused as plain http, and https to loopback as loopback", async () => {
    const org = await createOrganization(h.db.pool, "HttpsOnly");
    const plain = await createWebhook(h.db.pool, { organizationId: org, url: "http://hooks.example.com/crm", max_retries: 10 });
    const loopback = await createWebhook(h.db.pool, { organizationId: org, url: `https://127.0.0.1:${canary.port}/`, max_retries: 10 });
    const deliveries = await deliverOneEvent(org, 2);

    const byHook = new Map(deliveries.map((delivery) => [delivery.webhook_id, delivery]));
    assert.equal(byHook.get(plain.id)!.state, "dead");
    assert.equal(byHook.get(plain.id)!.attempts, 1);
    assert.equal(byHook.get(plain.id)!.last_error, "refused: plain http:// target; only https:// is delivered to (WEBHOOKS_ALLOW_HTTP=false)");
    assert.equal(byHook.get(loopback.id)!.state, "dead");
    assert.equal(byHook.get(loopback.id)!.last_error, "refused: 127.0.0.1 is a loopback address (WEBHOOKS_ALLOW_PRIVATE_TARGETS=false)");
    const rows = (await logs(h.db.pool)).filter((row) => row.organization_id === org);
    assert.equal(rows.length, 2);
    assert.ok(rows.every((row) => !row.success && row.error!.startsWith("refused: ")));
    assert.deepEqual(canary.hits, []);
  });
});
