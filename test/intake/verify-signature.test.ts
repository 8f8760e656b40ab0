import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { intakeSignature, verifySignature, type SignedRequest } from "../../src/intake/verify-signature.js";

const secret = "0123456789abcdef0123456789abcdef";
const now = 1_800_000_000;
const body = Buffer.from('{"customer_phone":"+15550100000","name":"Zoë"}');

function request(overrides: Partial<SignedRequest> = {}): SignedRequest {
  const signature = intakeSignature(secret, String(now), body, "key-1");
  return { signature: `signature=${signature}`, timestamp: String(now), idempotencyKey: "key-1", body, secret, now, ...overrides };
}

test("the signature is HMAC-SHA256 hex of <timestamp>.<raw body>.<key> keyed with the secret's UTF-8 bytes", () => {
  const expected = createHmac("sha256", Buffer.from(secret, "utf8")).update(`${now}.${body.toString("utf8")}.key-1`).digest("hex");
  assert.equal(intakeSignature(secret, now, body, "key-1"), expected);
  assert.deepEqual(verifySignature(request()), { ok: true, idempotencyKey: "key-1", timestamp: now });
});

test("upper-case hex is accepted; a changed body, key or timestamp is a 401", () => {
  const upper = `signature=${intakeSignature(secret, String(now), body, "key-1").toUpperCase()}`;
  assert.equal(verifySignature(request({ signature: upper })).ok, true);
  assert.deepEqual(verifySignature(request({ body: Buffer.from("{}") })), { ok: false, status: 401, reason: "invalid_signature", error: "invalid signature" });
  assert.equal(verifySignature(request({ idempotencyKey: "key-2" })).ok, false);
  assert.equal(verifySignature(request({ timestamp: String(now + 1) })).ok, false);
});

test("malformed, short, repeated or missing signature headers are 401 (invalid_signature) and never throw", () => {
  for (const signature of [undefined, "", "signature=", "signature=abc", `signature=${"z".repeat(64)}`, `v1=${"0".repeat(64)}`, ["signature=a", "signature=b"]]) {
    const result = verifySignature(request({ signature }));
    assert.equal(result.ok, false, String(signature));
    assert.equal(!result.ok && result.status, 401);
    assert.equal(!result.ok && result.reason, "invalid_signature");
  }
});

test("timestamps: strict integer seconds within ±300 s of now, else 401 (invalid_timestamp)", () => {
  for (const timestamp of [String(now - 300), String(now + 300)]) {
    const signature = `signature=${intakeSignature(secret, timestamp, body, "key-1")}`;
    assert.equal(verifySignature(request({ timestamp, signature })).ok, true, timestamp);
  }
  for (const timestamp of [String(now - 301), String(now + 301), `${now}.0`, "1e9", "-5", "", undefined, String(now * 1000)]) {
    const result = verifySignature(request({ timestamp }));
    assert.equal(!result.ok && result.status, 401, String(timestamp));
    assert.equal(!result.ok && result.reason, "invalid_timestamp", String(timestamp));
  }
});

test("an idempotency-key outside [A-Za-z0-9_-]{1,200} is 400 (invalid_idempotency_key)", () => {
  for (const idempotencyKey of [undefined, "", "a.b", "a b", "é", "x".repeat(201)]) {
    const result = verifySignature(request({ idempotencyKey }));
    assert.equal(!result.ok && result.status, 400, String(idempotencyKey));
    assert.equal(!result.ok && result.reason, "invalid_idempotency_key", String(idempotencyKey));
  }
  const key = "A-z_9".repeat(40);
  const signature = `signature=${intakeSignature(secret, String(now), body, key)}`;
  assert.equal(verifySignature(request({ idempotencyKey: key, signature })).ok, true);
});
