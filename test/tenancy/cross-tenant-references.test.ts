import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import type pg from "pg";
import { fanOutStatement } from "../../src/capture/fan-out-statement.js";
import { createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "./roles.js";

// A row of one organization never references a row of another (sql/000012_tenant_hardening.sql):
// referential checks run as the table owner, past row-level security, so a plain foreign key let
// organization A attach its rows to B's — and B's delete then cascaded into A's rows, and the
// foreign-key error told A which of B's ids exist. Composite keys (organization_id, …) keep every
// reference inside one organization, and another organization's row is answered exactly like a
// row that does not exist.

const h = useHarness({ app: true, twoOrganizations: true });

interface Reference {
  /** The referencing table and column, and the referenced table. */
  table: string;
  column: string;
  references: string;
  /** Inserts a referencing row for organization $1 pointing at $2, returning id. */
  insert: string;
}

const references: Reference[] = [
  { table: "deals", column: "contact_id", references: "contacts", insert: "insert into deals (organization_id, contact_id, title) values ($1, $2, 'Deal') returning id" },
  { table: "conversations", column: "contact_id", references: "contacts", insert: "insert into conversations (organization_id, contact_id, channel) values ($1, $2, 'sms') returning id" },
  { table: "messages", column: "conversation_id", references: "conversations", insert: "insert into messages (organization_id, conversation_id, direction, body) values ($1, $2, 'inbound', 'hi') returning id" },
];

/** A row of `table` for `organization` (contacts or conversations), made by the superuser. */
async function rowOf(table: string, organization: string): Promise<string> {
  const insert = table === "contacts"
    ? "insert into contacts (organization_id, first_name) values ($1, 'Bo') returning id"
    : "insert into conversations (organization_id, channel) values ($1, 'sms') returning id";
  return (await h.db.pool.query<{ id: string }>(insert, [organization])).rows[0]!.id;
}

/** What the application is told when a statement fails, with the two ids it named made equal. */
async function refusal(work: (client: pg.PoolClient) => Promise<unknown>, ids: string[]): Promise<{ code: string; message: string; detail: string }> {
  const error = await asTenant(h.app.pool, h.orgA, work).then(
    () => assert.fail("the statement succeeded"),
    (failure: pg.DatabaseError) => failure,
  );
  const same = (text: string | undefined) => ids.reduce((out, id) => out.replaceAll(id, "<id>"), text ?? "");
  return { code: String(error.code), message: same(error.message), detail: same(error.detail) };
}

for (const reference of references) {
  describe(`${reference.table}.${reference.column} → ${reference.references}`, () => {
    test("organization A cannot reference B's row, and is told exactly what a missing row gets", async () => {
      const theirs = await rowOf(reference.references, h.orgB);
      const missing = randomUUID();
      const foreign = await refusal((client) => client.query(reference.insert, [h.orgA, theirs]), [theirs]);
      const absent = await refusal((client) => client.query(reference.insert, [h.orgA, missing]), [missing]);
      assert.equal(foreign.code, "23503");
      assert.deepEqual(foreign, absent, "another organization's row is indistinguishable from a missing one");
      const { rows } = await h.db.pool.query(`select 1 from ${reference.table} where ${reference.column} = $1`, [theirs]);
      assert.equal(rows.length, 0, "nothing references B's row");
    });

    test("organization A cannot move its row onto B's, and is told exactly what a missing row gets", async () => {
      const mine = await rowOf(reference.references, h.orgA);
      const theirs = await rowOf(reference.references, h.orgB);
      const missing = randomUUID();
      const id = (await asTenant(h.app.pool, h.orgA, (client) => client.query<{ id: string }>(reference.insert, [h.orgA, mine]))).rows[0]!.id;
      const move = (target: string) => (client: pg.PoolClient) =>
        client.query(`update ${reference.table} set ${reference.column} = $1 where id = $2`, [target, id]);
      const foreign = await refusal(move(theirs), [theirs]);
      const absent = await refusal(move(missing), [missing]);
      assert.equal(foreign.code, "23503");
      assert.deepEqual(foreign, absent);
      const { rows } = await h.db.pool.query(`select ${reference.column} as target from ${reference.table} where id = $1`, [id]);
      assert.deepEqual(rows, [{ target: mine }], "A's row still references A's own row");
    });

    test("within one organization the reference works, and deleting the referenced row does what it always did", async () => {
      const mine = await rowOf(reference.references, h.orgA);
      const id = (await asTenant(h.app.pool, h.orgA, (client) => client.query<{ id: string }>(reference.insert, [h.orgA, mine]))).rows[0]!.id;
      await asTenant(h.app.pool, h.orgA, (client) => client.query(`delete from ${reference.references} where id = $1`, [mine]));
      const { rows } = await h.db.pool.query(`select ${reference.column} as target from ${reference.table} where id = $1`, [id]);
      // A conversation's messages go with it; deals and conversations only lose their contact.
      assert.deepEqual(rows, reference.table === "messages" ? [] : [{ target: null }]);
    });
  });
}

test("a webhook id chosen by another organization never receives the deliveries its previous owner left behind", async () => {
  const receiverA = await h.startReceiver();
  const receiverB = await h.startReceiver();
  const hookId = randomUUID();
  await h.db.pool.query("delete from webhooks.outbox"); // the events of the tests above
  await createWebhook(h.db.pool, { organizationId: h.orgB, url: receiverB.url, events: ["contact.created"], id: hookId });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'B''s secret customer')", [h.orgB]);

  // B deletes its webhook while a fan-out that already read it creates its delivery: the
  // delete's trigger cannot see that delivery, which is left behind, queued for the id.
  const deleting = await h.app.pool.connect();
  try {
    await deleting.query("begin");
    await deleting.query("select set_config('app.organization_id', $1, true)", [h.orgB]);
    await deleting.query("delete from webhooks.webhook_configurations where id = $1", [hookId]);
    const fannedOut = await h.db.pool.query<{ deliveries: number }>(fanOutStatement({ limit: 100 }));
    assert.equal(fannedOut.rows[0]!.deliveries, 1);
    await deleting.query("commit");
  } finally {
    deleting.release();
  }
  const { rows: left } = await h.db.pool.query("select organization_id from webhooks.delivery_queue where webhook_id = $1", [hookId]);
  assert.deepEqual(left, [{ organization_id: h.orgB }], "B's delivery is left behind in the queue");
  // B's attempt logs stay after its webhook is gone (they are B's history).
  await h.db.pool.query(
    `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
     values ($1, $2, 'evt_b', gen_random_uuid(), 'contact.created', 1, $3, '{}', false)`,
    [h.orgB, hookId, receiverB.url],
  );

  // A creates a webhook with that id, then writes a contact of its own.
  await asTenant(h.app.pool, h.orgA, async (client) => {
    await client.query(
      "insert into webhooks.webhook_configurations (id, organization_id, name, url, events) values ($1, $2, 'mine', $3, '{contact.created}')",
      [hookId, h.orgA, receiverA.url],
    );
    await client.query("insert into contacts (organization_id, first_name) values ($1, 'A''s customer')", [h.orgA]);
  });
  await h.startDaemon();
  await waitFor("A's event at A's receiver", () => receiverA.requests.some((request) => request.body.includes("A's customer")));
  await waitFor("the queue of that id to empty", async () =>
    (await h.db.pool.query("select 1 from webhooks.delivery_queue where webhook_id = $1", [hookId])).rowCount === 0);
  assert.deepEqual(
    receiverA.requests.map((request) => (JSON.parse(request.body) as { organization_id: string }).organization_id),
    [h.orgA],
    "A's receiver got A's event and nothing of B's",
  );
  assert.equal(receiverB.requests.length, 0);
  const { rows: stats } = await h.db.pool.query("select attempts_24h::int as attempts from webhooks.webhook_stats where webhook_id = $1", [hookId]);
  assert.deepEqual(stats, [{ attempts: 1 }], "A's endpoint's statistics count A's attempt only, even for a DBA");
  const { rows: leftovers } = await h.db.pool.query("select 1 from webhooks.deliveries where webhook_id = $1 and organization_id = $2", [hookId, h.orgB]);
  assert.equal(leftovers.length, 0, "B's left-behind delivery is gone");
});

test("a configuration stays in its organization, even for a superuser: its endpoint state and deliveries are that organization's", async () => {
  const hook = await createWebhook(h.db.pool, { organizationId: h.orgA, url: "https://a.example.com/hook" });
  await assert.rejects(
    h.db.pool.query("update webhooks.webhook_configurations set organization_id = $1 where id = $2", [h.orgB, hook.id]),
    (error: pg.DatabaseError) => error.code === "23503" && /endpoint_states/.test(error.message),
  );
  const { rows } = await h.db.pool.query("select organization_id from webhooks.webhook_configurations where id = $1", [hook.id]);
  assert.deepEqual(rows, [{ organization_id: h.orgA }]);
});
