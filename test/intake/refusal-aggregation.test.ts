import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "../tenancy/roles.js";
import { signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// Requests refused before they are authenticated are counted, not written one row each: one
// upserted row per (integration, reason, minute) in webhooks.intake_refusals and one log line
// per flush, so a flood's write rate is bounded by integrations × reasons, not by requests.

const h = useHarness({ app: true });

interface RefusalRow {
  integration_id: string | null;
  organization_id: string | null;
  reason: string;
  http_status: number;
  count: number;
}

/** Runs `count` calls of `send`, `concurrency` at a time. */
async function inWaves(count: number, concurrency: number, send: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await send(next++);
  }));
}

test("2,000 requests to unknown ids and 500 bad signatures to a real integration leave a handful of rows with the right counts, an organization only on the real one's, and one log line per flush", async () => {
  const org = await createOrganization(h.db.pool, "Attacked");
  const bystander = await createOrganization(h.db.pool, "Bystander");
  const integration = await createIntegration(h.db.pool, org);
  const daemon = await h.spawnDaemon();
  const base = `http://127.0.0.1:${daemon.port}`;
  const activityBefore = (await h.db.pool.query("select count(*)::int as n from webhooks.intake_activity")).rows[0].n;

  await inWaves(2000, 50, async (i) => {
    const id = i % 2 ? randomUUID() : `not-a-uuid-${i}`;
    const response = await fetch(`${base}/v2/webhook/integration/${id}`, { method: "POST", body: '{"customer_phone":"1"}' });
    assert.equal(response.status, 404);
    await response.arrayBuffer();
  });
  await inWaves(500, 50, async () => {
    const response = await signedPost(base, integration, '{"customer_phone":"+15550100000"}', { signWith: "another-secret-0123456789" });
    assert.equal(response.status, 401);
    await response.arrayBuffer();
  });

  const rows = await waitFor("both counts flushed", async () => {
    const { rows } = await h.db.pool.query<RefusalRow>(
      "select integration_id, organization_id, reason, http_status, count::int from webhooks.intake_refusals order by minute");
    const total = (integrationId: string | null) =>
      rows.filter((row) => row.integration_id === integrationId).reduce((sum, row) => sum + row.count, 0);
    return total(null) === 2000 && total(integration.id) === 500 ? rows : undefined;
  }, 30_000);
  // One row per (integration, reason) and minute: two keys, the flood may straddle a minute.
  assert.ok(rows.length >= 2 && rows.length <= 4, `${rows.length} rows: ${JSON.stringify(rows)}`);
  for (const row of rows) {
    if (row.integration_id === null) {
      assert.deepEqual(row, { ...row, organization_id: null, reason: "unknown_integration", http_status: 404 });
    } else {
      assert.deepEqual(row, { ...row, integration_id: integration.id, organization_id: org, reason: "invalid_signature", http_status: 401 });
    }
  }
  const activityAfter = (await h.db.pool.query("select count(*)::int as n from webhooks.intake_activity")).rows[0].n;
  assert.equal(activityAfter, activityBefore, "no intake_activity row per refused request");

  // Row-level security: the organization sees its integration's refusals, nobody sees the unknown ids'.
  const seen = (organization: string) => asTenant(h.app.pool, organization, async (client) =>
    (await client.query<RefusalRow>("select integration_id, reason, count::int from webhooks.intake_refusals")).rows);
  const own = await seen(org);
  assert.deepEqual(new Set(own.map((row) => `${row.integration_id} ${row.reason}`)), new Set([`${integration.id} invalid_signature`]));
  assert.equal(own.reduce((sum, row) => sum + row.count, 0), 500);
  assert.deepEqual(await seen(bystander), []);

  const lines = daemon.output().split("\n").filter((line) => line.includes('"message":"inbound requests refused"'))
    .map((line) => JSON.parse(line) as { total: number; refusals: { integration_id: string | null; reason: string; count: number }[] });
  assert.equal(lines.reduce((sum, line) => sum + line.total, 0), 2500, "every refusal is in the log, counted");
  assert.ok(lines.length >= 1 && lines.length <= 10, `${lines.length} log lines for 2,500 refusals`);
  assert.ok(lines.every((line) => line.refusals.every((entry) => ["unknown_integration", "invalid_signature"].includes(entry.reason))));
  assert.equal(daemon.output().includes(integration.signing_secret), false, "the signing secret is never logged");

  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^pg_webhooks_intake_refusals_total\{reason="unknown_integration"\} 2000$/m);
  assert.match(metrics, /^pg_webhooks_intake_refusals_total\{reason="invalid_signature"\} 500$/m);
});
