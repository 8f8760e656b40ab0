import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook, type LogRow } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// timeout_seconds bounds each attempt: a slow endpoint is a failed attempt, given up on in time.

const h = useHarness({ receiver: () => ({ status: 200, body: "too late", delayMs: 3_000 }), daemon: true });

test("an endpoint slower than timeout_seconds fails the attempt after the timeout and is retried", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, {
    organizationId: org,
    url: h.receiver.url,
    events: ["contact.created"],
    timeout_seconds: 1,
    max_retries: 1,
    retry_base_seconds: 1,
  });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);

  const rows = await waitFor("two timed-out attempts", async () => {
    const { rows } = await h.db.pool.query<LogRow>("select * from webhooks.webhook_logs where webhook_id = $1 order by attempt", [hook.id]);
    return rows.length >= 2 ? rows : undefined;
  });
  for (const [i, row] of rows.entries()) {
    assert.equal(row.attempt, i + 1);
    assert.equal(row.success, false);
    assert.equal(row.response_status, null, "no response was taken");
    assert.match(String(row.error), /time(d)?[ -]?out/i);
    assert.ok(row.duration_ms !== null && row.duration_ms >= 900 && row.duration_ms < 2_500, `duration_ms ${row.duration_ms} is about the 1 s timeout, not the 3 s answer`);
  }
  const { rows: withHeaders } = await h.db.pool.query(
    "select attempt from webhooks.webhook_logs where webhook_id = $1 and response_headers is not null",
    [hook.id],
  );
  assert.deepEqual(withHeaders, [], "no response, no response_headers: SQL NULL (not a JSON null)");
  assert.equal(h.receiver.requests.length, 2, "the retry reached the endpoint");
  const { rows: deliveries } = await h.db.pool.query("select state, attempts from webhooks.deliveries where webhook_id = $1", [hook.id]);
  assert.deepEqual(deliveries, [{ state: "dead", attempts: 2 }]);
});
