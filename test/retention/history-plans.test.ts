import assert from "node:assert/strict";
import { test } from "node:test";
import type { QueryResult } from "pg";
import { fanOut } from "../../src/capture/fan-out.js";
import type { PoolClient } from "../../src/db/pool.js";
import {
  CLAIM_PLANNER_SETTINGS, claimedDeliveriesStatement, claimStatement, lockEndpointsStatement, type ClaimedRow,
} from "../../src/delivery/claim-statement.js";
import { recordStatement, type AttemptRecord } from "../../src/delivery/record-statement.js";
import { createLogger } from "../../src/logger.js";
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

/** The indexes of deliveries' and events' partitions that this session holds a lock on, by partition. */
async function lockedPartitionIndexes(client: PoolClient): Promise<Set<string>> {
  const { rows } = await client.query<{ partition: string }>(
    `select distinct t.relname as partition
       from pg_locks l
       join pg_index i on i.indexrelid = l.relation
       join pg_class t on t.oid = i.indrelid
       join pg_inherits h on h.inhrelid = t.oid
      where l.pid = pg_backend_pid() and h.inhparent in ('webhooks.deliveries'::regclass, 'webhooks.events'::regclass)`,
  );
  return new Set(rows.map((row) => row.partition));
}

test("a claim and the record of its attempts open only their batch's partitions, however many days are kept", async () => {
  await h.db.pool.query("call webhooks.create_partitions(now() - interval '12 days')");
  const organization = await createOrganization(h.db.pool, "flat claims");
  await createWebhook(h.db.pool, { organizationId: organization, url: "https://example.com/hook", events: ["contact.created"] });
  await h.db.pool.query("insert into contacts (organization_id, first_name) select $1, 'C' || n from generate_series(1, 3) n", [organization]);
  await fanOut(h.db.pool, 100, createLogger("silent"));
  const { rows: today } = await h.db.pool.query<{ partition_name: string }>(
    `select p.partition_name from webhooks._partitioned t, webhooks._partitions(t.table_name) p
      where t.table_name in ('deliveries', 'events') and now() >= p.lower_bound and now() < p.upper_bound`,
  );
  const batch = new Set(today.map((row) => row.partition_name));
  assert.equal(batch.size, 2);

  const client = await h.db.pool.connect();
  try {
    // Each statement 8 times, rolled back: PostgreSQL plans the first 5 runs with their
    // parameters (custom plans), the 6th a generic plan, kept for the next runs, which prunes
    // when it starts. Planning that one, once per connection, opens every partition.
    const planning = (run: number) => run === 5;
    let claimed: ClaimedRow[] = [];
    let contexts: { id: string; attempts: number; organization_id: string; webhook_id: string; event_id: string; event_type: string; url: string;
                    delivery_key: string; event_key: string }[] = [];
    for (let run = 0; run < 8; run++) {
      const results = (await client.query(`begin; ${CLAIM_PLANNER_SETTINGS}; ${lockEndpointsStatement().text}`)) as unknown as QueryResult<{ webhook_id: string }>[];
      const webhookIds = results.at(-1)!.rows.map((row) => row.webhook_id);
      ({ rows: claimed } = await client.query<ClaimedRow>(
        claimStatement({ webhookIds, ownInFlight: webhookIds.map(() => 0), daemonId: "flat-claims", limit: 10, organizations: { ids: [], open: [] } })));
      ({ rows: contexts } = await client.query(claimedDeliveriesStatement(claimed)));
      assert.equal(contexts.length, 3);
      const locked = await lockedPartitionIndexes(client);
      if (!planning(run)) assert.deepEqual([...locked].filter((partition) => !batch.has(partition)), [], `claim ${run + 1} opened other partitions`);
      await client.query("rollback");
    }
    await client.query("update webhooks.delivery_queue set claimed_by = 'flat-claims' where delivery_id = any ($1::uuid[])", [claimed.map((row) => row.delivery_id)]);
    const records: AttemptRecord[] = contexts.map((c) => ({
      deliveryId: c.id, state: "succeeded", attempt: 1, retryAt: null, lastError: null, endpoint: "up",
      partitionKeys: { delivery: c.delivery_key, event: c.event_key },
      log: { organization_id: c.organization_id, webhook_id: c.webhook_id, event_id: c.event_id, delivery_id: c.id, event_type: c.event_type, attempt: 1,
             url: c.url, request_headers: {}, response_status: 200, response_headers: {}, response_body: "ok", error: null, duration_ms: 1, success: true },
    }));
    for (let run = 0; run < 8; run++) {
      await client.query("begin");
      await client.query(recordStatement(records, "flat-claims", 120));
      const locked = await lockedPartitionIndexes(client);
      if (!planning(run)) assert.deepEqual([...locked].filter((partition) => !batch.has(partition)), [], `record ${run + 1} opened other partitions`);
      const { rows: [done] } = await client.query<{ n: number; bodies: number }>(
        `select (select count(*) from webhooks.deliveries where state = 'succeeded')::int as n,
                (select count(*) from webhooks.webhook_logs where request_body is not null)::int as bodies`);
      assert.deepEqual(done, { n: 3, bodies: 3 }, "the deliveries finished, their attempts logged with the bodies sent");
      await client.query("rollback");
    }
  } finally {
    client.release();
  }
});
