import assert from "node:assert/strict";
import { test } from "node:test";
import { databaseGaugesStatement } from "../../src/daemon/metrics.js";
import { toStatement } from "../../src/db/database.js";
import { useHarness } from "../support/harness.js";

// A scrape must cost the same however much history the database holds: the one statement it runs
// reads what is still to do, and its plan touches none of the tables that grow with history.

const h = useHarness({});

test("the scrape's statement reads no table that grows with history, whatever their size", async () => {
  // Some history, analysed, so the planner sees tables worth an index or not.
  await h.db.pool.query(`
    insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                       request_headers, success, duration_ms)
    select gen_random_uuid(), gen_random_uuid(), 'evt_' || n, gen_random_uuid(), 'contact.created', 1, 'https://example.com',
           '{}', true, 5
      from generate_series(1, 20000) n;
    analyze webhooks.webhook_logs;`);
  const { text, values } = toStatement(databaseGaugesStatement());
  const { rows } = await h.db.pool.query<{ "QUERY PLAN": unknown }>(`explain (format json) ${text}`, values);
  const relations = new Set<string>();
  const visit = (node: Record<string, unknown>) => {
    if (typeof node["Relation Name"] === "string") relations.add(node["Relation Name"]);
    for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) visit(child);
  };
  visit((rows[0]!["QUERY PLAN"] as { Plan: Record<string, unknown> }[])[0]!.Plan);
  assert.deepEqual([...relations].sort(), ["delivery_queue", "endpoint_states", "outbox", "outbox_set_aside", "webhook_configurations"]);
});
