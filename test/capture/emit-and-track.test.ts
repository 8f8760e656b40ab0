/**
 * Events (docs/events.md) that do not come from the reference CRM tables: webhooks.emit, webhooks.send_test,
 * and webhooks.track for an application's own table.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { outboxRowsAdded } from "./outbox.js";

const h = useHarness();
let org: string;

h.before(async () => {
  org = await createOrganization(h.db.pool);
});

const captured = (write: () => Promise<unknown>) => outboxRowsAdded(h.db.pool, write);

async function types(text: string, ...params: unknown[]): Promise<string[]> {
  return (await captured(() => h.db.pool.query(text, params))).map((row) => row.event_type);
}

describe("webhooks.emit", () => {
  test("emit of zoom.recording.completed writes one outbox row and returns its event id", async () => {
    let eventId = "";
    const rows = await captured(async () => {
      const { rows: [row] } = await h.db.pool.query<{ id: string }>(
        `select webhooks.emit($1, 'zoom.recording.completed', '{"meeting_id":"m-1","duration":42}') as id`, [org]);
      eventId = row!.id;
    });
    assert.match(eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(rows, [{
      event_id: eventId,
      event_type: "zoom.recording.completed",
      organization_id: org,
      data: { meeting_id: "m-1", duration: 42 },
      old_data: null,
      webhook_id: null,
    }]);
  });

  test("emit with null data records an empty object", async () => {
    const rows = await captured(() => h.db.pool.query("select webhooks.emit($1, 'zoom.recording.completed', null)", [org]));
    assert.deepEqual(rows.map((row) => row.data), [{}]);
  });

  test("emit of an unknown type, of webhook.test, or without an organization raises and writes nothing", async () => {
    const rows = await captured(async () => {
      await assert.rejects(h.db.pool.query("select webhooks.emit($1, 'zoom.meeting.started', '{}')", [org]),
        /webhooks\.emit: unknown event type 'zoom\.meeting\.started'/);
      await assert.rejects(h.db.pool.query("select webhooks.emit($1, 'webhook.test', '{}')", [org]),
        /webhooks\.emit: unknown event type 'webhook\.test'/);
      await assert.rejects(h.db.pool.query("select webhooks.emit($1, null, '{}')", [org]), /unknown event type/);
      await assert.rejects(h.db.pool.query("select webhooks.emit(null, 'zoom.recording.completed', '{}')"),
        /organization_id must not be null/);
    });
    assert.deepEqual(rows, []);
  });
});

describe("webhooks.send_test", () => {
  test("send_test writes one webhook.test row aimed at that webhook and returns its event id", async () => {
    const hook = await createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook", events: ["contact.created"] });
    let eventId = "";
    const rows = await captured(async () => {
      const { rows: [row] } = await h.db.pool.query<{ id: string }>("select webhooks.send_test($1) as id", [hook.id]);
      eventId = row!.id;
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.event_id, eventId);
    assert.equal(rows[0]!.event_type, "webhook.test");
    assert.equal(rows[0]!.webhook_id, hook.id);
    assert.equal(rows[0]!.organization_id, org);
    assert.equal(rows[0]!.data.webhook_id, hook.id);
    assert.equal(rows[0]!.old_data, null);
  });

  test("send_test of an unknown webhook raises and writes nothing", async () => {
    const rows = await captured(() =>
      assert.rejects(h.db.pool.query("select webhooks.send_test(gen_random_uuid())"), /webhooks\.send_test: no webhook/));
    assert.deepEqual(rows, []);
  });
});

describe("webhooks.track", () => {
  before(async () => {
    await h.db.pool.query(`
      create table public.invoices (
        id uuid primary key default gen_random_uuid(),
        organization_id uuid not null,
        number text,
        lines jsonb not null default '[]',
        updated_at timestamptz not null default now()
      );
      create table public.settings (id int primary key, value text);
      select webhooks.track('public.invoices', 'invoice');`);
  });

  test("track registers <entity>.created/.updated/.deleted so a configuration can subscribe to them", async () => {
    const { rows } = await h.db.pool.query<{ name: string; source: string }>(
      "select name, source from webhooks.event_types where name like 'invoice.%' order by name");
    assert.deepEqual(rows, [
      { name: "invoice.created", source: "tracked" },
      { name: "invoice.deleted", source: "tracked" },
      { name: "invoice.updated", source: "tracked" },
    ]);
    await createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook", events: ["invoice.created", "invoice.deleted"] });
    await assert.rejects(
      createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook", events: ["invoice.archived"] }),
      /invoice\.archived/);
  });

  test("an insert emits invoice.created with the row", async () => {
    const rows = await captured(() => h.db.pool.query("insert into invoices (organization_id, number) values ($1, 'INV-1')", [org]));
    assert.deepEqual(rows.map((row) => [row.event_type, row.organization_id, row.data.number, row.old_data]),
      [["invoice.created", org, "INV-1", null]]);
  });

  test("an update emits invoice.updated with the rows after and before; an updated_at-only update emits nothing", async () => {
    const { rows: [invoice] } = await h.db.pool.query<{ id: string }>(
      "insert into invoices (organization_id, number) values ($1, 'INV-2') returning id", [org]);
    const rows = await captured(() => h.db.pool.query("update invoices set number = 'INV-2b' where id = $1", [invoice!.id]));
    assert.deepEqual(rows.map((row) => [row.event_type, row.data.number, row.old_data?.number]), [["invoice.updated", "INV-2b", "INV-2"]]);
    assert.deepEqual(await types("update invoices set updated_at = now() - interval '1 hour' where id = $1", invoice!.id), []);
    assert.deepEqual(await types("update invoices set number = number, lines = '[]' where id = $1", invoice!.id), []);
  });

  test("a delete emits invoice.deleted carrying the deleted row", async () => {
    const { rows: [invoice] } = await h.db.pool.query<{ id: string }>(
      "insert into invoices (organization_id, number) values ($1, 'INV-3') returning id", [org]);
    const rows = await captured(() => h.db.pool.query("delete from invoices where id = $1", [invoice!.id]));
    assert.deepEqual(rows.map((row) => [row.event_type, row.organization_id, row.data.id, row.old_data]),
      [["invoice.deleted", org, invoice!.id, null]]);
  });

  test("tracking a table twice still emits each event once", async () => {
    await h.db.pool.query("select webhooks.track('public.invoices', 'invoice')");
    assert.deepEqual(await types("insert into invoices (organization_id, number) values ($1, 'INV-4')", org), ["invoice.created"]);
  });

  test("untrack stops the capture", async () => {
    await h.db.pool.query("select webhooks.untrack('public.invoices')");
    try {
      assert.deepEqual(await types("insert into invoices (organization_id, number) values ($1, 'INV-5')", org), []);
    } finally {
      await h.db.pool.query("select webhooks.track('public.invoices', 'invoice')");
    }
  });

  test("track on a table without organization_id raises a message naming the table and column", async () => {
    await assert.rejects(h.db.pool.query("select webhooks.track('public.settings', 'setting')"),
      /webhooks\.track: table public\.settings has no organization_id column/);
    assert.deepEqual(await types("insert into settings (id, value) values (1, 'x')"), []);
    const { rows } = await h.db.pool.query("select 1 from webhooks.event_types where name like 'setting.%'");
    assert.equal(rows.length, 0, "nothing registered for a refused table");
  });

  test("track refuses an entity name that is not lower-case letters, digits and _", async () => {
    await assert.rejects(h.db.pool.query("select webhooks.track('public.invoices', 'Invoice.x')"), /must be lower-case letters/);
  });
});
