import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { test } from "node:test";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest, Responder } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

// Each scheme end to end: the daemon signs, a real receiver gets the request, and a verifier
// written here from docs/signatures.md's table alone (node:crypto, not src/delivery/sign.ts) accepts it as received.

const h = useHarness({ daemon: true });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One endpoint with `config` in a fresh organization; a contact insert (non-ASCII on purpose) sends it an event. */
async function deliver(config: Record<string, unknown>, responder?: Responder, count = 1) {
  const receiver = await h.startReceiver(responder);
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created"], ...config });
  await h.db.pool.query("insert into contacts (organization_id, first_name, city) values ($1, 'Zoë', 'Kraków ☕')", [org]);
  await waitFor(`${count} request(s)`, () => receiver.requests.length >= count);
  return { secret: hook.secret, requests: receiver.requests };
}

const header = (request: ReceivedRequest, name: string) => {
  const value = request.headers[name.toLowerCase()];
  assert.equal(typeof value, "string", `exactly one ${name} header`);
  return value as string;
};

const hexHmac = (key: string, content: Buffer) => createHmac("sha256", Buffer.from(key, "utf8")).update(content).digest("hex");
const sameText = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** The bytes the receiver got: its body is their UTF-8 decoding, and content-length counts them. */
function receivedBytes(request: ReceivedRequest): Buffer {
  const bytes = Buffer.from(request.body, "utf8");
  assert.equal(header(request, "content-length"), String(bytes.length));
  assert.ok(request.body.includes("Zoë"), "the body carries the non-ASCII row");
  return bytes;
}

function assertRecent(epochMs: number) {
  assert.ok(Math.abs(Date.now() - epochMs) < 5 * 60_000, `timestamp ${new Date(epochMs).toISOString()} is about now`);
}

/** docs/signatures.md, standard: v1,<base64 HMAC of "<webhook-id>.<timestamp>.<body>"> keyed with the base64 after whsec_. */
function verifyStandard(request: ReceivedRequest, secret: string): boolean {
  const id = header(request, "webhook-id");
  const timestamp = header(request, "webhook-timestamp");
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), receivedBytes(request)]))
    .digest("base64");
  return header(request, "webhook-signature")
    .split(" ")
    .some((signature) => signature.startsWith("v1,") && sameText(signature.slice(3), expected));
}

test("standard: webhook-id is the event id, webhook-timestamp unix seconds, and the signature verifies by hand, with standardwebhooks and with svix", async () => {
  const { secret, requests } = await deliver({ signature_scheme: "standard" });
  const request = requests[0]!;
  assert.match(secret, /^whsec_/);
  const id = header(request, "webhook-id");
  assert.match(id, /^evt_[0-9a-f]{32}$/);
  assert.equal(JSON.parse(request.body).id, id, "webhook-id is the payload's event id");
  const timestamp = header(request, "webhook-timestamp");
  assert.match(timestamp, /^\d{10}$/);
  assertRecent(Number(timestamp) * 1000);
  assert.match(header(request, "webhook-signature"), /^v1,[A-Za-z0-9+/]{43}=$/, "one signature: no rotation");

  assert.equal(verifyStandard(request, secret), true);
  const received = request.headers as Record<string, string>;
  assert.equal((new StandardWebhook(secret).verify(request.body, received) as { id: string }).id, id);
  assert.equal((new SvixWebhook(secret).verify(request.body, received) as { id: string }).id, id);

  const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
  assert.equal(verifyStandard(request, other), false, "another secret does not verify");
  assert.throws(() => new StandardWebhook(other).verify(request.body, received));
  assert.throws(() => new StandardWebhook(secret).verify(request.body.replace("Zoë", "Zoe"), received));
});

test("hmac-hex: X-Webhook-Timestamp in ISO 8601 and the lowercase hex HMAC of the received body in the configured header", async () => {
  const secret = "integify shared secret ✓";
  const { requests } = await deliver({ signature_scheme: "hmac-hex", signature_header: "X-Integify-Signature", secret });
  const request = requests[0]!;
  const timestamp = header(request, "X-Webhook-Timestamp");
  assert.match(timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/);
  assertRecent(Date.parse(timestamp));
  const signature = header(request, "X-Integify-Signature");
  assert.match(signature, /^[0-9a-f]{64}$/);
  assert.equal(sameText(signature, hexHmac(secret, receivedBytes(request))), true);
  assert.notEqual(signature, hexHmac("integify shared secret", receivedBytes(request)), "the key is the secret's UTF-8 bytes");
  assert.equal(request.headers["x-webhook-signature"], undefined, "the signature goes only in the configured header");
  assert.equal(request.headers["webhook-signature"], undefined);
});

test("hmac-prefixed: sha256=<lowercase hex HMAC of the received body> in the configured header", async () => {
  const secret = "prefixed shared secret";
  const { requests } = await deliver({ signature_scheme: "hmac-prefixed", signature_header: "X-Integify-Signature", secret });
  const request = requests[0]!;
  const signature = header(request, "X-Integify-Signature");
  assert.match(signature, /^sha256=[0-9a-f]{64}$/);
  assert.equal(sameText(signature, `sha256=${hexHmac(secret, receivedBytes(request))}`), true);
  assert.notEqual(signature, `sha256=${hexHmac("another secret", receivedBytes(request))}`);
  for (const absent of ["x-webhook-signature", "webhook-signature", "x-webhook-timestamp", "idempotency-key"]) {
    assert.equal(request.headers[absent], undefined, `no ${absent} header`);
  }
});

test("hmac-timestamped: unix-seconds timestamp, a uuid idempotency-key identical on the retry, signature over <timestamp>.<body>.<key>", async () => {
  const secret = "timestamped secret";
  let calls = 0;
  const { requests } = await deliver(
    { signature_scheme: "hmac-timestamped", secret, retry_base_seconds: 1 },
    () => (++calls === 1 ? { status: 500, body: "try again" } : { status: 200, body: "ok" }),
    2,
  );
  const [first, retry] = requests;
  const keys = new Set<string>();
  const timestamps: string[] = [];
  for (const request of [first!, retry!]) {
    const timestamp = header(request, "x-webhook-timestamp");
    assert.match(timestamp, /^\d{10}$/);
    assertRecent(Number(timestamp) * 1000);
    timestamps.push(timestamp);
    const key = header(request, "idempotency-key");
    assert.match(key, UUID);
    assert.equal(key, header(request, "x-webhook-delivery-id"), "the key is the delivery id");
    keys.add(key);
    const signature = header(request, "x-webhook-signature");
    assert.match(signature, /^signature=[0-9a-f]{64}$/);
    const signed = Buffer.concat([Buffer.from(`${timestamp}.`), receivedBytes(request), Buffer.from(`.${key}`)]);
    assert.equal(sameText(signature, `signature=${hexHmac(secret, signed)}`), true);
    assert.notEqual(signature, `signature=${hexHmac("other", signed)}`);
  }
  assert.equal(keys.size, 1, "the same idempotency-key on every attempt of one delivery");
  assert.equal(first!.body, retry!.body, "the retry sends the same bytes");
  await waitFor("the delivery to succeed", async () => {
    const { rows } = await h.db.pool.query("select 1 from webhooks.deliveries where id = $1 and state = 'succeeded' and attempts = 2", [[...keys][0]]);
    return rows.length === 1;
  });
});
