import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

// Flat cost with history (README "Retention and monitoring"): what a DBA and the views read of
// webhook_logs is the recent partitions, through their indexes, however many days are kept.
// bench/run.ts (phase history) shows the same plans and their times at a million attempts.

const h = useHarness({});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

/** The webhook_logs partitions a statement read (EXPLAIN ANALYZE: nodes that ran), with how. */
async function logPartitionsRead(sql: string, values: unknown[]): Promise<Map<string, string>> {
  const { rows } = await h.db.pool.query<{ "QUERY PLAN": { Plan: PlanNode }[] }>(`explain (analyze, format json) ${sql}`, values);
  const read = new Map<string, string>();
  const visit = (node: PlanNode) => {
    if (node["Relation Name"]?.startsWith("webhook_logs") && (node["Actual Loops"] ?? 0) > 0) read.set(node["Relation Name"], node["Node Type"]);
    for (const child of node.Plans ?? []) visit(child);
  };
  visit(rows[0]!["QUERY PLAN"][0]!.Plan);
  return read;
}

test("webhook_stats and \"what failed for organization X in the last hour\" read only the last day's partitions of webhook_logs, by index", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '12 days')");
  const organizations = await Promise.all(Array.from({ length: 10 }, (_, i) => createOrganization(h.db.pool, `history ${i}`)));
  const webhooks = await Promise.all(organizations.map((org) => createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook" })));
  // 12 days of attempts, 60,000 in all, one in five failed, spread over the organizations.
  await h.db.pool.query(
    `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                        request_headers, response_status, success, duration_ms, created_at)
     select (o.orgs)[1 + n % 10], (o.hooks)[1 + n % 10], 'ev_' || md5(n::text), gen_random_uuid(), 'contact.created', 1,
            'https://example.com/hook', '{}', case when n % 5 = 0 then 500 else 200 end, n % 5 <> 0, n % 100,
            now() - (n % 17280) * interval '1 minute'
       from generate_series(1, 60000) n, (select $1::uuid[] as orgs, $2::uuid[] as hooks) o`,
    [organizations, webhooks.map((hook) => hook.id)],
  );
  await h.db.pool.query("analyze webhooks.webhook_logs");
  const { rows: recent } = await h.db.pool.query<{ partition_name: string; ahead: boolean }>(
    `select partition_name, coalesce(lower_bound > now(), false) as ahead from webhooks._partitions('webhook_logs')
      where upper_bound > now() - interval '25 hours' or is_default`,
  );
  const allowed = new Set(recent.map((row) => row.partition_name));
  // The partitions made ahead of time are empty, and the DEFAULT one holds only stragglers: the
  // planner may scan them whole, at no cost that grows with history.
  const ahead = new Set(recent.filter((row) => row.ahead).map((row) => row.partition_name));
  ahead.add("webhook_logs_default");

  const failedLastHour = await logPartitionsRead(
    `select * from webhooks.webhook_logs
      where organization_id = $1 and created_at > now() - interval '1 hour' and not success
      order by created_at desc limit 100`,
    [organizations[3]],
  );
  assert.ok(failedLastHour.size > 0);
  for (const [partition, node] of failedLastHour) {
    assert.ok(allowed.has(partition), `read ${partition}, older than the last hour: ${JSON.stringify([...failedLastHour])}`);
    if (!ahead.has(partition)) assert.match(node, /^(Index Scan|Index Only Scan|Bitmap Heap Scan)$/, `${partition} read by ${node}`);
  }

  const stats = await logPartitionsRead("select * from webhooks.webhook_stats where organization_id = $1", [organizations[3]]);
  assert.ok(stats.size > 0);
  for (const [partition, node] of stats) {
    assert.ok(allowed.has(partition), `webhook_stats read ${partition}, older than 24 hours: ${JSON.stringify([...stats])}`);
    if (!ahead.has(partition)) assert.match(node, /^(Index Scan|Index Only Scan|Bitmap Heap Scan)$/, `${partition} read by ${node}`);
  }
});
