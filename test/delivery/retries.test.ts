import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createOrganization, createWebhook, type LogRow } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest, Responder } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// Failed attempts are logged, retried with backoff (retry_base_seconds 1, doubling, ±20 % jitter)
// and end in `dead`. The tests run concurrently: each has its own organization and receiver path,
// and most of their time is spent waiting out backoffs.

const responders = new Map<string, Responder>();
const h = useHarness({
  receiver: (request) => (responders.get(request.path) ?? (() => ({ status: 200, body: "ok" })))(request),
  daemon: true,
});

function urlFor(path: string): string {
  const url = new URL(h.receiver.url);
  url.pathname = path;
  return url.toString();
}

/** One organization, one endpoint at its own path answered by `responder`, and one contact insert. */
async function deliverOneEvent(responder: Responder, values: Record<string, unknown>) {
  const org = await createOrganization(h.db.pool);
  const path = `/hook/${org}`;
  responders.set(path, responder);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: urlFor(path), events: ["contact.created"], ...values });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
  const requests = (): ReceivedRequest[] => h.receiver.requests.filter((r) => r.path === path);
  return { org, hook, path, requests };
}

async function deliveryOf(webhookId: string) {
  const { rows } = await h.db.pool.query<{ id: string; state: string; attempts: number; next_attempt_at: Date | null; last_error: string | null }>(
    "select id, state, attempts, next_attempt_at, last_error from webhooks.deliveries where webhook_id = $1",
    [webhookId],
  );
  return rows[0];
}

async function logsOf(webhookId: string): Promise<LogRow[]> {
  const { rows } = await h.db.pool.query<LogRow>("select * from webhooks.webhook_logs where webhook_id = $1 order by attempt", [webhookId]);
  return rows;
}

const finished = (webhookId: string, state: "succeeded" | "dead") =>
  waitFor(`the delivery to be ${state}`, async () => {
    const delivery = await deliveryOf(webhookId);
    return delivery?.state === state ? delivery : undefined;
  }, 20_000);

describe("retries", { concurrency: true }, () => {
  test("failed attempts are retried with doubling backoff until one succeeds, each attempt a log row", async () => {
    let calls = 0;
    const { hook, requests } = await deliverOneEvent(() => (++calls <= 2 ? { status: 500, body: "boom" } : { status: 200, body: "ok" }), {
      max_retries: 5,
      retry_base_seconds: 1,
    });

    const delivery = await finished(hook.id, "succeeded");
    assert.equal(delivery.attempts, 3);
    const rows = await logsOf(hook.id);
    assert.deepEqual(
      rows.map((r) => [r.attempt, r.response_status, r.success]),
      [[1, 500, false], [2, 500, false], [3, 200, true]],
    );
    assert.equal(rows[0]!.response_body, "boom");
    assert.match(String(rows[0]!.error), /500/);
    assert.ok(rows.every((r) => r.delivery_id === delivery.id));

    const [first, second, third] = requests();
    assert.equal(requests().length, 3);
    // Backoff 1 s then 2 s, each at least 80 % of that (jitter is ±20 %).
    assert.ok(second!.receivedAt - first!.receivedAt >= 800, `second attempt ${second!.receivedAt - first!.receivedAt} ms after the first`);
    assert.ok(third!.receivedAt - second!.receivedAt >= 1600, `third attempt ${third!.receivedAt - second!.receivedAt} ms after the second`);
  });

  test("every retry sends the same payload id, delivery id and body", async () => {
    let calls = 0;
    const { hook, requests } = await deliverOneEvent(() => (++calls <= 1 ? { status: 503 } : { status: 204 }), { retry_base_seconds: 1 });

    await finished(hook.id, "succeeded");
    const [first, second] = requests();
    assert.equal(requests().length, 2);
    assert.equal(second!.headers["webhook-id"], first!.headers["webhook-id"]);
    assert.equal(JSON.parse(second!.body).id, first!.headers["webhook-id"]);
    assert.equal(second!.headers["x-webhook-delivery-id"], first!.headers["x-webhook-delivery-id"]);
    assert.equal(second!.body, first!.body);
  });

  test("an endpoint that always fails gets the first attempt plus max_retries, then the delivery is dead", async () => {
    const { hook, requests } = await deliverOneEvent(() => ({ status: 500, body: "down" }), { max_retries: 2, retry_base_seconds: 1 });

    const delivery = await finished(hook.id, "dead");
    assert.equal(delivery.attempts, 3);
    assert.equal(delivery.next_attempt_at, null, "nothing scheduled");
    assert.match(String(delivery.last_error), /500/);
    const rows = await logsOf(hook.id);
    assert.deepEqual(
      rows.map((r) => [r.attempt, r.success]),
      [[1, false], [2, false], [3, false]],
    );
    await waitFor("the dead delivery has left the queue", async () => {
      const { rows } = await h.db.pool.query("select 1 from webhooks.delivery_queue where delivery_id = $1", [delivery.id]);
      return rows.length === 0;
    });
    // Out of the queue, a dead delivery is never attempted again: three requests were all there was.
    assert.equal(requests().length, 3, "no 4th request");
  });

  test("a redirect is a failed attempt logged with its Location, and is not followed", async () => {
    const elsewhere = `/elsewhere/${Math.random().toString(36).slice(2)}`;
    const { hook } = await deliverOneEvent(() => ({ status: 302, headers: { location: urlFor(elsewhere) } }), { max_retries: 0 });

    await finished(hook.id, "dead");
    const [row, ...more] = await logsOf(hook.id);
    assert.equal(more.length, 0);
    assert.equal(row!.success, false);
    assert.equal(row!.response_status, 302);
    assert.ok(String(row!.error).includes(urlFor(elsewhere)), `error names the Location: ${row!.error}`);
    assert.equal(h.receiver.requests.filter((r) => r.path === elsewhere).length, 0, "the Location target received nothing");
  });

  test("a response body over 16 KiB is stored as its first 16384 bytes", async () => {
    const body = "0123456789abcdef".repeat(2048); // 32 KiB
    const { hook } = await deliverOneEvent(() => ({ status: 200, body }), {});

    await finished(hook.id, "succeeded");
    const [row] = await logsOf(hook.id);
    assert.equal(row!.response_body, body.slice(0, 16384));
  });

  test("a multi-byte response body over 16 KiB is cut to at most 16384 bytes without a broken character", async () => {
    const body = "€".repeat(10_000); // 3 bytes each: 16384 falls inside a character
    const { hook } = await deliverOneEvent(() => ({ status: 200, body }), {});

    await finished(hook.id, "succeeded");
    const { rows } = await h.db.pool.query<{ response_body: string; bytes: number }>(
      "select response_body, octet_length(response_body) as bytes from webhooks.webhook_logs where webhook_id = $1",
      [hook.id],
    );
    assert.ok(rows[0]!.bytes <= 16384, `${rows[0]!.bytes} bytes stored`);
    assert.ok(rows[0]!.bytes > 16384 - 3, `${rows[0]!.bytes} bytes stored`);
    assert.ok(body.startsWith(rows[0]!.response_body), "a prefix of the body received");
  });
});
