import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization, createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// The daemon needs no superuser at run time (README "Tenancy"): against a database the superuser migrated,
// it runs logged in as a plain member of webhooks_dispatcher, with row-level security forced.

const h = useHarness({ dispatcher: true, receiver: true, daemon: { as: "dispatcher" } });

test("the daemon's connections are an ordinary role: not a superuser, not BYPASSRLS", async () => {
  const { rows } = await h.daemon.pool.query<{ user: string; rolsuper: boolean; rolbypassrls: boolean }>(
    "select current_user as user, rolsuper, rolbypassrls from pg_roles where rolname = current_user",
  );
  assert.deepEqual(rows, [{ user: h.dispatcher.name, rolsuper: false, rolbypassrls: false }]);
});

test("logged in as a dispatcher member, the daemon delivers a contact.created event and logs the attempt", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);

  const request = await waitFor("the POST", () => h.receiver.requests.find((r) => r.headers["x-webhook-event"] === "contact.created"));
  assert.equal(JSON.parse(request.body).organization_id, org);
  const log = await waitFor("the attempt's log row", async () => (await logs(h.db.pool)).find((row) => row.webhook_id === hook.id));
  assert.equal(log.success, true);
  assert.equal(log.attempt, 1);
  assert.equal(log.organization_id, org);
  const { rows } = await h.db.pool.query("select state from webhooks.deliveries where webhook_id = $1", [hook.id]);
  assert.deepEqual(rows, [{ state: "succeeded" }]);
  const { rows: registered } = await h.db.pool.query("select 1 from webhooks.daemons where id = $1", [h.daemon.id]);
  assert.equal(registered.length, 1, "the daemon registered itself for heartbeats");
  const metrics = await fetch(`http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}/metrics`);
  assert.equal(metrics.status, 200);
  const text = await metrics.text();
  assert.match(text, /^pg_webhooks_attempts_total\{outcome="success"\} 1$/m);
  assert.match(text, /^pg_webhooks_attempt_duration_seconds_count 1$/m, "its duration observed once");
  assert.match(text, /^pg_webhooks_delivery_lag_seconds_count 1$/m, "its write → 2xx lag observed once");
  assert.match(text, /^pg_webhooks_delivery_lag_seconds_bucket\{le="\+Inf"\} 1$/m);
});

test("logged in as a dispatcher member, the daemon retries a failed attempt and logs both", async () => {
  const org = await createOrganization(h.db.pool);
  let calls = 0;
  h.receiver.respond(() => (++calls === 1 ? { status: 500, body: "try again" } : { status: 200, body: "ok" }));
  const hook = await createWebhook(h.db.pool, {
    organizationId: org,
    url: h.receiver.url,
    events: ["deal.created"],
    max_retries: 2,
    retry_base_seconds: 1,
  });
  await h.db.pool.query("insert into deals (organization_id, title) values ($1, 'Big one')", [org]);

  const attempts = await waitFor("two logged attempts", async () => {
    const rows = (await logs(h.db.pool)).filter((row) => row.webhook_id === hook.id);
    return rows.length === 2 ? rows : undefined;
  });
  assert.deepEqual(attempts.map((row) => [row.attempt, row.response_status, row.success]), [
    [1, 500, false],
    [2, 200, true],
  ]);
  h.receiver.respond(() => ({ status: 200, body: "ok" }));
});

test("logged in as a dispatcher member, webhooks.send_test (the CLI's send-test) reaches the endpoint", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  await h.daemon.pool.query("select webhooks.send_test($1)", [hook.id]);
  const request = await waitFor("the test POST", () => h.receiver.requests.find((r) => r.headers["x-webhook-event"] === "webhook.test"));
  assert.equal(JSON.parse(request.body).data.webhook_id, hook.id);
});
