/**
 * The event catalog (docs/events.md): which writes to the reference CRM tables put which events into
 * webhooks.outbox (no daemon runs here, so captured rows stay in the outbox to be read).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { outboxRowsAdded } from "./outbox.js";

const h = useHarness();
let org: string;
const agent = "00000000-0000-4000-8000-00000000000a";
const otherAgent = "00000000-0000-4000-8000-00000000000b";

h.before(async () => {
  org = await createOrganization(h.db.pool);
});

const captured = (write: () => Promise<unknown>) => outboxRowsAdded(h.db.pool, write);

async function types(write: () => Promise<unknown>): Promise<string[]> {
  return (await captured(write)).map((row) => row.event_type);
}

const sql = (text: string, ...params: unknown[]) => () => h.db.pool.query(text, params);

async function insert(table: string, values: Record<string, unknown>): Promise<string> {
  const columns = ["organization_id", ...Object.keys(values)];
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into ${table} (${columns.join(", ")}) values (${columns.map((_, i) => `$${i + 1}`).join(", ")}) returning id`,
    [org, ...Object.values(values)],
  );
  return rows[0]!.id;
}

test("the catalog table lists exactly the documented event types", async () => {
  const { rows } = await h.db.pool.query<{ name: string }>("select name from webhooks.event_types where source = 'catalog' order by name");
  assert.deepEqual(rows.map((row) => row.name), [
    "broadcast.response", "contact.assigned", "contact.created", "contact.updated",
    "conversation.assigned", "conversation.created", "conversation.status.changed",
    "deal.assigned", "deal.created", "deal.stage.changed", "deal.updated",
    "message.delivered", "message.failed", "message.read", "message.received", "message.sent",
    "webhook.test", "zoom.recording.completed",
  ]);
});

describe("contacts", () => {
  test("an insert emits contact.created carrying the row, with no old row and no target webhook", async () => {
    let id = "";
    const rows = await captured(async () => (id = await insert("contacts", { first_name: "Ada", email: "ada@example.com" })));
    assert.deepEqual(rows.map((row) => row.event_type), ["contact.created"]);
    const [row] = rows;
    assert.equal(row!.organization_id, org);
    assert.equal(row!.data.id, id);
    assert.equal(row!.data.email, "ada@example.com");
    assert.equal(row!.data.assigned_to, null);
    assert.equal(row!.old_data, null);
    assert.equal(row!.webhook_id, null);
  });

  test("an insert with an assignee emits contact.created then contact.assigned", async () => {
    assert.deepEqual(await types(() => insert("contacts", { first_name: "Bo", assigned_to: agent })), ["contact.created", "contact.assigned"]);
  });

  test("an update of email emits contact.updated with the rows after and before", async () => {
    const id = await insert("contacts", { email: "old@example.com" });
    const rows = await captured(sql("update contacts set email = 'new@example.com' where id = $1", id));
    assert.deepEqual(rows.map((row) => row.event_type), ["contact.updated"]);
    assert.equal(rows[0]!.data.email, "new@example.com");
    assert.equal(rows[0]!.old_data!.email, "old@example.com");
  });

  test("setting assigned_to emits contact.updated and contact.assigned; reassigning does too", async () => {
    const id = await insert("contacts", { first_name: "Cy" });
    assert.deepEqual(await types(sql("update contacts set assigned_to = $2 where id = $1", id, agent)), ["contact.updated", "contact.assigned"]);
    assert.deepEqual(await types(sql("update contacts set assigned_to = $2 where id = $1", id, otherAgent)), ["contact.updated", "contact.assigned"]);
  });

  test("clearing assigned_to emits contact.updated only", async () => {
    const id = await insert("contacts", { assigned_to: agent });
    assert.deepEqual(await types(sql("update contacts set assigned_to = null where id = $1", id)), ["contact.updated"]);
  });

  test("an update that changes only updated_at emits nothing", async () => {
    const id = await insert("contacts", { email: "same@example.com" });
    // set_updated_at() moves updated_at on every UPDATE: these change updated_at and nothing else.
    assert.deepEqual(await types(sql("update contacts set email = email where id = $1", id)), []);
    assert.deepEqual(await types(sql("update contacts set updated_at = now() - interval '1 day' where id = $1", id)), []);
  });

  test("an update that changes nothing at all emits nothing", async () => {
    // In the inserting transaction, updated_at = now() already, so the update is a true no-op.
    const rows = await captured(async () => {
      const client = await h.db.pool.connect();
      try {
        await client.query("begin");
        const { rows: [row] } = await client.query<{ id: string }>(
          "insert into contacts (organization_id, city) values ($1, 'Oslo') returning id", [org]);
        await client.query("update contacts set city = 'Oslo' where id = $1", [row!.id]);
        await client.query("commit");
      } finally {
        client.release();
      }
    });
    assert.deepEqual(rows.map((row) => row.event_type), ["contact.created"]);
  });

  test("jsonb columns compare by value: reordered keys emit nothing, a changed value emits contact.updated", async () => {
    const id = await insert("contacts", { custom_fields: { a: 1, b: { c: [1, 2] } } });
    assert.deepEqual(await types(sql(`update contacts set custom_fields = '{"b":{"c":[1,2]},"a":1}' where id = $1`, id)), []);
    assert.deepEqual(await types(sql(`update contacts set custom_fields = '{"a":1,"b":{"c":[2,1]}}' where id = $1`, id)), ["contact.updated"]);
  });

  test("a rolled-back insert emits nothing", async () => {
    const rows = await captured(async () => {
      const client = await h.db.pool.connect();
      try {
        await client.query("begin");
        await client.query("insert into contacts (organization_id, first_name, assigned_to) values ($1, 'Ghost', $2)", [org, agent]);
        await client.query("rollback");
      } finally {
        client.release();
      }
    });
    assert.deepEqual(rows, []);
  });

  test("a delete emits nothing (the catalog has no contact.deleted)", async () => {
    const id = await insert("contacts", { first_name: "Gone" });
    assert.deepEqual(await types(sql("delete from contacts where id = $1", id)), []);
  });
});

describe("deals", () => {
  test("an insert emits deal.created; with an assignee also deal.assigned; a stage on insert is not a stage change", async () => {
    assert.deepEqual(await types(() => insert("deals", { title: "Big", stage: "lead" })), ["deal.created"]);
    assert.deepEqual(await types(() => insert("deals", { title: "Bigger", assigned_to: agent })), ["deal.created", "deal.assigned"]);
  });

  test("an update of title emits deal.updated", async () => {
    const id = await insert("deals", { title: "Old" });
    assert.deepEqual(await types(sql("update deals set title = 'New' where id = $1", id)), ["deal.updated"]);
  });

  test("a stage change emits deal.updated and deal.stage.changed, also when the stage is cleared", async () => {
    const id = await insert("deals", { stage: "lead" });
    assert.deepEqual(await types(sql("update deals set stage = 'won' where id = $1", id)), ["deal.updated", "deal.stage.changed"]);
    assert.deepEqual(await types(sql("update deals set stage = null where id = $1", id)), ["deal.updated", "deal.stage.changed"]);
  });

  test("assignment emits deal.assigned only for a non-null assignee", async () => {
    const id = await insert("deals", { title: "T" });
    assert.deepEqual(await types(sql("update deals set assigned_to = $2, stage = 'won' where id = $1", id, agent)),
      ["deal.updated", "deal.assigned", "deal.stage.changed"]);
    assert.deepEqual(await types(sql("update deals set assigned_to = null where id = $1", id)), ["deal.updated"]);
  });

  test("an update that changes only updated_at emits nothing", async () => {
    const id = await insert("deals", { title: "T", stage: "lead", amount: 10 });
    assert.deepEqual(await types(sql("update deals set stage = stage, amount = amount where id = $1", id)), []);
  });
});

describe("conversations", () => {
  test("an insert emits conversation.created; with an assignee also conversation.assigned", async () => {
    assert.deepEqual(await types(() => insert("conversations", { channel: "sms", status: "open" })), ["conversation.created"]);
    assert.deepEqual(await types(() => insert("conversations", { channel: "sms", assigned_to: agent })),
      ["conversation.created", "conversation.assigned"]);
  });

  test("changing other columns emits nothing (the catalog has no conversation.updated)", async () => {
    const id = await insert("conversations", { channel: "sms", status: "open" });
    assert.deepEqual(await types(sql("update conversations set channel = 'email' where id = $1", id)), []);
  });

  test("a status change emits conversation.status.changed", async () => {
    const id = await insert("conversations", { status: "open" });
    assert.deepEqual(await types(sql("update conversations set status = 'closed' where id = $1", id)), ["conversation.status.changed"]);
  });

  test("assignment emits conversation.assigned; clearing the assignee emits nothing", async () => {
    const id = await insert("conversations", { status: "open" });
    assert.deepEqual(await types(sql("update conversations set assigned_to = $2, status = 'pending' where id = $1", id, agent)),
      ["conversation.assigned", "conversation.status.changed"]);
    assert.deepEqual(await types(sql("update conversations set assigned_to = null where id = $1", id)), []);
  });
});

describe("messages", () => {
  test("an inbound insert emits message.received; with broadcast_id also broadcast.response", async () => {
    assert.deepEqual(await types(() => insert("messages", { direction: "inbound", body: "hi" })), ["message.received"]);
    assert.deepEqual(await types(() => insert("messages", { direction: "inbound", body: "yes", broadcast_id: agent })),
      ["message.received", "broadcast.response"]);
  });

  test("an outbound insert emits the event of its status, and nothing for other statuses", async () => {
    assert.deepEqual(await types(() => insert("messages", { direction: "outbound", status: "sent" })), ["message.sent"]);
    assert.deepEqual(await types(() => insert("messages", { direction: "outbound", status: "delivered" })), ["message.delivered"]);
    assert.deepEqual(await types(() => insert("messages", { direction: "outbound", status: "queued" })), []);
    assert.deepEqual(await types(() => insert("messages", { direction: "outbound", status: null })), []);
    assert.deepEqual(await types(() => insert("messages", { direction: "outbound", status: "sent", broadcast_id: agent })), ["message.sent"]);
  });

  test("an outbound status update emits message.sent/.delivered/.read/.failed as the status becomes each", async () => {
    const id = await insert("messages", { direction: "outbound", status: "queued" });
    for (const status of ["sent", "delivered", "read", "failed"]) {
      assert.deepEqual(await types(sql("update messages set status = $2 where id = $1", id, status)), [`message.${status}`]);
    }
  });

  test("an outbound update to another status, or that leaves the status alone, emits nothing", async () => {
    const id = await insert("messages", { direction: "outbound", status: "delivered" });
    assert.deepEqual(await types(sql("update messages set body = 'edited' where id = $1", id)), []);
    assert.deepEqual(await types(sql("update messages set status = 'queued' where id = $1", id)), []);
  });

  test("an inbound update emits nothing, whatever it changes", async () => {
    const id = await insert("messages", { direction: "inbound", body: "hi" });
    assert.deepEqual(await types(sql("update messages set status = 'read' where id = $1", id)), []);
    assert.deepEqual(await types(sql("update messages set status = 'delivered', broadcast_id = $2, body = 'x' where id = $1", id, agent)), []);
  });
});

test("table writes produce every table-driven catalog type and never webhook.test or zoom.recording.completed", async () => {
  const rows = await captured(async () => {
    const contact = await insert("contacts", { assigned_to: agent });
    await h.db.pool.query("update contacts set city = 'Rome' where id = $1", [contact]);
    const deal = await insert("deals", { assigned_to: agent, stage: "lead" });
    await h.db.pool.query("update deals set stage = 'won' where id = $1", [deal]);
    const conversation = await insert("conversations", { assigned_to: agent, status: "open" });
    await h.db.pool.query("update conversations set status = 'closed' where id = $1", [conversation]);
    await insert("messages", { direction: "inbound", broadcast_id: agent, conversation_id: conversation });
    const message = await insert("messages", { direction: "outbound", status: "sent" });
    for (const status of ["delivered", "read", "failed"]) {
      await h.db.pool.query("update messages set status = $2 where id = $1", [message, status]);
    }
    await h.db.pool.query("delete from messages where id = $1", [message]);
  });
  assert.deepEqual([...new Set(rows.map((row) => row.event_type))].sort(), [
    "broadcast.response", "contact.assigned", "contact.created", "contact.updated",
    "conversation.assigned", "conversation.created", "conversation.status.changed",
    "deal.assigned", "deal.created", "deal.stage.changed", "deal.updated",
    "message.delivered", "message.failed", "message.read", "message.received", "message.sent",
  ]);
  assert.ok(rows.every((row) => row.webhook_id === null && row.organization_id === org));
});

test("row timestamps in a payload are written in UTC, whatever TimeZone the writing session has", async () => {
  const writtenIn = async (timeZone: string) => {
    const [row] = await captured(async () => {
      const client = await h.db.pool.connect();
      try {
        await client.query("begin");
        await client.query(`set local timezone = '${timeZone}'`);
        await client.query("insert into contacts (organization_id, first_name) values ($1, 'Zoned')", [org]);
        await client.query("commit");
      } finally {
        client.release();
      }
    });
    return String(row!.data.created_at);
  };
  for (const zone of ["Asia/Tokyo", "America/Los_Angeles", "UTC"]) {
    assert.match(await writtenIn(zone), /\+00:00$/, `written from a session in ${zone}`);
  }
});
