import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createEvent, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { asTenant, assertPermissionDenied } from "./roles.js";

// What the daemon writes (events, deliveries, attempt logs) an application may only read, and
// only its own organization's; the outbox it may not touch at all, yet its writes still land
// there through the capture triggers.

const h = useHarness({ app: true, twoOrganizations: true });
const webhooks: Record<"a" | "b", string> = { a: "", b: "" };

/** Superuser seeding of one event, its delivery and one attempt for `org`, as the daemon would write them. */
async function seedDelivery(org: string, webhookId: string): Promise<void> {
  const eventId = await createEvent(h.db.pool, org);
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts) values ($1, $2, $3, 'failed', 1) returning id`,
    [org, eventId, webhookId],
  );
  await h.db.pool.query(
    `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url,
                                        request_headers, response_status, duration_ms, success)
     values ($1, $2, $3, $4, 'contact.created', 1, 'https://example.com/hook', '{}', 500, 12, false)`,
    [org, webhookId, eventId, rows[0]!.id],
  );
}

h.before(async () => {
  webhooks.a = (await createWebhook(h.db.pool, { organizationId: h.orgA, url: "https://a.example.com/hook" })).id;
  webhooks.b = (await createWebhook(h.db.pool, { organizationId: h.orgB, url: "https://b.example.com/hook" })).id;
  for (let i = 0; i < 2; i++) {
    await seedDelivery(h.orgA, webhooks.a);
    await seedDelivery(h.orgB, webhooks.b);
  }
});

const readOnly = [
  { table: "webhooks.events", insert: "insert into webhooks.events (id, organization_id, event_type, body, occurred_at) values ('evt_x', $1, 'contact.created', '{}', now())" },
  { table: "webhooks.deliveries", insert: "insert into webhooks.deliveries (organization_id, event_id, webhook_id) values ($1, 'evt_x', gen_random_uuid())" },
  {
    table: "webhooks.webhook_logs",
    insert: `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
             values ($1, gen_random_uuid(), 'evt_x', gen_random_uuid(), 'contact.created', 1, 'https://example.com', '{}', true)`,
  },
];

for (const { table, insert } of readOnly) {
  describe(table, () => {
    test("with organization A's setting, a SELECT returns exactly A's rows", async () => {
      const seen = await asTenant(h.app.pool, h.orgA, async (client) => {
        const { rows } = await client.query<{ organization_id: string }>(`select organization_id from ${table}`);
        const other = await client.query(`select 1 from ${table} where organization_id = $1`, [h.orgB]);
        assert.equal(other.rowCount, 0, "none of B's rows");
        return rows.map((row) => row.organization_id);
      });
      assert.deepEqual(seen, [h.orgA, h.orgA]);
    });

    test("without an organization setting, a SELECT returns nothing", async () => {
      for (const setting of [null, ""]) {
        const { rowCount } = await asTenant(h.app.pool, setting, (client) => client.query(`select 1 from ${table}`));
        assert.equal(rowCount, 0, `setting ${JSON.stringify(setting)}`);
      }
    });

    test("the application may not insert, update or delete, not even its own organization's rows", async () => {
      const before = (await h.db.pool.query(`select * from ${table} order by 1`)).rows;
      await assertPermissionDenied(asTenant(h.app.pool, h.orgA, (client) => client.query(insert, [h.orgA])), `INSERT into ${table}`);
      await assertPermissionDenied(
        asTenant(h.app.pool, h.orgA, (client) => client.query(`update ${table} set organization_id = organization_id`)),
        `UPDATE of ${table}`,
      );
      await assertPermissionDenied(asTenant(h.app.pool, h.orgA, (client) => client.query(`delete from ${table}`)), `DELETE from ${table}`);
      assert.deepEqual((await h.db.pool.query(`select * from ${table} order by 1`)).rows, before, "nothing changed");
    });
  });
}

describe("webhooks.outbox", () => {
  test("the application has no privilege on the outbox at all", async () => {
    const statements = [
      "select 1 from webhooks.outbox where organization_id = $1",
      "insert into webhooks.outbox (organization_id, event_type, data) values ($1, 'contact.created', '{}')",
      "update webhooks.outbox set data = '{}' where organization_id = $1",
      "delete from webhooks.outbox where organization_id = $1",
    ];
    for (const statement of statements) {
      await assertPermissionDenied(asTenant(h.app.pool, h.orgA, (client) => client.query(statement, [h.orgA])), statement);
    }
  });

  test("an application's write still reaches the outbox through the capture trigger, for its own organization", async () => {
    const contactId = await asTenant(h.app.pool, h.orgA, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        "insert into contacts (organization_id, first_name) values ($1, 'Grace') returning id",
        [h.orgA],
      );
      return rows[0]!.id;
    });
    const { rows } = await h.db.pool.query<{ organization_id: string; event_type: string }>(
      "select organization_id, event_type from webhooks.outbox where data->>'id' = $1",
      [contactId],
    );
    assert.deepEqual(rows, [{ organization_id: h.orgA, event_type: "contact.created" }]);
  });
});

describe("webhooks.webhook_stats", () => {
  test("the stats view shows the caller's webhooks only, computed from the caller's logs only", async () => {
    const stats = await asTenant(h.app.pool, h.orgA, async (client) => {
      const { rows } = await client.query<{ webhook_id: string; organization_id: string; attempts_24h: number; failed_24h: number }>(
        "select webhook_id, organization_id, attempts_24h, failed_24h from webhooks.webhook_stats",
      );
      return rows;
    });
    assert.deepEqual(stats, [{ webhook_id: webhooks.a, organization_id: h.orgA, attempts_24h: 2, failed_24h: 2 }]);
    const none = await asTenant(h.app.pool, null, (client) => client.query("select 1 from webhooks.webhook_stats"));
    assert.equal(none.rowCount, 0, "nothing without an organization");
    const all = await h.db.pool.query("select 1 from webhooks.webhook_stats");
    assert.equal(all.rowCount, 2, "the superuser sees both, so the filtering is the caller's RLS");
  });
});
