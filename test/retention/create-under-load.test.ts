import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

// Partitions are made while the history tables are written to (README "Retention and
// monitoring"). A new database has today's partitions and the next ones from its migration, so a
// write of the current time never lands in a DEFAULT partition (where attaching its partition
// later would race with it); partitions made meanwhile, for other ranges, fail no write.

const h = useHarness({});

test("a new database has a partition for now in every history table; making partitions while four writers insert into webhook_logs fails none of them", async () => {
  const org = await createOrganization(h.db.pool);
  const { rows: covered } = await h.db.pool.query<{ table_name: string }>(
    `select h.table_name from webhooks._partitioned h
      where exists (select 1 from webhooks._partitions(h.table_name) p
                     where not p.is_default and coalesce(p.lower_bound <= now(), true) and p.upper_bound > now())
      order by 1`,
  );
  assert.deepEqual(covered.map((row) => row.table_name), ["deliveries", "events", "intake_activity", "webhook_logs"]);
  let writing = true;
  const writers = Array.from({ length: 4 }, async () => {
    const client = new pg.Client({ connectionString: h.db.url });
    await client.connect();
    let written = 0;
    try {
      while (writing) {
        await client.query(
          `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
           values ($1, $2, 'ev_load', $3, 'contact.created', 1, 'https://example.com', '{}', true)`,
          [org, randomUUID(), randomUUID()],
        );
        written += 1;
      }
    } finally {
      await client.end();
    }
    return written;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const notices: string[] = [];
  const client = new pg.Client({ connectionString: h.db.url });
  await client.connect();
  client.on("notice", (notice) => notices.push(notice.message ?? ""));
  try {
    await client.query("call webhooks.create_partitions(now() - interval '20 days')");
  } finally {
    await client.end();
    writing = false;
  }
  const written = (await Promise.all(writers)).reduce((a, b) => a + b, 0);
  assert.ok(notices.filter((line) => /^created webhook_logs_p\d{8}_000000$/.test(line)).length >= 19, JSON.stringify(notices));
  assert.ok(!notices.some((line) => line.startsWith("busy:")), JSON.stringify(notices));
  const { rows: [counts] } = await h.db.pool.query<{ total: number; in_default: number }>(
    `select (select count(*)::int from webhooks.webhook_logs where event_id = 'ev_load') as total,
            (select count(*)::int from webhooks.webhook_logs_default where event_id = 'ev_load') as in_default`,
  );
  assert.equal(counts!.total, written, "every row written is there");
  assert.equal(counts!.in_default, 0, "the rows of now are all in today's partition");
});
