import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { sign, type SigningInput } from "../../src/delivery/sign.js";

const whsec = () => "whsec_" + randomBytes(32).toString("base64");

/** Non-ASCII on purpose: signatures are over the UTF-8 bytes that are sent. */
const body = JSON.stringify({ id: "evt_0123", event: "contact.created", data: { first_name: "Zoë", note: "naïve ☕" } });

function input(overrides: Partial<SigningInput> = {}): SigningInput {
  return {
    body,
    eventId: "evt_0123456789abcdef0123456789abcdef",
    deliveryId: "6f1c2a4e-9b7d-4e3f-8a21-0c5d9e7f1b42",
    timestamp: new Date(),
    secrets: [whsec()],
    signatureHeader: "X-Webhook-Signature",
    ...overrides,
  };
}

/** HTTP header names are case-insensitive: look them up that way. */
const headerValue = (headers: Record<string, string>, name: string) =>
  Object.entries(headers).find(([key]) => key.toLowerCase() === name.toLowerCase())?.[1];

const hexHmac = (key: string, content: string) => createHmac("sha256", Buffer.from(key, "utf8")).update(Buffer.from(content, "utf8")).digest("hex");

describe("standard scheme (Standard Webhooks)", () => {
  test("reproduces the Standard Webhooks reference vector", () => {
    const headers = sign("standard", {
      body: '{"test": 2432232314}',
      eventId: "msg_p5jXN8AQM9LWM0D4loKWxJek",
      deliveryId: "unused",
      timestamp: new Date(1614265330 * 1000),
      secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
      signatureHeader: "X-Webhook-Signature",
    });
    assert.deepEqual(headers, {
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });

  test("headers verify with the standardwebhooks library", () => {
    const signing = input();
    const headers = sign("standard", signing);
    assert.equal(headers["webhook-id"], signing.eventId);
    assert.equal(headers["webhook-timestamp"], String(Math.floor(signing.timestamp.getTime() / 1000)));
    const payload = new StandardWebhook(signing.secrets[0]!).verify(body, headers);
    assert.deepEqual(payload, JSON.parse(body));
  });

  test("headers verify with the svix library under svix-* names", () => {
    const signing = input();
    const headers = sign("standard", signing);
    const payload = new SvixWebhook(signing.secrets[0]!).verify(body, {
      "svix-id": headers["webhook-id"]!,
      "svix-timestamp": headers["webhook-timestamp"]!,
      "svix-signature": headers["webhook-signature"]!,
    });
    assert.deepEqual(payload, JSON.parse(body));
  });

  test("a different secret or a changed body does not verify", () => {
    const signing = input();
    const headers = sign("standard", signing);
    assert.throws(() => new StandardWebhook(whsec()).verify(body, headers));
    assert.throws(() => new StandardWebhook(signing.secrets[0]!).verify(body.replace("Zoë", "Zoe"), headers));
  });

  test("during a rotation, one v1 signature per secret, each verifying on its own", () => {
    const current = whsec();
    const previous = whsec();
    const headers = sign("standard", input({ secrets: [current, previous] }));
    const signatures = headers["webhook-signature"]!.split(" ");
    assert.equal(signatures.length, 2);
    for (const signature of signatures) assert.match(signature, /^v1,[A-Za-z0-9+/]{43}=$/);
    for (const secret of [current, previous]) {
      assert.deepEqual(new StandardWebhook(secret).verify(body, headers), JSON.parse(body));
      const svixHeaders = {
        "svix-id": headers["webhook-id"]!,
        "svix-timestamp": headers["webhook-timestamp"]!,
        "svix-signature": headers["webhook-signature"]!,
      };
      assert.deepEqual(new SvixWebhook(secret).verify(body, svixHeaders), JSON.parse(body));
    }
    assert.throws(() => new StandardWebhook(whsec()).verify(body, headers));
  });
});

describe("hmac schemes, checked by an independent verifier written from docs/signatures.md", () => {
  test("hmac-hex: ISO 8601 X-Webhook-Timestamp and the lowercase hex HMAC of the body in the configured header", () => {
    const signing = input({ secrets: ["plain shared secret ✓"], signatureHeader: "X-Acme-Signature" });
    const headers = sign("hmac-hex", signing);
    assert.deepEqual(Object.keys(headers).map((name) => name.toLowerCase()).sort(), ["x-acme-signature", "x-webhook-timestamp"]);
    const value = (name: string) => headerValue(headers, name);
    assert.equal(value("x-webhook-timestamp"), signing.timestamp.toISOString());
    assert.match(value("x-acme-signature")!, /^[0-9a-f]{64}$/);
    assert.equal(value("x-acme-signature"), hexHmac("plain shared secret ✓", body));
  });

  test("hmac-hex uses the default X-Webhook-Signature header name", () => {
    const signing = input({ secrets: ["s"] });
    const headers = sign("hmac-hex", signing);
    assert.equal(headerValue(headers, "X-Webhook-Signature"), hexHmac("s", body));
  });

  test("hmac-prefixed: sha256=<lowercase hex HMAC of the body> in the configured header, nothing else", () => {
    const signing = input({ secrets: ["another secret"], signatureHeader: "X-Hub-Signature-256" });
    const headers = sign("hmac-prefixed", signing);
    assert.deepEqual(Object.keys(headers).map((name) => name.toLowerCase()), ["x-hub-signature-256"]);
    const signature = Object.values(headers)[0]!;
    assert.match(signature, /^sha256=[0-9a-f]{64}$/);
    assert.equal(signature, `sha256=${hexHmac("another secret", body)}`);
  });

  test("hmac-timestamped: unix seconds, the delivery id as idempotency-key, signature over <ts>.<body>.<key>", () => {
    const signing = input({ secrets: ["third secret"], timestamp: new Date(1_767_225_600_999) });
    const headers = sign("hmac-timestamped", signing);
    assert.deepEqual(Object.keys(headers).sort(), ["idempotency-key", "x-webhook-signature", "x-webhook-timestamp"]);
    assert.equal(headers["x-webhook-timestamp"], "1767225600");
    assert.equal(headers["idempotency-key"], signing.deliveryId);
    assert.match(headers["x-webhook-signature"]!, /^signature=[0-9a-f]{64}$/);
    const expected = hexHmac("third secret", `1767225600.${body}.${signing.deliveryId}`);
    assert.equal(headers["x-webhook-signature"], `signature=${expected}`);
  });

  test("the hmac schemes sign with the current secret during a rotation", () => {
    const signing = input({ secrets: ["current", "previous"] });
    assert.equal(headerValue(sign("hmac-hex", signing), "X-Webhook-Signature"), hexHmac("current", body));
    assert.equal(headerValue(sign("hmac-prefixed", signing), "X-Webhook-Signature"), `sha256=${hexHmac("current", body)}`);
    const ts = String(Math.floor(signing.timestamp.getTime() / 1000));
    assert.equal(
      sign("hmac-timestamped", signing)["x-webhook-signature"],
      `signature=${hexHmac("current", `${ts}.${body}.${signing.deliveryId}`)}`,
    );
  });
});

test("signing without a secret throws rather than sending an unsigned request", () => {
  assert.throws(() => sign("standard", input({ secrets: [] })), /secret/);
});
