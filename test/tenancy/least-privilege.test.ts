import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import type { BackendReport } from "../../src/db/backend-report.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { assertPermissionDenied } from "./roles.js";

// No more privilege for webhooks_app (what applications log in as) than it needs
// (sql/000014_daemon_hardening.sql). A grant added to it must be reviewed and listed here.

const h = useHarness({ app: true, dispatcher: true });

test("webhooks_app holds exactly the reviewed privileges on the webhooks schema's tables, views and sequences", async () => {
  const { rows } = await h.db.pool.query<{ relation: string; privileges: string }>(
    `select c.oid::regclass::text as relation,
            array_to_string(array(select p from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
                                   where has_table_privilege('webhooks_app', c.oid, p)), ',') as privileges
       from pg_class c
      where c.relnamespace = 'webhooks'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
      order by 1`,
  );
  const held = Object.fromEntries(rows.filter((row) => row.privileges !== "").map((row) => [row.relation, row.privileges]));
  const { rows: version } = await h.db.pool.query<{ n: number }>("select current_setting('server_version_num')::int as n");
  assert.deepEqual(held, {
    "webhooks.webhook_configurations": "SELECT,INSERT,UPDATE,DELETE",
    "webhooks.inbound_integrations": "SELECT,DELETE",
    "webhooks.event_types": "SELECT",
    "webhooks.events": "SELECT",
    "webhooks.deliveries": "SELECT",
    "webhooks.webhook_logs": "SELECT",
    "webhooks.endpoint_states": "SELECT",
    "webhooks.outbox_set_aside": "SELECT",
    "webhooks.intake_activity": "SELECT",
    "webhooks.intake_refusals": "SELECT",
    // Views that read as their caller exist from PostgreSQL 15 (000004, 000005).
    ...(version[0]!.n >= 150000 ? { "webhooks.webhook_stats": "SELECT", "webhooks.dead_deliveries": "SELECT" } : {}),
  });
  const { rows: columns } = await h.db.pool.query<{ column: string; privileges: string }>(
    `select a.attname as column,
            array_to_string(array(select p from unnest(array['INSERT', 'UPDATE']) p
                                   where has_column_privilege('webhooks_app', a.attrelid, a.attnum, p)), ',') as privileges
       from pg_attribute a
      where a.attrelid = 'webhooks.inbound_integrations'::regclass and a.attnum > 0 and not a.attisdropped
      order by a.attnum`,
  );
  assert.deepEqual(
    Object.fromEntries(columns.filter((row) => row.privileges !== "").map((row) => [row.column, row.privileges])),
    {
      id: "INSERT",
      organization_id: "INSERT",
      name: "INSERT,UPDATE",
      signing_secret: "INSERT,UPDATE",
      is_active: "INSERT,UPDATE",
      lead_stage: "INSERT,UPDATE",
      assignee_pool: "INSERT,UPDATE",
    },
    "inbound integrations are written column by column (000007)",
  );
  const { rows: keyColumns } = await h.db.pool.query<{ column: string }>(
    `select a.attname as column from pg_attribute a
      where a.attrelid = 'webhooks.api_keys'::regclass and a.attnum > 0 and not a.attisdropped
        and has_column_privilege('webhooks_app', a.attrelid, a.attnum, 'SELECT') order by a.attnum`,
  );
  assert.deepEqual(keyColumns.map((row) => row.column), ["id", "organization_id", "name", "created_at", "last_used_at", "revoked_at"],
    "api keys are read column by column, never their hashes (000018)");
  const { rows: sequences } = await h.db.pool.query<{ sequence: string }>(
    `select c.oid::regclass::text as sequence from pg_class c
      where c.relnamespace = 'webhooks'::regnamespace and c.relkind = 'S'
        and (has_sequence_privilege('webhooks_app', c.oid, 'usage') or has_sequence_privilege('webhooks_app', c.oid, 'select')
             or has_sequence_privilege('webhooks_app', c.oid, 'update'))`,
  );
  assert.deepEqual(sequences, [], "no sequence: the application inserts nothing that draws from one");
});

test("webhooks_app may execute the public functions and what the triggers it fires call, but no trigger function and nothing of the daemon's", async () => {
  const { rows } = await h.db.pool.query<{ fn: string }>(
    `select p.oid::regprocedure::text as fn from pg_proc p
      where p.pronamespace = 'webhooks'::regnamespace and has_function_privilege('webhooks_app', p.oid, 'execute')
      order by 1`,
  );
  assert.deepEqual(
    rows.map((row) => row.fn),
    [
      // Called by the validation triggers, which run as the writer, and by column defaults.
      "webhooks._generate_intake_secret()", "webhooks._generate_secret()", "webhooks._http_managed_header(text)",
      "webhooks._normalize_phone(text)", "webhooks._refuse(text,text,text)", "webhooks._refuse_column(text,text,text,text)",
      // Public.
      "webhooks.create_api_key(uuid,text)",
      "webhooks.current_organization_id()", "webhooks.discard_set_aside(bigint)", "webhooks.emit(uuid,text,jsonb)",
      "webhooks.recover(uuid,timestamp with time zone,timestamp with time zone)",
      "webhooks.release_set_aside(bigint)", "webhooks.replay(uuid)", "webhooks.replay_dead(uuid)",
      "webhooks.revoke_api_key(uuid)", "webhooks.rotate_secret(uuid)", "webhooks.send_test(uuid)",
    ],
  );
});

test("the validation triggers still run for the application without EXECUTE on them, and still refuse bad rows", async () => {
  const org = (await h.db.pool.query<{ id: string }>("insert into organizations (name) values ('Acme') returning id")).rows[0]!.id;
  const client = await h.app.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('app.organization_id', $1, true)", [org]);
    const { rows } = await client.query<{ secret: string }>(
      "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'n', 'https://example.com/hook', '{*}') returning secret",
      [org],
    );
    assert.match(rows[0]!.secret, /^whsec_/, "the trigger generated a secret");
    await assert.rejects(client.query("update webhooks.webhook_configurations set max_in_flight = 0"), /max_in_flight/);
  } finally {
    await client.query("rollback");
    client.release();
  }
});

test("webhooks._describe_backends tells the dispatcher who blocks it and for how long, never another role's statement; the application may not call it", async () => {
  const holder = new pg.Client({ connectionString: h.app.url, application_name: "holder" });
  await holder.connect();
  try {
    await holder.query("begin");
    await holder.query("select 'a secret of the application' as literal, pg_advisory_xact_lock(42)");
    const { rows: [session] } = await holder.query<{ pid: number }>("select pg_backend_pid() as pid");
    const waiter = await h.dispatcher.pool.connect();
    try {
      const { rows: [self] } = await waiter.query<{ pid: number }>("select pg_backend_pid() as pid");
      const waiting = waiter.query("select pg_advisory_xact_lock(42)");
      const report = await waitFor("the dispatcher's lock wait in the report", async () => {
        const { rows } = await h.dispatcher.pool.query<BackendReport>("select * from webhooks._describe_backends($1::int[])", [[self!.pid, session!.pid]]);
        return rows.some((row) => row.pid === self!.pid && row.wait_event_type === "Lock") ? rows : undefined;
      });
      const mine = report.find((row) => row.pid === self!.pid)!;
      assert.equal(mine.statement, "select pg_advisory_xact_lock(42)", "its own statement");
      assert.match(String(mine.waiting_for), /^ExclusiveLock on advisory lock/);
      assert.deepEqual((mine.blockers ?? []).map(({ pid, application_name, holds }) => ({ pid, application_name, holds })), [
        { pid: session!.pid, application_name: "holder", holds: "ExclusiveLock" },
      ]);
      assert.ok((mine.blockers?.[0]?.transaction_seconds ?? 0) > 0, "the blocker's transaction age, hidden from this login by pg_stat_activity");
      const theirs = report.find((row) => row.pid === session!.pid)!;
      assert.equal(theirs.statement, null, "another role's statement is never shown");
      await holder.query("commit");
      await waiting;
    } finally {
      await waiter.query("rollback").catch(() => undefined);
      waiter.release();
    }
  } finally {
    await holder.end();
  }
  await assertPermissionDenied(h.app.pool.query("select * from webhooks._describe_backends(array[1])"), "webhooks._describe_backends as the application");
});
