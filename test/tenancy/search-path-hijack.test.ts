import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { useHarness } from "../support/harness.js";
import type { LoginRole } from "../support/login-roles.js";
import { asTenant, assertPermissionDenied } from "./roles.js";

// A low-privilege application user who may create objects in public (the default before
// PostgreSQL 15) plants look-alikes of what the capture trigger uses, in public and pg_temp, and
// puts them first on its search_path. The trigger runs with its own pinned search_path, so it
// captures exactly as before, for that user and for everyone else.

const h = useHarness({ twoOrganizations: true });
let attacker: LoginRole;
let innocent: LoginRole;
/** The attacker's one session: temporary objects live only there. */
let session: pg.PoolClient;

// (LIKE webhooks.outbox would need SELECT on the outbox, which the application lacks.)
const OUTBOX_COLUMNS = `(id bigint generated always as identity, event_id uuid, organization_id uuid, event_type text,
  data jsonb, old_data jsonb, occurred_at timestamptz default now(), webhook_id uuid)`;
const WAKE_COLUMNS = "(singleton boolean default true, awake_until timestamptz, listening_until timestamptz)";

const LOOK_ALIKES = `
  create table public.outbox ${OUTBOX_COLUMNS};
  create table public._dispatcher_wake ${WAKE_COLUMNS};
  insert into public._dispatcher_wake values (true, 'infinity', '-infinity');
  create table public.event_types (name text);
  create function public.to_jsonb(anyelement) returns jsonb language sql as $$ select '{"hijacked": "any"}'::jsonb $$;
  create function public.to_jsonb(public.contacts) returns jsonb language sql as $$ select '{"hijacked": "contacts"}'::jsonb $$;
  create function public.cardinality(anyarray) returns int language sql as $$ select 0 $$;
  create function public.clock_timestamp() returns timestamptz language sql as $$ select '-infinity'::timestamptz $$;
  create function public.pg_notify(text, text) returns void language sql as $$ select $$;
  create function public._enqueue(uuid, text[], jsonb, jsonb, uuid default null) returns uuid
    language sql as $$ insert into public.outbox (event_id, organization_id, event_type, data)
                       values (gen_random_uuid(), $1, 'hijacked', '{}') returning event_id $$;
  create temporary table outbox ${OUTBOX_COLUMNS};
  create temporary table _dispatcher_wake ${WAKE_COLUMNS};
  create temporary table event_types (name text);
  create function pg_temp.to_jsonb(public.contacts) returns jsonb language sql as $$ select '{"hijacked": "temp"}'::jsonb $$;
  create function pg_temp._enqueue(uuid, text[], jsonb, jsonb, uuid default null) returns uuid
    language sql as $$ select gen_random_uuid() $$;
  set search_path = pg_temp, public, pg_catalog;
`;

h.before(async () => {
  attacker = await h.roles.create("webhooks_app", { poolSize: 1 });
  innocent = await h.roles.create("webhooks_app", { poolSize: 1 });
  await h.db.pool.query(`grant create on schema public to ${attacker.name}`);
  session = await attacker.pool.connect();
  h.defer(async () => session.release());
  await session.query(LOOK_ALIKES);
});

/** What capture put in the real outbox for one row, as the superuser sees it. */
async function captured(rowId: string): Promise<{ organization_id: string; event_type: string; data: Record<string, unknown> }[]> {
  const { rows } = await h.db.pool.query(
    "select organization_id, event_type, data from webhooks.outbox where data->>'id' = $1 order by id",
    [rowId],
  );
  return rows;
}

test("the look-alikes are live in the attacker's session: an unpinned trigger would resolve to them", async () => {
  const { rows } = await session.query(
    `select to_jsonb(null::public.contacts) as row, to_jsonb(1) as one, cardinality(array['a']) as n,
            clock_timestamp() = '-infinity' as frozen,
            (select relnamespace = pg_my_temp_schema() from pg_class where oid = to_regclass('outbox')) as temp_outbox,
            to_regclass('_dispatcher_wake')::text as wake`,
  );
  assert.deepEqual(rows, [{ row: { hijacked: "contacts" }, one: { hijacked: "any" }, n: 0, frozen: true, temp_outbox: true, wake: "_dispatcher_wake" }]);
});

test("the attacker's own inserts and updates are captured exactly, into the real outbox", async () => {
  await session.query("begin");
  await session.query("select set_config('app.organization_id', $1, true)", [h.orgA]);
  const { rows } = await session.query<{ id: string }>(
    "insert into contacts (organization_id, first_name, email) values ($1, 'Mallory', 'm@example.com') returning id",
    [h.orgA],
  );
  await session.query("update contacts set first_name = 'Mal' where id = $1", [rows[0]!.id]);
  await session.query("commit");

  const events = await captured(rows[0]!.id);
  assert.deepEqual(events.map((event) => [event.organization_id, event.event_type]), [
    [h.orgA, "contact.created"],
    [h.orgA, "contact.updated"],
  ]);
  assert.equal(events[0]!.data.first_name, "Mallory");
  assert.equal(events[0]!.data.email, "m@example.com");
  assert.equal(events[1]!.data.first_name, "Mal");
  assert.equal("hijacked" in events[0]!.data, false);

  const planted = await session.query(
    "select (select count(*)::int from public.outbox) as public, (select count(*)::int from pg_temp.outbox) as temp",
  );
  assert.deepEqual(planted.rows, [{ public: 0, temp: 0 }], "nothing went to the look-alike outboxes");
});

test("another application user's writes are captured exactly while the look-alikes exist", async () => {
  const contactId = await asTenant(innocent.pool, h.orgB, async (client) => {
    // Its default search_path ("$user", public) reaches the exact-type public.to_jsonb(contacts).
    const probe = await client.query("select to_jsonb(null::public.contacts) as row");
    assert.deepEqual(probe.rows, [{ row: { hijacked: "contacts" } }], "the look-alike is visible to this user");
    const { rows } = await client.query<{ id: string }>(
      "insert into contacts (organization_id, first_name) values ($1, 'Olive') returning id",
      [h.orgB],
    );
    return rows[0]!.id;
  });
  const events = await captured(contactId);
  assert.deepEqual(events.map((event) => [event.organization_id, event.event_type, event.data.first_name]), [
    [h.orgB, "contact.created", "Olive"],
  ]);
});

test("the validation trigger of webhook configurations is not fooled by a look-alike cardinality()", async () => {
  await session.query("begin");
  await session.query("select set_config('app.organization_id', $1, true)", [h.orgA]);
  try {
    await session.query("savepoint s");
    await assert.rejects(
      session.query("insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'h', 'https://example.com', '{}')", [h.orgA]),
      /webhook_configurations\.events must list at least one event type/,
    );
    await session.query("rollback to savepoint s");
    const { rowCount } = await session.query(
      "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'h', 'https://example.com', '{contact.created}')",
      [h.orgA],
    );
    assert.equal(rowCount, 1, "a valid configuration is still accepted");
  } finally {
    await session.query("rollback");
  }
});

test("the attacker cannot attach the owner's capture functions to a table of its own to forge events", async () => {
  await session.query("create table public.forged (id uuid default gen_random_uuid(), organization_id uuid)");
  for (const fn of ["webhooks._capture_tracked_change('contact')", "webhooks._capture_crm_change('contact')"]) {
    await assertPermissionDenied(
      session.query(`create trigger forge after insert on public.forged for each row execute function ${fn}`),
      `attaching ${fn}`,
    );
  }
  const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.outbox where organization_id = $1", [h.orgB]);
  assert.equal(rows[0].n, 1, "organization B has only Olive's event");
});
