import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type pg from "pg";
import { Webhook } from "standardwebhooks";
import { withTransaction } from "../../src/db/pool.js";
import { createOrganization, createWebhook, type LogRow } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest, Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "../tenancy/roles.js";

// Poison isolation (sql/000009, src/capture/fan-out.ts, src/util/batcher.ts): no captured row,
// however deep, large or otherwise refused, stops anyone else's events. Each test has organizations
// and a receiver of its own; the daemon (superuser) runs in this process, the application writes
// through a webhooks_app login with app.organization_id set.

const h = useHarness({ app: true, daemon: true });

/** 6,000 nested arrays: deeper than any JavaScript JSON round trip of ours should have to survive. */
const DEEP = 6000;
const DEEP_SQL = `jsonb_build_object('x', (repeat('[', ${DEEP}) || repeat(']', ${DEEP}))::jsonb)`;

interface Payload {
  id: string;
  event: string;
  organization_id: string;
  data: Record<string, unknown> & { id: string };
}

const payloadId = (uuid: string) => `evt_${uuid.replace(/-/g, "")}`;
const at = (receiver: Receiver, path: string): ReceivedRequest[] => receiver.requests.filter((r) => r.path === path);
const pathOf = (url: string) => new URL(url).pathname;
const payloadOf = (request: ReceivedRequest) => JSON.parse(request.body) as Payload;
const receivedIds = (requests: ReceivedRequest[]) => requests.map((r) => payloadOf(r).data.id).sort();

/** How deep `value` nests arrays at index 0 (iterative: no recursion limit of the test's own). */
function arrayDepth(value: unknown): number {
  let depth = 0;
  while (Array.isArray(value)) {
    depth += 1;
    value = value[0];
  }
  return depth;
}

/** Two fresh organizations, a receiver, and a webhook per organization at its own path. */
async function twoTenants(events: string[] = ["contact.created"], extraA: Record<string, unknown> = {}, pathA = "/a") {
  const a = await createOrganization(h.db.pool, "A");
  const b = await createOrganization(h.db.pool, "B");
  const receiver = await h.startReceiver();
  const urlA = `${receiver.url}${pathA}`;
  const urlB = `${receiver.url}/b`;
  const hookA = await createWebhook(h.db.pool, { organizationId: a, url: urlA, events, ...extraA });
  const hookB = await createWebhook(h.db.pool, { organizationId: b, url: urlB, events });
  return { a, b, receiver, hookA, hookB, pathA: pathOf(urlA), pathB: pathOf(urlB) };
}

/** As the application, in organization `org`'s transaction: contacts with these first names; their ids, sorted. */
async function insertContacts(org: string, names: string[]): Promise<string[]> {
  return asTenant(h.app.pool, org, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      "insert into contacts (organization_id, first_name) select $1, name from unnest($2::text[]) as name returning id",
      [org, names],
    );
    return rows.map((row) => row.id).sort();
  });
}

const names = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

async function deliveriesOf(webhookId: string) {
  const { rows } = await h.db.pool.query<{ id: string; event_id: string; state: string; attempts: number; last_error: string | null }>(
    "select id, event_id, state, attempts, last_error from webhooks.deliveries where webhook_id = $1 order by created_at, id",
    [webhookId],
  );
  return rows;
}

async function logsOf(webhookId: string): Promise<LogRow[]> {
  const { rows } = await h.db.pool.query<LogRow>("select * from webhooks.webhook_logs where webhook_id = $1 order by id", [webhookId]);
  return rows;
}

/** Waits until `count` deliveries of the endpoint exist and none is pending or failed; returns them. */
function settled(webhookId: string, count: number, timeoutMs = 30_000) {
  return waitFor(`${count} finished deliveries of ${webhookId}`, async () => {
    const rows = await deliveriesOf(webhookId);
    return rows.length === count && rows.every((row) => row.state === "succeeded" || row.state === "dead") ? rows : undefined;
  }, timeoutMs);
}

async function setAsideOf(organizationIds: string[]) {
  const { rows } = await h.db.pool.query<{ id: number; event_id: string; organization_id: string; data: { id: string; first_name?: string }; error: string }>(
    "select id, event_id, organization_id, data, error from webhooks.outbox_set_aside where organization_id = any ($1::uuid[]) order by id",
    [organizationIds],
  );
  return rows;
}

async function outboxCount(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>("select count(*)::int as n from webhooks.outbox");
  return rows[0]!.n;
}

/** Two outbox rows of `org` with the same event id: the second one's fan-out violates events' primary key. */
async function insertDuplicatePair(client: pg.ClientBase, org: string): Promise<string> {
  const { rows } = await client.query<{ event_id: string }>("select gen_random_uuid() as event_id");
  const eventId = rows[0]!.event_id;
  for (const copy of ["dup-1", "dup-2"]) {
    await client.query(
      "insert into webhooks.outbox (event_id, organization_id, event_type, data) values ($1, $2, 'contact.created', jsonb_build_object('id', $3::text))",
      [eventId, org, copy],
    );
  }
  return eventId;
}

/** A set-aside row of `org`, made the way production makes one (a row-specific fan-out failure). */
async function setAsideDuplicate(org: string) {
  const eventId = await withTransaction(h.db.pool, (client) => insertDuplicatePair(client, org));
  const [row] = await waitFor("the duplicate to be set aside", async () => {
    const rows = (await setAsideOf([org])).filter((r) => r.event_id === eventId);
    return rows.length > 0 ? rows : undefined;
  });
  return row!;
}

/** A temporary row trigger (superuser): raises `errcode` with `message` when `condition` holds; returns its remover. */
async function installRefusal(table: string, condition: string, errcode: string, message: string): Promise<() => Promise<void>> {
  const name = `test_refuse_${Math.random().toString(36).slice(2, 10)}`;
  await h.db.pool.query(`
    create function public.${name}() returns trigger language plpgsql as $$
    begin
      if ${condition} then
        raise exception using errcode = '${errcode}', message = '${message}';
      end if;
      return new;
    end $$;
    create trigger ${name} before insert on ${table} for each row execute function public.${name}();`);
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    // DDL on a partitioned table locks each partition: against a running daemon it may be the
    // one a deadlock is broken on (40P01); it is tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        await h.db.pool.query(`drop trigger if exists ${name} on ${table}; drop function if exists public.${name}();`);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== "40P01" || attempt === 5) throw error;
      }
    }
  };
  h.defer(drop);
  return drop;
}

async function metrics(): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}/metrics`);
  assert.equal(response.status, 200);
  const values = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    const match = /^([a-z_]+) (\S+)$/.exec(line);
    if (match) values.set(match[1]!, Number(match[2]));
  }
  return values;
}

test("the issue's reproduction: a contact nested 6,000 deep is delivered exactly, and another organization's events flow past it", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants();
  const deepId = await asTenant(h.app.pool, a, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      `insert into contacts (organization_id, first_name, custom_fields) values ($1, 'deep', ${DEEP_SQL}) returning id`,
      [a],
    );
    return rows[0]!.id;
  });
  const bContacts = await insertContacts(b, names("b", 5));

  await waitFor("B's five events, written after A's deep one", () => at(receiver, pathB).length >= 5, 30_000);
  assert.deepEqual(receivedIds(at(receiver, pathB)), bContacts, "B got each of its five contacts");
  await waitFor("A's deep event", () => at(receiver, pathA).length >= 1);
  const [deep, ...more] = at(receiver, pathA);
  assert.equal(more.length, 0, "A got its one event once");
  const payload = payloadOf(deep!);
  assert.equal(payload.data.id, deepId);
  assert.equal(payload.data.first_name, "deep");
  assert.equal(arrayDepth((payload.data.custom_fields as { x: unknown }).x), DEEP, "the array arrives 6,000 deep");
  assert.ok(deep!.body.includes(`"x": ${"[".repeat(DEEP)}${"]".repeat(DEEP)}`), "the body carries the array's exact text");

  assert.deepEqual((await settled(hookA.id, 1)).map((d) => d.state), ["succeeded"]);
  assert.deepEqual((await settled(hookB.id, 5)).map((d) => d.state), Array(5).fill("succeeded"));
  assert.deepEqual(await setAsideOf([a, b]), [], "nothing set aside");
  assert.equal(receiver.requests.length, 6);
});

test("a payload over 256 KiB is logged once as not sent (request_body null, no retry) while another organization's events flow", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants(["contact.created"], { max_retries: 5 });
  await asTenant(h.app.pool, a, (client) =>
    client.query("insert into contacts (organization_id, first_name, custom_fields) values ($1, 'big', jsonb_build_object('notes', repeat('x', 300 * 1024)))", [a]),
  );
  const bContacts = await insertContacts(b, names("b", 3));

  await waitFor("B's three events", () => at(receiver, pathB).length >= 3, 30_000);
  assert.deepEqual(receivedIds(at(receiver, pathB)), bContacts);
  const [delivery] = await settled(hookA.id, 1);
  assert.equal(delivery!.state, "dead");
  assert.equal(delivery!.attempts, 1, "no retry: retrying cannot shrink the event");
  const logs = await logsOf(hookA.id);
  assert.equal(logs.length, 1, "exactly one logged attempt");
  assert.equal(logs[0]!.success, false);
  assert.match(String(logs[0]!.error), /256 KiB/);
  assert.equal(logs[0]!.request_body, null, "nothing was sent, so no body is logged");
  assert.equal(at(receiver, pathA).length, 0, "A's receiver got nothing");
  assert.deepEqual((await settled(hookB.id, 3)).map((d) => d.state), Array(3).fill("succeeded"));
  assert.deepEqual(await setAsideOf([a, b]), []);
});

test("a row over 8 MiB is never held whole: the outbox and the event keep only its id, and it is logged once over the 8 MiB capture limit", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants(["contact.created"], { max_retries: 5 });
  // As the superuser, so that the outbox row can be read in the writing transaction, before any fan-out.
  const captured = await withTransaction(h.db.pool, async (client) => {
    const { rows: [contact] } = await client.query<{ id: string }>(
      "insert into contacts (organization_id, first_name, custom_fields) values ($1, 'huge', jsonb_build_object('s', repeat('x', 9 * 1024 * 1024))) returning id",
      [a],
    );
    const { rows } = await client.query<{ data: unknown; data_bytes: number; oversized_bytes: number | null }>(
      "select data, pg_column_size(data) as data_bytes, oversized_bytes from webhooks.outbox where organization_id = $1",
      [a],
    );
    return { contactId: contact!.id, rows };
  });
  assert.equal(captured.rows.length, 1);
  assert.deepEqual(captured.rows[0]!.data, { id: captured.contactId }, "the outbox keeps only the row's id");
  assert.ok(captured.rows[0]!.data_bytes < 1024, `outbox data is ${captured.rows[0]!.data_bytes} bytes`);
  assert.ok(captured.rows[0]!.oversized_bytes! > 9 * 1024 * 1024, `oversized_bytes ${captured.rows[0]!.oversized_bytes}`);
  const bContacts = await insertContacts(b, names("b", 3));

  await waitFor("B's three events", () => at(receiver, pathB).length >= 3, 30_000);
  assert.deepEqual(receivedIds(at(receiver, pathB)), bContacts);
  const [delivery] = await settled(hookA.id, 1);
  assert.equal(delivery!.state, "dead");
  assert.equal(delivery!.attempts, 1);
  const logs = await logsOf(hookA.id);
  assert.equal(logs.length, 1, "exactly one logged attempt");
  assert.match(String(logs[0]!.error), /8 MiB capture limit/);
  assert.equal(logs[0]!.request_body, null);
  const { rows: events } = await h.db.pool.query<{ bytes: number; not_sent_reason: string | null }>(
    "select octet_length(body) as bytes, not_sent_reason from webhooks.events where organization_id = $1",
    [a],
  );
  assert.equal(events.length, 1);
  assert.ok(events[0]!.bytes < 1024, `the stored event body is ${events[0]!.bytes} bytes`);
  assert.match(String(events[0]!.not_sent_reason), /8 MiB capture limit/);
  assert.equal(at(receiver, pathA).length, 0, "A's receiver got nothing");
  assert.deepEqual((await settled(hookB.id, 3)).map((d) => d.state), Array(3).fill("succeeded"));
  assert.deepEqual(await setAsideOf([a, b]), []);
});

test("webhooks.emit: deep data is delivered, data over 256 KiB is logged as not sent, and another organization is unaffected", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants(["zoom.recording.completed"]);
  const emitted = await asTenant(h.app.pool, a, async (client) => {
    const emit = async (data: string) =>
      (await client.query<{ id: string }>(`select webhooks.emit($1, 'zoom.recording.completed', ${data}) as id`, [a])).rows[0]!.id;
    return { deep: await emit(DEEP_SQL), big: await emit("jsonb_build_object('notes', repeat('y', 300 * 1024))") };
  });
  const bEvents = await asTenant(h.app.pool, b, async (client) => {
    const ids: string[] = [];
    for (let n = 0; n < 3; n++) {
      ids.push((await client.query<{ id: string }>("select webhooks.emit($1, 'zoom.recording.completed', jsonb_build_object('n', $2::int)) as id", [b, n])).rows[0]!.id);
    }
    return ids.map(payloadId).sort();
  });

  await waitFor("B's three events and A's deep one", () => at(receiver, pathB).length >= 3 && at(receiver, pathA).length >= 1, 30_000);
  assert.deepEqual(at(receiver, pathB).map((r) => payloadOf(r).id).sort(), bEvents);
  const deliveries = await settled(hookA.id, 2);
  const byEvent = new Map(deliveries.map((d) => [d.event_id, d]));
  assert.equal(byEvent.get(payloadId(emitted.deep))?.state, "succeeded");
  const big = byEvent.get(payloadId(emitted.big));
  assert.equal(big?.state, "dead");
  assert.equal(big!.attempts, 1);
  assert.match(String(big!.last_error), /256 KiB/);

  const [request, ...more] = at(receiver, pathA);
  assert.equal(more.length, 0, "only the deep event reached A");
  assert.equal(request!.headers["webhook-id"], payloadId(emitted.deep));
  assert.equal(arrayDepth((payloadOf(request!).data as unknown as { x: unknown }).x), DEEP);
  const logs = await logsOf(hookA.id);
  const bigLogs = logs.filter((log) => log.event_id === payloadId(emitted.big));
  assert.equal(bigLogs.length, 1);
  assert.equal(bigLogs[0]!.request_body, null);
  assert.match(String(bigLogs[0]!.error), /256 KiB/);
  assert.deepEqual((await settled(hookB.id, 3)).map((d) => d.state), Array(3).fill("succeeded"));
  assert.deepEqual(await setAsideOf([a, b]), []);
});

test("numbers arrive exactly as stored (2^53 + 1, 12345678901234567.89 in jsonb and in a numeric column), signed over those exact bytes", async () => {
  const org = await createOrganization(h.db.pool);
  const receiver = await h.startReceiver();
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: receiver.url, events: ["contact.created", "deal.created"] });
  await asTenant(h.app.pool, org, async (client) => {
    const { rows: [contact] } = await client.query<{ id: string }>(
      `insert into contacts (organization_id, first_name, custom_fields)
       values ($1, 'exact', '{"big": 9007199254740993, "amount": 12345678901234567.89}'::jsonb) returning id`,
      [org],
    );
    await client.query("insert into deals (organization_id, contact_id, title, amount) values ($1, $2, 'exact', 12345678901234567.89)", [org, contact!.id]);
  });

  await waitFor("both events", () => receiver.requests.length >= 2, 30_000);
  const byEvent = new Map(receiver.requests.map((r) => [String(r.headers["x-webhook-event"]), r]));
  const contact = byEvent.get("contact.created")!;
  const deal = byEvent.get("deal.created")!;
  assert.match(contact.body, /"big": 9007199254740993[,}]/);
  assert.match(contact.body, /"amount": 12345678901234567\.89[,}]/);
  assert.match(deal.body, /"amount": 12345678901234567\.89[,}]/);

  const key = Buffer.from(hook.secret.slice("whsec_".length), "base64");
  for (const request of [contact, deal]) {
    const bytes = Buffer.from(request.body, "utf8");
    assert.equal(request.headers["content-length"], String(bytes.length), "the body is exactly the bytes received");
    const signed = Buffer.concat([Buffer.from(`${request.headers["webhook-id"]}.${request.headers["webhook-timestamp"]}.`), bytes]);
    const expected = `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
    assert.ok(String(request.headers["webhook-signature"]).split(" ").includes(expected), "signature over the exact bytes");
    assert.doesNotThrow(() => new Webhook(hook.secret).verify(request.body, request.headers as Record<string, string>));
    const { rows } = await h.db.pool.query<{ body: string }>("select body from webhooks.events where id = $1", [request.headers["webhook-id"]]);
    assert.equal(rows[0]!.body, request.body, "the stored event is the body sent");
  }
});

test("a row the fan-out fails on (a duplicate event id) is set aside with its error; every other event is delivered and the outbox empties", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants();
  // One transaction, so that one fan-out batch takes them all: the duplicate fails the batch.
  const { dupEventId, aContacts, bContacts } = await withTransaction(h.db.pool, async (client) => {
    const insert = async (org: string, prefix: string) =>
      (await client.query<{ id: string }>(
        "insert into contacts (organization_id, first_name) select $1, name from unnest($2::text[]) as name returning id",
        [org, names(prefix, 3)],
      )).rows.map((row) => row.id);
    const before = [...(await insert(a, "a-before")), ...(await insert(b, "b-before"))];
    const dupEventId = await insertDuplicatePair(client, a);
    const after = [...(await insert(a, "a-after")), ...(await insert(b, "b-after"))];
    const all = [...before, ...after];
    return { dupEventId, aContacts: [...all.slice(0, 3), ...all.slice(6, 9)].sort(), bContacts: [...all.slice(3, 6), ...all.slice(9)].sort() };
  });

  const setAside = await waitFor("one row set aside", async () => {
    const rows = await setAsideOf([a, b]);
    return rows.length > 0 ? rows : undefined;
  }, 30_000);
  await waitFor("every normal event and one copy", () => at(receiver, pathA).length >= 7 && at(receiver, pathB).length >= 6, 30_000);
  await waitFor("the outbox to be empty", async () => (await outboxCount()) === 0);
  assert.equal(setAside.length, 1, "exactly one row set aside");
  assert.equal(setAside[0]!.event_id, dupEventId);
  assert.match(setAside[0]!.error, /duplicate key/);
  // Whichever copy was fanned out first is delivered; the other one failed alone and is set aside.
  const [copy, ...copies] = at(receiver, pathA).filter((r) => payloadOf(r).data.id.startsWith("dup-"));
  assert.equal(copies.length, 0, "one copy delivered");
  assert.equal(copy!.headers["webhook-id"], payloadId(dupEventId));
  assert.deepEqual([payloadOf(copy!).data.id, setAside[0]!.data.id].sort(), ["dup-1", "dup-2"], "the set-aside row is the other copy");
  assert.deepEqual(receivedIds(at(receiver, pathB)), bContacts, "B got each of its contacts");
  assert.deepEqual(receivedIds(at(receiver, pathA)), [...aContacts, payloadOf(copy!).data.id].sort(), "A got each of its contacts and one copy");
  assert.deepEqual((await settled(hookA.id, 7)).map((d) => d.state), Array(7).fill("succeeded"));
  assert.deepEqual((await settled(hookB.id, 6)).map((d) => d.state), Array(6).fill("succeeded"));

  // The dispatcher moves on: a later event flows.
  const [later] = await insertContacts(a, ["later"]);
  await waitFor("the later event", () => at(receiver, pathA).some((r) => payloadOf(r).data.id === later));

  await asTenant(h.app.pool, a, (client) => client.query("select webhooks.discard_set_aside($1)", [setAside[0]!.id]));
  assert.deepEqual(await setAsideOf([a, b]), [], "discarded");
  assert.equal(await outboxCount(), 0, "discarding does not put it back");
});

test("a row a trigger refuses is set aside with the trigger's message while 20 others are delivered; released after the fix, it is delivered with its event id", async () => {
  const { a, b, receiver, hookA, pathA, pathB } = await twoTenants();
  const drop = await installRefusal("webhooks.events", "new.body like '%poison-marker%'", "check_violation", "poison-marker refused by the test trigger");
  try {
    const expected = await withTransaction(h.db.pool, async (client) => {
      const ids: { a: string[]; b: string[] } = { a: [], b: [] };
      for (let i = 0; i < 10; i++) {
        for (const [org, key] of [[a, "a"], [b, "b"]] as const) {
          const { rows } = await client.query<{ id: string }>("insert into contacts (organization_id, first_name) values ($1, $2) returning id", [org, `${key}-${i}`]);
          ids[key].push(rows[0]!.id);
        }
        if (i === 4) await client.query("insert into contacts (organization_id, first_name) values ($1, 'poison-marker')", [a]);
      }
      return ids;
    });

    await waitFor("the 20 other events", () => at(receiver, pathA).length >= 10 && at(receiver, pathB).length >= 10, 30_000);
    const [row, ...others] = await waitFor("the marked row to be set aside", async () => {
      const rows = await setAsideOf([a, b]);
      return rows.length > 0 ? rows : undefined;
    });
    assert.equal(others.length, 0, "only the marked row is set aside");
    assert.equal(row!.organization_id, a);
    assert.equal(row!.data.first_name, "poison-marker");
    assert.match(row!.error, /poison-marker refused by the test trigger/);
    assert.deepEqual(receivedIds(at(receiver, pathA)), expected.a.sort());
    assert.deepEqual(receivedIds(at(receiver, pathB)), expected.b.sort());
    await waitFor("the outbox to be empty", async () => (await outboxCount()) === 0);

    await drop();
    const released = await asTenant(h.app.pool, a, async (client) =>
      (await client.query<{ id: string }>("select webhooks.release_set_aside($1) as id", [row!.id])).rows[0]!.id,
    );
    assert.equal(released, row!.event_id, "release returns the event id");
    const request = await waitFor("the released event", () => at(receiver, pathA).find((r) => payloadOf(r).data.first_name === "poison-marker"), 30_000);
    assert.equal(request.headers["webhook-id"], payloadId(row!.event_id));
    assert.equal(payloadOf(request).id, payloadId(row!.event_id));
    assert.deepEqual(await setAsideOf([a, b]), [], "no longer set aside");
    assert.equal((await settled(hookA.id, 11)).filter((d) => d.state === "succeeded").length, 11);
  } finally {
    await drop();
  }
});

test("set-aside rows are tenant data: an organization reads only its own, and cannot release or discard another's (no_data_found, nothing changes)", async () => {
  const a = await createOrganization(h.db.pool, "A");
  const b = await createOrganization(h.db.pool, "B");
  const mine = await setAsideDuplicate(a);
  const theirs = await setAsideDuplicate(b);
  const snapshot = async () =>
    (await h.db.pool.query("select * from webhooks.outbox_set_aside where id = any ($1::bigint[]) order by id", [[mine.id, theirs.id]])).rows;
  const before = await snapshot();
  assert.equal(before.length, 2);

  const { rows: ownedByA } = await h.db.pool.query<{ id: number }>("select id from webhooks.outbox_set_aside where organization_id = $1 order by id", [a]);
  const seen = await asTenant(h.app.pool, a, async (client) =>
    (await client.query<{ id: number; organization_id: string }>("select * from webhooks.outbox_set_aside order by id")).rows,
  );
  assert.deepEqual(seen.map((row) => row.id), ownedByA.map((row) => row.id), "exactly A's rows");
  assert.ok(seen.some((row) => row.id === mine.id));
  assert.ok(seen.every((row) => row.organization_id === a), "none of another organization's");

  for (const fn of ["release_set_aside", "discard_set_aside"]) {
    await assert.rejects(
      asTenant(h.app.pool, a, (client) => client.query(`select webhooks.${fn}($1)`, [theirs.id])),
      (error: pg.DatabaseError) => {
        assert.equal(error.code, "P0002", `${fn}: ${error.code} ${error.message}`);
        assert.match(error.message, /no set-aside event/);
        return true;
      },
    );
  }
  assert.deepEqual(await snapshot(), before, "both rows unchanged");
  const { rows: requeued } = await h.db.pool.query("select 1 from webhooks.outbox where event_id = $1", [theirs.event_id]);
  assert.equal(requeued.length, 0, "B's event was not put back into the outbox");

  // A can discard its own (the refusal above is about the tenant, not the function).
  await asTenant(h.app.pool, a, (client) => client.query("select webhooks.discard_set_aside($1)", [mine.id]));
  assert.deepEqual((await snapshot()).map((row: { id: number }) => row.id), [theirs.id]);
});

test("an attempt record the database refuses fails only itself: the other endpoint's 30 events are logged once each, and the refused deliveries still end succeeded without a resend", async () => {
  const { a, b, receiver, hookA, hookB, pathA, pathB } = await twoTenants(["contact.created"], {}, "/a/poison-log");
  const drop = await installRefusal("webhooks.webhook_logs", "new.url like '%poison-log%'", "check_violation", "poison-log refused by the test trigger");
  try {
    // One statement, A and B interleaved, so that their attempts are recorded in the same batches.
    const { rows } = await h.db.pool.query<{ id: string; organization_id: string }>(
      `insert into contacts (organization_id, first_name)
       select case when i % 2 = 0 then $1::uuid else $2::uuid end, 'c-' || i from generate_series(0, 59) i
       returning id, organization_id`,
      [a, b],
    );
    const expectedA = rows.filter((r) => r.organization_id === a).map((r) => r.id).sort();
    const expectedB = rows.filter((r) => r.organization_id === b).map((r) => r.id).sort();
    assert.equal(expectedA.length, 30);

    const deliveriesA = await settled(hookA.id, 30, 45_000);
    const deliveriesB = await settled(hookB.id, 30, 45_000);
    assert.deepEqual(deliveriesA.map((d) => [d.state, d.attempts]), Array(30).fill(["succeeded", 1]), "A's state is recorded");
    assert.deepEqual(deliveriesB.map((d) => [d.state, d.attempts]), Array(30).fill(["succeeded", 1]));
    const logsB = await logsOf(hookB.id);
    assert.equal(logsB.length, 30, "B has one log row per event");
    assert.ok(logsB.every((log) => log.success));
    assert.equal(new Set(logsB.map((log) => log.delivery_id)).size, 30);
    assert.ok(logsB.every((log) => log.request_body !== null && Object.keys(log.request_headers).length > 0 && log.response_body === "ok"),
      "B's log rows are whole, not reduced because of A's");
    assert.equal((await logsOf(hookA.id)).length, 0, "A's log rows were refused");

    // Long enough for a claim released by a failed record to be claimed and sent again.
    await delay(1500);
    assert.deepEqual(receivedIds(at(receiver, pathB)), expectedB, "B got each event exactly once");
    assert.deepEqual(receivedIds(at(receiver, pathA)), expectedA, "A got each event exactly once: no resend");
    assert.equal((await logsOf(hookB.id)).length, 30);
  } finally {
    await drop();
  }
});

test("/metrics: pg_webhooks_outbox_set_aside_events counts webhooks.outbox_set_aside, and pg_webhooks_outbox_oldest_seconds is the stuck outbox's age, 0 once empty", async () => {
  const org = await createOrganization(h.db.pool);
  await setAsideDuplicate(org);
  const { rows: [count] } = await h.db.pool.query<{ n: number }>("select count(*)::int as n from webhooks.outbox_set_aside");
  assert.ok(count!.n >= 1);
  const before = await metrics();
  assert.equal(before.get("pg_webhooks_outbox_set_aside_events"), count!.n, "pg_webhooks_outbox_set_aside_events");

  // A fan-out failure that is not the row's fault (class 55) is retried as it is: the outbox is stuck.
  const drop = await installRefusal("webhooks.events", "new.body like '%metrics-stuck%'", "55000", "metrics-stuck: fan-out held by the test trigger");
  try {
    await h.db.pool.query(
      "insert into webhooks.outbox (organization_id, event_type, data, occurred_at) values ($1, 'contact.created', '{\"id\": \"metrics-stuck\"}', now() - interval '1 hour')",
      [org],
    );
    const stuck = await waitFor("the gauge to show an hour-old outbox", async () => {
      const value = (await metrics()).get("pg_webhooks_outbox_oldest_seconds");
      return value !== undefined && value >= 3600 ? value : undefined;
    });
    assert.ok(stuck < 3600 + 120, `oldest ${stuck} s`);
    assert.equal(await outboxCount(), 1, "still waiting: not set aside");
  } finally {
    await drop();
  }
  await waitFor("the outbox to be empty once the cause is gone", async () => (await outboxCount()) === 0, 30_000);
  const after = await metrics();
  assert.equal(after.get("pg_webhooks_outbox_oldest_seconds"), 0, "pg_webhooks_outbox_oldest_seconds with an empty outbox");
  const { rows: [now] } = await h.db.pool.query<{ n: number }>("select count(*)::int as n from webhooks.outbox_set_aside");
  assert.equal(after.get("pg_webhooks_outbox_set_aside_events"), now!.n);
});
