import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// WEBHOOKS_DISABLE_AFTER_FAILING_HOURS reaches the daemon: with 1 hour, failures that began two
// hours ago disable the endpoint (the default, 120 hours, would not).

const h = useHarness({ receiver: () => ({ status: 503 }), daemon: { env: { WEBHOOKS_DISABLE_AFTER_FAILING_HOURS: "1" } } });

async function failOnce(org: string, hookId: string, expected: number): Promise<void> {
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
  await waitFor(`${expected} dead deliveries`, async () => {
    const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.deliveries where webhook_id = $1 and state = 'dead'", [hookId]);
    return rows[0].n === expected;
  });
}

test("WEBHOOKS_DISABLE_AFTER_FAILING_HOURS=1 disables an endpoint failing for two hours", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"], max_retries: 0 });
  await failOnce(org, hook.id, 1);
  await h.db.pool.query("update webhooks.webhook_configurations set failing_since = now() - interval '2 hours' where id = $1", [hook.id]);
  await failOnce(org, hook.id, 2);
  const { rows } = await h.db.pool.query("select is_active, disabled_reason from webhooks.webhook_configurations where id = $1", [hook.id]);
  assert.equal(rows[0].is_active, false);
  assert.match(rows[0].disabled_reason, /longer than 1 hours/);
});
