/**
 * One webhook_logs row per attempt, across a crash too: the attempts a daemon was making when it
 * was killed with SIGKILL are logged as interrupted when another daemon recovers their deliveries
 * (src/delivery/release-claims-statement.ts), and then made again.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization, createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

const h = useHarness();

/** A receiver that holds every request open without answering while `holding`, and answers 200 once it is not. */
async function startHoldingReceiver() {
  const state = { holding: true, requests: [] as { deliveryId: string }[] };
  const held: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      state.requests.push({ deliveryId: String(req.headers["x-webhook-delivery-id"]) });
      if (state.holding) held.push(res);
      else res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  h.defer(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    state,
    answer() {
      state.holding = false;
      for (const res of held.splice(0)) res.destroy();
    },
  };
}

test("attempts cut off by kill -9 are logged when their deliveries are recovered: every request the receiver saw has a log row, attempt numbers are unique, every delivery is delivered", async (t) => {
  const org = await createOrganization(h.db.pool);
  const receiver = await startHoldingReceiver();
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], timeout_seconds: 60 });
  const first = await h.spawnDaemon({ WEBHOOKS_CONCURRENCY: "64" });
  const { rows: [registered] } = await h.db.pool.query<{ id: string }>("select id from webhooks.daemons where pid = $1", [first.child.pid]);
  await h.db.pool.query("insert into contacts (organization_id, first_name) select $1, 'burst ' || n from generate_series(1, 100) n", [org]);

  await waitFor("a burst of requests held open by the receiver", () => receiver.state.requests.length >= 30);
  await first.kill("SIGKILL");
  const cutOff = receiver.state.requests.length;
  t.diagnostic(`killed with ${cutOff} requests in flight`);
  receiver.answer();
  await h.spawnDaemon();

  await waitFor("every delivery to succeed, none left queued", async () => {
    const { rows } = await h.db.pool.query<{ succeeded: number; queued: number }>(
      `select (select count(*) from webhooks.deliveries where webhook_id = $1 and state = 'succeeded')::int as succeeded,
              (select count(*) from webhooks.delivery_queue where webhook_id = $1)::int as queued`,
      [hook.id],
    );
    return rows[0]!.succeeded === 100 && rows[0]!.queued === 0;
  }, 60_000);

  const rows = (await logs(h.db.pool)).filter((row) => row.webhook_id === hook.id);
  const requests = new Map<string, number>();
  for (const { deliveryId } of receiver.state.requests) requests.set(deliveryId, (requests.get(deliveryId) ?? 0) + 1);
  const attempts = new Map<string, typeof rows>();
  for (const row of rows) attempts.set(row.delivery_id, [...(attempts.get(row.delivery_id) ?? []), row]);
  assert.equal(attempts.size, 100, "every delivery has log rows");

  for (const [deliveryId, sent] of requests) {
    const logged = attempts.get(deliveryId) ?? [];
    assert.ok(logged.length >= sent, `delivery ${deliveryId}: ${sent} requests received, ${logged.length} attempts logged`);
  }
  for (const [deliveryId, logged] of attempts) {
    assert.deepEqual(
      logged.map((row) => row.attempt).sort((a, b) => a - b),
      logged.map((_, index) => index + 1),
      `delivery ${deliveryId}: attempts numbered 1, 2, … once each`,
    );
    const last = logged.reduce((a, b) => (a.attempt > b.attempt ? a : b));
    assert.equal(last.success, true, `delivery ${deliveryId}: its last attempt succeeded`);
  }

  const interrupted = rows.filter((row) => row.error?.startsWith("interrupted:"));
  assert.ok(interrupted.length >= cutOff, `${interrupted.length} attempts logged as interrupted, ${cutOff} cut off`);
  for (const row of interrupted) {
    assert.equal(row.success, false);
    assert.equal(row.response_status, null);
    assert.equal(
      row.error,
      `interrupted: the daemon sending this attempt stopped (${registered!.id}) before recording its outcome; the receiver may or may not have got it`,
    );
    assert.equal(row.url, receiver.url);
    assert.ok(row.request_body?.includes('"contact.created"'), "the body it was sending");
  }
  const { rows: counted } = await h.db.pool.query<{ mismatched: number }>(
    `select count(*)::int as mismatched from webhooks.deliveries d
      where d.webhook_id = $1 and d.attempts <> (select max(attempt) from webhooks.webhook_logs l where l.delivery_id = d.id)`,
    [hook.id],
  );
  assert.equal(counted[0]!.mismatched, 0, "each delivery counts the interrupted attempt");
});
