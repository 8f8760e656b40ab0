import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { test } from "node:test";
import type pg from "pg";
import { Webhook } from "standardwebhooks";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "../tenancy/roles.js";

// Rotation (docs/signatures.md): a new secret keeps the old one signing for 24 hours. The standard scheme
// sends one v1 signature per live secret; the HMAC schemes have a single-valued signature header
// and sign with the current secret only.

const h = useHarness({ app: true, dispatcher: true, daemon: true });

async function endpoint(config: Record<string, unknown> = {}) {
  const receiver = await h.startReceiver();
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["zoom.recording.completed"], ...config });
  /** Emits one event and returns the request it produced. */
  const deliverOne = async () => {
    const before = receiver.requests.length;
    await h.db.pool.query("select webhooks.emit($1, 'zoom.recording.completed', '{\"n\": \"ü\"}')", [org]);
    return waitFor("the POST", () => receiver.requests[before]);
  };
  return { org, hook, deliverOne };
}

const verifies = (secret: string, request: ReceivedRequest) => {
  try {
    new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
    return true;
  } catch {
    return false;
  }
};

const signatures = (request: ReceivedRequest) => String(request.headers["webhook-signature"]).split(" ");

async function rotate(queryable: pg.Pool | pg.PoolClient, webhookId: string): Promise<string> {
  const { rows } = await (queryable as pg.Pool).query<{ secret: string }>("select webhooks.rotate_secret($1) as secret", [webhookId]);
  return rows[0]!.secret;
}

test("rotate_secret returns a new generated secret and keeps the old one as previous_secret for 24 hours", async () => {
  const { hook } = await endpoint();
  const rotated = await rotate(h.db.pool, hook.id);
  assert.match(rotated, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(rotated, hook.secret);
  const { rows } = await h.db.pool.query(
    `select secret, previous_secret,
            previous_secret_expires_at between now() + interval '23 hours 59 minutes' and now() + interval '24 hours' as expires_in_24h
       from webhooks.webhook_configurations where id = $1`,
    [hook.id],
  );
  assert.deepEqual(rows, [{ secret: rotated, previous_secret: hook.secret, expires_in_24h: true }]);
});

test("after rotate_secret, a standard delivery carries two v1 signatures and verifies with either secret", async () => {
  const { hook, deliverOne } = await endpoint();
  const rotated = await rotate(h.db.pool, hook.id);
  const request = await deliverOne();
  assert.equal(signatures(request).length, 2);
  for (const signature of signatures(request)) assert.match(signature, /^v1,[A-Za-z0-9+/]{43}=$/);
  assert.equal(verifies(rotated, request), true, "the new secret verifies");
  assert.equal(verifies(hook.secret, request), true, "the old secret still verifies");
  assert.equal(verifies("whsec_" + randomBytes(32).toString("base64"), request), false, "an unrelated secret does not");
});

test("a plain UPDATE of secret rotates the same way, and once previous_secret has expired only the new secret signs", async () => {
  const { hook, deliverOne } = await endpoint();
  const updated = "whsec_" + randomBytes(32).toString("base64");
  await h.db.pool.query("update webhooks.webhook_configurations set secret = $2 where id = $1", [hook.id, updated]);
  const during = await deliverOne();
  assert.equal(signatures(during).length, 2);
  assert.equal(verifies(updated, during), true);
  assert.equal(verifies(hook.secret, during), true);

  await h.db.pool.query(
    "update webhooks.webhook_configurations set previous_secret_expires_at = now() - interval '1 second' where id = $1",
    [hook.id],
  );
  const afterExpiry = await deliverOne();
  assert.equal(signatures(afterExpiry).length, 1);
  assert.equal(verifies(updated, afterExpiry), true, "the new secret verifies");
  assert.equal(verifies(hook.secret, afterExpiry), false, "the expired secret no longer does");
});

test("an HMAC scheme signs with the current secret only during a rotation", async () => {
  const { hook, deliverOne } = await endpoint({ signature_scheme: "hmac-prefixed", secret: "old shared secret" });
  const rotated = await rotate(h.db.pool, hook.id);
  const request = await deliverOne();
  const hex = (key: string) => createHmac("sha256", Buffer.from(key, "utf8")).update(Buffer.from(request.body, "utf8")).digest("hex");
  assert.equal(request.headers["x-webhook-signature"], `sha256=${hex(rotated)}`);
  assert.notEqual(request.headers["x-webhook-signature"], `sha256=${hex("old shared secret")}`);
});

const refusedAs = (code: string, message: RegExp) => (error: pg.DatabaseError) => {
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  return true;
};

test("an application rotates its own webhooks only: another organization's id answers like a missing one", async () => {
  const mine = await endpoint();
  const theirs = await endpoint();
  const rotated = await asTenant(h.app.pool, mine.org, (client) => rotate(client, mine.hook.id));
  const { rows: mineNow } = await h.db.pool.query("select secret from webhooks.webhook_configurations where id = $1", [mine.hook.id]);
  assert.deepEqual(mineNow, [{ secret: rotated }]);

  await assert.rejects(
    asTenant(h.app.pool, mine.org, (client) => client.query("select webhooks.rotate_secret($1)", [theirs.hook.id])),
    refusedAs("P0002", /^webhooks\.rotate_secret: no webhook /),
  );
  await assert.rejects(
    asTenant(h.app.pool, mine.org, (client) => client.query("select webhooks.rotate_secret(gen_random_uuid())")),
    refusedAs("P0002", /^webhooks\.rotate_secret: no webhook /),
  );
  await assert.rejects(
    asTenant(h.app.pool, null, (client) => client.query("select webhooks.rotate_secret($1)", [mine.hook.id])),
    refusedAs("42501", /^webhooks\.rotate_secret: no organization set for this transaction/),
  );
  const { rows: after } = await h.db.pool.query("select secret from webhooks.webhook_configurations where id = $1", [theirs.hook.id]);
  assert.deepEqual(after, [{ secret: theirs.hook.secret }], "the other organization's secret is untouched");
});

test("the daemon's role rotates any organization's webhook without setting one", async () => {
  const { hook } = await endpoint();
  const rotated = await rotate(h.dispatcher.pool, hook.id);
  const { rows } = await h.db.pool.query("select secret, previous_secret from webhooks.webhook_configurations where id = $1", [hook.id]);
  assert.deepEqual(rows, [{ secret: rotated, previous_secret: hook.secret }]);
});
