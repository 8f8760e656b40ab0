import assert from "node:assert/strict";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { createOrganization, createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

const h = useHarness({ receiver: true, daemon: true });

test("a contact insert reaches the endpoint as a signed POST and is logged", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into contacts (organization_id, first_name, email) values ($1, 'Ada', 'ada@example.com') returning id",
    [org],
  );

  const request = await waitFor("the POST", () => h.receiver.requests[0]);
  assert.equal(request.method, "POST");
  assert.equal(request.headers["content-type"], "application/json");
  assert.match(String(request.headers["user-agent"]), /^pg-webhooks\/\d+\.\d+\.\d+$/);
  assert.equal(request.headers["x-webhook-event"], "contact.created");

  const verified = new Webhook(hook.secret).verify(request.body, {
    "webhook-id": String(request.headers["webhook-id"]),
    "webhook-timestamp": String(request.headers["webhook-timestamp"]),
    "webhook-signature": String(request.headers["webhook-signature"]),
  }) as Record<string, unknown>;
  assert.equal(verified.event, "contact.created");
  assert.equal(verified.organization_id, org);
  assert.match(String(verified.id), /^evt_[0-9a-f]{32}$/);
  assert.equal(request.headers["webhook-id"], verified.id);
  assert.equal((verified.data as { id: string }).id, rows[0]!.id);
  assert.equal((verified.data as { email: string }).email, "ada@example.com");
  assert.equal("changes" in verified, false);
  assert.deepEqual(Object.keys(verified), ["id", "event", "timestamp", "organization_id", "data"]);

  const [log] = await waitFor("the log row", async () => ((await logs(h.db.pool)).length ? logs(h.db.pool) : undefined));
  assert.equal(log!.success, true);
  assert.equal(log!.attempt, 1);
  assert.equal(log!.response_status, 200);
  assert.equal(log!.response_body, "ok");
  assert.equal(log!.request_body, request.body, "the logged body is the bytes sent");
  assert.equal(log!.event_id, verified.id);
  assert.equal(log!.delivery_id, request.headers["x-webhook-delivery-id"]);
  assert.equal(log!.request_headers["webhook-signature"], request.headers["webhook-signature"]);
  assert.equal(JSON.stringify(log!.request_headers).includes(hook.secret), false, "no secret in the log");
  assert.equal(log!.response_headers?.["content-type"], "text/plain", "the receiver's response headers are logged");
  const { rows: deliveries } = await h.db.pool.query("select state, attempts from webhooks.deliveries");
  assert.deepEqual(deliveries, [{ state: "succeeded", attempts: 1 }]);
});
