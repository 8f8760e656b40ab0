import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createLogger } from "../../src/logger.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate } from "../../src/db/migrate.js";
import { databaseUrl } from "../support/database.js";

// Upgrading a database that holds what the previous release let through
// (sql/000012_tenant_hardening.sql): rows of one organization that reference another's, and
// attempts logged twice under one number (three replays in one transaction used to queue three
// jobs). The upgrade succeeds, repairs both, and says so.

const name = `pgw_th_${randomBytes(6).toString("hex")}`;
let admin: pg.Client;
let pool: Pool;
/** The migrator's log lines of the upgrade. */
const lines: { level: string; message: string }[] = [];
const seeded: Record<string, string> = {};
let before12: unknown[];

async function insert(statement: string, values: unknown[]): Promise<string> {
  return (await pool.query<{ id: string }>(`${statement} returning id`, values)).rows[0]!.id;
}

/** Every CRM row's id and updated_at: the repair must not touch them. */
async function touched(): Promise<unknown[]> {
  return (await pool.query(
    "select id, updated_at from deals union all select id, updated_at from conversations union all select id, updated_at from messages order by id",
  )).rows;
}

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  pool = createPool(databaseUrl(name), { max: 2 });
  await migrate(pool, createLogger("silent"), { upTo: 11 });

  const a = (seeded.a = await insert("insert into organizations (name) values ('A')", []));
  const b = (seeded.b = await insert("insert into organizations (name) values ('B')", []));
  const contactA = (seeded.contactA = await insert("insert into contacts (organization_id, first_name) values ($1, 'a')", [a]));
  const contactB = (seeded.contactB = await insert("insert into contacts (organization_id, first_name) values ($1, 'b')", [b]));
  seeded.conversationA = await insert("insert into conversations (organization_id, contact_id, channel) values ($1, $2, 'sms')", [a, contactA]);
  seeded.conversationB = await insert("insert into conversations (organization_id, contact_id, channel) values ($1, $2, 'sms')", [b, contactB]);
  // What the previous release's plain foreign keys accepted from organization A:
  seeded.crossDeal = await insert("insert into deals (organization_id, contact_id, title) values ($1, $2, 'x')", [a, contactB]);
  seeded.crossConversation = await insert("insert into conversations (organization_id, contact_id, channel) values ($1, $2, 'x')", [a, contactB]);
  seeded.crossMessage = await insert("insert into messages (organization_id, conversation_id, direction, body) values ($1, $2, 'inbound', 'x')", [a, seeded.conversationB]);
  seeded.ownDeal = await insert("insert into deals (organization_id, contact_id, title) values ($1, $2, 'own')", [a, contactA]);
  seeded.ownMessage = await insert("insert into messages (organization_id, conversation_id, direction, body) values ($1, $2, 'inbound', 'own')", [a, seeded.conversationA]);

  // Attempts as the previous release logged them: one delivery replayed three times at once
  // (attempt 2 three times), one logged normally, and one waiting in the queue for attempt 4.
  const hook = await insert("insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'h', 'https://example.com', '{*}')", [a]);
  const delivery = async (state: string, attempts: number, logged: number[]) => {
    const eventId = `evt_${randomBytes(16).toString("hex")}`;
    await pool.query("insert into webhooks.events (id, organization_id, event_type, body, occurred_at) values ($1, $2, 'contact.created', '{}', now())", [eventId, a]);
    const id = await insert(
      "insert into webhooks.deliveries (organization_id, event_id, webhook_id, state, attempts) values ($1, $2, $3, $4, $5)",
      [a, eventId, hook, state, attempts],
    );
    for (const attempt of logged) {
      await pool.query(
        `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
         values ($1, $2, $3, $4, 'contact.created', $5, 'https://example.com', '{}', $6)`,
        [a, hook, eventId, id, attempt, attempt > 1],
      );
    }
    return id;
  };
  seeded.replayedAtOnce = await delivery("succeeded", 2, [1, 2, 2, 2]);
  seeded.loggedOnce = await delivery("succeeded", 2, [1, 2]);
  seeded.waiting = await delivery("failed", 3, [1, 2, 3]);
  await pool.query("insert into webhooks.delivery_queue (delivery_id, webhook_id, organization_id, retry) values ($1, $2, $3, true)", [seeded.waiting, hook, a]);

  // Attempts logged with a configuration's static headers, values and all.
  const hexHook = await insert(
    `insert into webhooks.webhook_configurations (organization_id, name, url, events, signature_scheme, signature_header)
     values ($1, 'hex', 'https://example.com', '{*}', 'hmac-hex', 'X-Acme-Signature')`, [a]);
  const logged = (webhookId: string, headers: Record<string, string>) => insert(
    `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
     values ($1, $2, 'evt_old', gen_random_uuid(), 'contact.created', 1, 'https://example.com', $3, true)`,
    [a, webhookId, headers]);
  const signature = "ab".repeat(32);
  seeded.standardLog = await logged(hook, {
    "content-type": "application/json", "user-agent": "pg-webhooks/0.1.0", "x-webhook-event": "contact.created",
    "x-webhook-delivery-id": "d", "webhook-id": "evt_old", "webhook-timestamp": "1", "webhook-signature": "v1,c2ln",
    Authorization: "Bearer old-token",
  });
  seeded.hexLog = await logged(hexHook, { "content-type": "application/json", "x-webhook-timestamp": "t", "x-acme-signature": signature, "X-Api-Key": "old-key" });
  seeded.goneLog = await logged("00000000-0000-4000-8000-00000000dead", { "content-type": "application/json", "x-gone-signature": signature, authorization: "Bearer gone" });

  await pool.query("delete from webhooks.outbox");
  before12 = await touched();
  await migrate(pool, createLogger("warn", (line) => lines.push(JSON.parse(line) as { level: string; message: string })));
});
after(async () => {
  await pool.end();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
});

async function target(table: string, column: string, id: string): Promise<unknown> {
  return (await pool.query(`select ${column} as target from ${table} where id = $1`, [id])).rows[0]?.target;
}

test("references across organizations are detached, recorded and reported; every other row is kept as it was", async () => {
  assert.equal(await target("deals", "contact_id", seeded.crossDeal!), null);
  assert.equal(await target("conversations", "contact_id", seeded.crossConversation!), null);
  assert.equal(await target("messages", "conversation_id", seeded.crossMessage!), null, "the message is kept, detached from B's conversation");
  assert.equal(await target("deals", "contact_id", seeded.ownDeal!), seeded.contactA);
  assert.equal(await target("messages", "conversation_id", seeded.ownMessage!), seeded.conversationA);
  assert.equal(await target("conversations", "contact_id", seeded.conversationB!), seeded.contactB);

  const { rows: recorded } = await pool.query(
    `select table_name, row_id, organization_id, column_name, referenced_id, referenced_organization_id
       from webhooks.detached_references order by table_name`,
  );
  const { a, b, contactB, conversationB } = seeded;
  assert.deepEqual(recorded, [
    { table_name: "public.conversations", row_id: seeded.crossConversation, organization_id: a, column_name: "contact_id", referenced_id: contactB, referenced_organization_id: b },
    { table_name: "public.deals", row_id: seeded.crossDeal, organization_id: a, column_name: "contact_id", referenced_id: contactB, referenced_organization_id: b },
    { table_name: "public.messages", row_id: seeded.crossMessage, organization_id: a, column_name: "conversation_id", referenced_id: conversationB, referenced_organization_id: b },
  ]);
  const warnings = lines.filter((line) => line.level === "warn").map((line) => line.message);
  assert.ok(
    warnings.some((message) => /detached 3 references to another organization's rows .*webhooks\.detached_references/.test(message)),
    `the upgrade says so in its log: ${JSON.stringify(warnings)}`,
  );

  assert.deepEqual(await touched(), before12, "the repair changes no updated_at");
  assert.deepEqual((await pool.query("select event_type from webhooks.outbox")).rows, [], "and emits no events");
  await assert.rejects(
    pool.query("insert into deals (organization_id, contact_id, title) values ($1, $2, 'x')", [a, contactB]),
    (error: pg.DatabaseError) => error.code === "23503",
    "from now on such a reference is refused",
  );
});

test("attempts logged twice under one number are numbered in the order they were logged, and the delivery's count follows", async () => {
  const attempts = async (delivery: string) => {
    const { rows } = await pool.query<{ attempt: number }>("select attempt from webhooks.webhook_logs where delivery_id = $1 order by id", [delivery]);
    return rows.map((row) => row.attempt);
  };
  assert.deepEqual(await attempts(seeded.replayedAtOnce!), [1, 2, 3, 4]);
  assert.deepEqual(await attempts(seeded.loggedOnce!), [1, 2]);
  const { rows } = await pool.query("select id, attempts from webhooks.deliveries where id = any ($1::uuid[]) order by attempts",
    [[seeded.replayedAtOnce, seeded.loggedOnce, seeded.waiting]]);
  assert.deepEqual(rows, [
    { id: seeded.loggedOnce, attempts: 2 },
    { id: seeded.waiting, attempts: 3 },
    { id: seeded.replayedAtOnce, attempts: 4 },
  ]);
  const { rows: queued } = await pool.query("select attempts from webhooks.delivery_queue where delivery_id = $1", [seeded.waiting]);
  assert.deepEqual(queued, [{ attempts: 3 }], "the queued delivery's next attempt is its 4th");
  assert.ok(
    lines.some((line) => line.level === "warn" && /renumbered 2 attempts of 1 delivery/.test(line.message)),
    JSON.stringify(lines),
  );
});

test("from now on a second row under one attempt number of a delivery is refused (unique in each partition of webhook_logs, sql/000017)", async () => {
  const { rows: [log] } = await pool.query("select * from webhooks.webhook_logs where delivery_id = $1 limit 1", [seeded.loggedOnce]);
  const insert = () =>
    pool.query(
      `insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success)
       values ($1, $2, $3, $4, $5, $6, $7, '{}', false)`,
      [log.organization_id, log.webhook_id, log.event_id, log.delivery_id, log.event_type, log.attempt + 100, log.url],
    );
  await insert();
  await assert.rejects(insert(), (error: pg.DatabaseError) => error.code === "23505" && /delivery_id_attempt/.test(error.message));
});

test("static header values an older release logged are redacted; the headers pg-webhooks sets, signatures included, stay", async () => {
  const headersOf = async (id: string) =>
    (await pool.query("select request_headers from webhooks.webhook_logs where id = $1", [id])).rows[0]!.request_headers as Record<string, string>;
  assert.deepEqual(await headersOf(seeded.standardLog!), {
    "content-type": "application/json", "user-agent": "pg-webhooks/0.1.0", "x-webhook-event": "contact.created",
    "x-webhook-delivery-id": "d", "webhook-id": "evt_old", "webhook-timestamp": "1", "webhook-signature": "v1,c2ln",
    Authorization: "[redacted]",
  });
  assert.deepEqual(await headersOf(seeded.hexLog!), {
    "content-type": "application/json", "x-webhook-timestamp": "t", "x-acme-signature": "ab".repeat(32), "X-Api-Key": "[redacted]",
  });
  assert.deepEqual(await headersOf(seeded.goneLog!), {
    "content-type": "application/json", "x-gone-signature": "[redacted]", authorization: "[redacted]",
  }, "a deleted configuration's headers: all but the standard ones");
  assert.ok(lines.some((line) => line.level === "warn" && /redacted the static header values of 3 attempts/.test(line.message)), JSON.stringify(lines));
});
