import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { createAttempt, REDACTED_HEADER_VALUE } from "../../src/delivery/attempt.js";
import type { AttemptRecord, DeliveryContext } from "../../src/delivery/delivery-store.js";
import type { HttpResult } from "../../src/delivery/send.js";
import { createLogger } from "../../src/logger.js";

// One attempt on its own: sign → send → decide → record, with a sender that answers as told and a
// store that keeps what it is asked to record. What reaches Postgres and a real receiver is tested
// end to end elsewhere (payload-and-headers, retries, redacted-headers); this pins the decisions.

const delivery = (overrides: Partial<DeliveryContext> = {}): DeliveryContext => ({
  id: "9a8b7c6d-0000-4000-8000-000000000001",
  attempts: 0,
  attemptsBeforeReplay: 0,
  organizationId: "00000000-0000-4000-8000-0000000000aa",
  eventId: "evt_1",
  eventType: "contact.created",
  body: '{"id":"evt_1","event":"contact.created"}',
  occurredAt: new Date(Date.now() - 250),
  notSentReason: null,
  webhookId: "00000000-0000-4000-8000-0000000000bb",
  targeted: false,
  url: "https://receiver.example/hook",
  secrets: ["a shared secret of some length"],
  signatureScheme: "hmac-hex",
  signatureHeader: "X-Signature",
  isActive: true,
  maxRetries: 3,
  retryBaseSeconds: 1,
  timeoutSeconds: 5,
  headers: { Authorization: "Bearer t0ken" },
  partitionKeys: { delivery: "2026-01-15T10:29:59.123456Z", event: "2026-01-15T10:29:59.123456Z" },
  ...overrides,
});

function harness(answer: (request: { url: string; headers: Record<string, string>; body: string; timeoutMs: number }) => HttpResult | Promise<HttpResult>) {
  const sent: { url: string; headers: Record<string, string>; body: string; timeoutMs: number }[] = [];
  const records: AttemptRecord[] = [];
  let refuseRecords = 0;
  const attempt = createAttempt({
    store: {
      record: async (record) => {
        if (refuseRecords > 0) {
          refuseRecords -= 1;
          throw Object.assign(new Error("value too long for type"), { code: "22001" });
        }
        records.push(structuredClone(record));
      },
    },
    sender: {
      send: async (request) => {
        sent.push(request);
        return answer(request);
      },
    },
    logger: createLogger("silent"),
    random: () => 0.5,
  });
  return { attempt, sent, records, refuseNextRecords: (n: number) => (refuseRecords = n) };
}

const ok: HttpResult = { status: 200, headers: { "content-type": "text/plain" }, body: "ok", error: null, durationMs: 12 };

test("a 2xx is recorded as succeeded, with the log row of what was sent and the endpoint up", async () => {
  const h = harness(() => ok);
  await h.attempt(delivery());
  assert.equal(h.sent.length, 1);
  const [request] = h.sent;
  assert.equal(request!.body, delivery().body);
  assert.equal(request!.timeoutMs, 5000);
  assert.equal(request!.headers["x-signature"] ?? request!.headers["X-Signature"], createHmac("sha256", "a shared secret of some length").update(delivery().body).digest("hex"));
  const [record] = h.records;
  assert.equal(record!.state, "succeeded");
  assert.equal(record!.attempt, 1);
  assert.equal(record!.endpoint, "up");
  assert.equal(record!.log!.success, true);
  assert.equal(record!.log!.response_status, 200);
  assert.equal(record!.log!.attempt, 1);
});

test("the receiver gets a static header's value; the log row only its name", async () => {
  const h = harness(() => ok);
  await h.attempt(delivery());
  assert.equal(h.sent[0]!.headers.Authorization, "Bearer t0ken");
  assert.equal(h.records[0]!.log!.request_headers.Authorization, REDACTED_HEADER_VALUE);
  assert.equal(JSON.stringify(h.records).includes("t0ken"), false);
});

test("a 500 schedules a retry after the backoff, Retry-After when it asks for longer", async () => {
  const before = Date.now();
  const h = harness(() => ({ status: 503, headers: { "retry-after": "30" }, body: "busy", error: null, durationMs: 3 }));
  await h.attempt(delivery());
  const [record] = h.records;
  assert.equal(record!.state, "failed");
  assert.equal(record!.endpoint, "down");
  const waitMs = record!.retryAt!.getTime() - before;
  assert.ok(waitMs >= 29_000 && waitMs <= 31_000, `waits for Retry-After: ${waitMs} ms`);
});

test("the last allowed attempt that fails makes the delivery dead", async () => {
  const h = harness(() => ({ status: 500, headers: {}, body: "", error: null, durationMs: 3 }));
  await h.attempt(delivery({ attempts: 3, maxRetries: 3 }));
  assert.equal(h.records[0]!.state, "dead");
  assert.equal(h.records[0]!.attempt, 4);
  assert.equal(h.records[0]!.retryAt, null);
});

test("410 Gone marks the endpoint gone", async () => {
  const h = harness(() => ({ status: 410, headers: {}, body: "", error: null, durationMs: 3 }));
  await h.attempt(delivery());
  assert.equal(h.records[0]!.endpoint, "gone");
});

test("an inactive endpoint is not sent to: the delivery is dead, with no log row", async () => {
  const h = harness(() => ok);
  await h.attempt(delivery({ isActive: false }));
  assert.equal(h.sent.length, 0);
  assert.deepEqual({ state: h.records[0]!.state, log: h.records[0]!.log, lastError: h.records[0]!.lastError }, { state: "dead", log: null, lastError: "endpoint is inactive" });
});

test("an event too large to send is not sent: one failed attempt logged with the reason, and dead", async () => {
  const h = harness(() => ok);
  await h.attempt(delivery({ notSentReason: "payload of 300000 bytes exceeds 256 KiB" }));
  assert.equal(h.sent.length, 0);
  assert.equal(h.records[0]!.state, "dead");
  assert.match(String(h.records[0]!.log!.error), /256 KiB/);
});

test("a record refused for its contents is recorded again with less detail, then without a log row", async () => {
  const h = harness(() => ok);
  h.refuseNextRecords(2);
  await h.attempt(delivery());
  assert.equal(h.records.length, 1, "recorded once it was accepted");
  assert.equal(h.records[0]!.state, "succeeded");
  assert.equal(h.records[0]!.log, null, "after two refusals: the outcome without a log row");
});

test("the exchange is over for a success before it is recorded, for a failure only after", async () => {
  const order: string[] = [];
  for (const status of [200, 500]) {
    const attempt = createAttempt({
      store: { record: async () => void order.push(`recorded ${status}`) },
      sender: { send: async () => ({ status, headers: {}, body: "", error: null, durationMs: 1 }) },
      logger: createLogger("silent"),
    });
    await attempt(delivery(), () => order.push(`slot freed ${status}`));
  }
  assert.deepEqual(order, ["slot freed 200", "recorded 200", "recorded 500", "slot freed 500"]);
});

test("each decided attempt is reported once for the metrics, a success with its event's write → 2xx lag", async () => {
  const reports: { outcome: string; durationMs: number; lagMs?: number }[] = [];
  for (const answer of [ok, { status: 500, headers: {}, body: "", error: null, durationMs: 7 }]) {
    const attempt = createAttempt({
      store: { record: async () => undefined },
      sender: { send: async () => answer },
      logger: createLogger("silent"),
      counted: (report) => reports.push(report),
    });
    await attempt(delivery());
  }
  await createAttempt({ store: { record: async () => undefined }, sender: { send: async () => ok }, logger: createLogger("silent"), counted: (report) => reports.push(report) })(
    delivery({ notSentReason: "payload of 300000 bytes exceeds 256 KiB" }),
  );
  assert.deepEqual(reports.map((r) => [r.outcome, r.durationMs]), [["success", 12], ["failed", 7], ["refused", 0]]);
  assert.ok(reports[0]!.lagMs! >= 250 && reports[0]!.lagMs! < 60_000, `lag ${reports[0]!.lagMs} ms from the event's write`);
  assert.equal(reports[1]!.lagMs, undefined, "no lag for a failure");
});
