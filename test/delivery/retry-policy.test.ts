import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decideOutcome } from "../../src/delivery/attempt.js";
import { MAX_RETRY_DELAY_MS, nextRetryDelayMs, parseRetryAfterMs } from "../../src/delivery/retry-policy.js";
import type { HttpResult } from "../../src/delivery/send.js";

const DAY_MS = 24 * 60 * 60 * 1000;

describe("nextRetryDelayMs", () => {
  test("without jitter (random 0.5) the delay is exactly retry_base_seconds * 2^(attempt-1)", () => {
    for (const base of [1, 3, 60]) {
      const delays = [1, 2, 3, 4, 5].map((attempt) => nextRetryDelayMs({ attempt, maxRetries: 5, retryBaseSeconds: base, random: 0.5 }));
      assert.deepEqual(delays, [1, 2, 4, 8, 16].map((factor) => base * factor * 1000));
    }
  });

  test("jitter stays within ±20 % and spans most of that range", () => {
    const seen: number[] = [];
    for (let i = 0; i <= 100; i++) {
      const random = Math.min(i / 100, 0.999999);
      for (const attempt of [1, 4, 9]) {
        const exact = 2 * 1000 * 2 ** (attempt - 1);
        const delay = nextRetryDelayMs({ attempt, maxRetries: 10, retryBaseSeconds: 2, random })!;
        assert.ok(delay >= exact * 0.8 && delay <= exact * 1.2, `attempt ${attempt}, random ${random}: ${delay} vs ${exact}`);
        if (attempt === 4) seen.push(delay / exact);
      }
    }
    assert.ok(Math.min(...seen) <= 0.81 && Math.max(...seen) >= 1.19, "jitter does not spread the delays");
  });

  test("delays are capped at 24 hours, jitter included", () => {
    assert.equal(MAX_RETRY_DELAY_MS, DAY_MS);
    for (const random of [0, 0.5, 0.999999]) {
      const delay = nextRetryDelayMs({ attempt: 25, maxRetries: 25, retryBaseSeconds: 86_400, random })!;
      assert.ok(delay <= DAY_MS && delay >= DAY_MS * 0.8, `random ${random}: ${delay}`);
    }
    assert.equal(nextRetryDelayMs({ attempt: 20, maxRetries: 25, retryBaseSeconds: 1, random: 0.5 }), DAY_MS);
  });

  test("the delivery is dead once attempt exceeds maxRetries (first attempt + maxRetries retries)", () => {
    assert.notEqual(nextRetryDelayMs({ attempt: 5, maxRetries: 5, retryBaseSeconds: 1, random: 0.5 }), undefined);
    assert.equal(nextRetryDelayMs({ attempt: 6, maxRetries: 5, retryBaseSeconds: 1, random: 0.5 }), undefined);
    assert.equal(nextRetryDelayMs({ attempt: 7, maxRetries: 5, retryBaseSeconds: 1, random: 0.5 }), undefined);
  });

  test("maxRetries 0 means dead after the first attempt", () => {
    assert.equal(nextRetryDelayMs({ attempt: 1, maxRetries: 0, retryBaseSeconds: 1, random: 0.5 }), undefined);
  });
});

describe("decideOutcome", () => {
  const now = Date.parse("2026-01-15T10:30:00.000Z");
  const delivery = {
    id: "d0c5d9e7-0000-4000-8000-000000000001", maxRetries: 3, retryBaseSeconds: 2, body: '{"id":"evt_1"}',
    partitionKeys: { delivery: "2026-01-15T10:29:59.123456Z", event: "2026-01-15T10:29:59.123456Z" },
  };
  const result = (overrides: Partial<HttpResult>): HttpResult => ({
    status: null,
    headers: null,
    body: null,
    error: null,
    durationMs: 12,
    ...overrides,
  });

  test("any 2xx succeeds, with nothing scheduled", () => {
    for (const status of [200, 201, 202, 204, 299]) {
      const outcome = decideOutcome(delivery, 1, result({ status, headers: {}, body: "" }), 0.5, now);
      assert.deepEqual(
        { state: outcome.state, retryAt: outcome.retryAt, lastError: outcome.lastError, attempt: outcome.attempt, deliveryId: outcome.deliveryId },
        { state: "succeeded", retryAt: null, lastError: null, attempt: 1, deliveryId: delivery.id },
      );
    }
  });

  test("a 3xx is a failed attempt: redirect not followed, with its Location", () => {
    const outcome = decideOutcome(delivery, 1, result({ status: 301, headers: { location: "https://elsewhere.example/hooks" } }), 0.5, now);
    assert.equal(outcome.state, "failed");
    assert.match(outcome.lastError!, /redirect not followed/);
    assert.ok(outcome.lastError!.includes("https://elsewhere.example/hooks"), outcome.lastError!);
    assert.deepEqual(outcome.retryAt, new Date(now + 2000));
  });

  test("a 500 fails and schedules the retry by the backoff", () => {
    const first = decideOutcome(delivery, 1, result({ status: 500, headers: {}, body: "boom" }), 0.5, now);
    assert.equal(first.state, "failed");
    assert.match(first.lastError!, /500/);
    assert.deepEqual(first.retryAt, new Date(now + 2000));
    const third = decideOutcome(delivery, 3, result({ status: 500, headers: {}, body: "boom" }), 0.5, now);
    assert.deepEqual(third.retryAt, new Date(now + 8000));
  });

  test("the last allowed attempt failing makes the delivery dead", () => {
    const outcome = decideOutcome(delivery, delivery.maxRetries + 1, result({ status: 503, headers: {} }), 0.5, now);
    assert.equal(outcome.state, "dead");
    assert.equal(outcome.retryAt, null);
    assert.match(outcome.lastError!, /503/);
  });

  test("a timeout fails with the error text as lastError", () => {
    const outcome = decideOutcome(delivery, 2, result({ error: "timed out after 5000 ms", durationMs: 5000 }), 0.5, now);
    assert.equal(outcome.state, "failed");
    assert.equal(outcome.lastError, "timed out after 5000 ms");
    assert.deepEqual(outcome.retryAt, new Date(now + 4000));
  });

  test("an oversized body is dead at once: retrying cannot make it fit", () => {
    const outcome = decideOutcome(delivery, 1, result({ error: "payload exceeds the 256 KiB limit; not sent", durationMs: 0, refused: true }), 0.5, now);
    assert.equal(outcome.state, "dead");
    assert.match(outcome.lastError!, /256 KiB/);
  });

  test("a target refused by the guard is dead at once and not held against the endpoint", () => {
    const outcome = decideOutcome(delivery, 1, result({ error: "refused: 127.0.0.1 is a loopback address", refused: true, durationMs: 0 }), 0.5, now);
    assert.equal(outcome.state, "dead");
    assert.equal(outcome.retryAt, null);
    assert.equal(outcome.endpoint, null);
    assert.match(outcome.lastError!, /^refused: /);
  });

  test("a 429 or 503 with Retry-After is not retried before the server asked", () => {
    for (const status of [429, 503]) {
      const outcome = decideOutcome(delivery, 1, result({ status, headers: { "retry-after": "120" } }), 0.5, now);
      assert.equal(outcome.state, "failed");
      assert.ok(outcome.retryAt!.getTime() >= now + 120_000, `HTTP ${status}: retry at ${outcome.retryAt!.toISOString()}`);
    }
    const httpDate = new Date(now + 300_000).toUTCString();
    const outcome = decideOutcome(delivery, 1, result({ status: 503, headers: { "retry-after": httpDate } }), 0.5, now);
    assert.ok(outcome.retryAt!.getTime() >= now + 300_000, `retry at ${outcome.retryAt!.toISOString()}`);
  });
});

describe("parseRetryAfterMs", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");

  test("delta-seconds, with surrounding spaces, become milliseconds", () => {
    assert.equal(parseRetryAfterMs("0", now), 0);
    assert.equal(parseRetryAfterMs("120", now), 120_000);
    assert.equal(parseRetryAfterMs("  7 ", now), 7_000);
  });

  test("an HTTP date is measured from now, and a date in the past means at once", () => {
    assert.equal(parseRetryAfterMs("Mon, 30 Nov 2026 12:01:30 GMT", now), 90_000);
    assert.equal(parseRetryAfterMs("Mon, 30 Nov 2026 11:00:00 GMT", now), 0);
  });

  test("absent or unparseable values are undefined, not zero", () => {
    for (const value of [undefined, "", "soon", "-5", "1.5", "12abc"]) assert.equal(parseRetryAfterMs(value, now), undefined, String(value));
  });

  test("a server cannot park a delivery longer than the longest backoff", () => {
    assert.equal(parseRetryAfterMs(String(10 * DAY_MS), now), MAX_RETRY_DELAY_MS);
    assert.equal(parseRetryAfterMs("Fri, 01 Jan 2100 00:00:00 GMT", now), MAX_RETRY_DELAY_MS);
  });
});
