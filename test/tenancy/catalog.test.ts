import assert from "node:assert/strict";
import { test } from "node:test";
import { useHarness } from "../support/harness.js";

// What the catalog must say about tenancy (README "Tenancy"), read as the application's own login role
// where it matters: a superuser would bypass everything checked here.

const h = useHarness({ app: true });

test("every table with an organization_id column, and organizations itself, has row-level security enabled and forced", async () => {
  const { rows } = await h.db.pool.query<{ table: string; enabled: boolean; forced: boolean }>(
    `select c.oid::regclass::text as table, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and not c.relispartition
        and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
        and (exists (select 1 from pg_attribute a
                      where a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped)
             or c.oid = 'public.organizations'::regclass)
      order by 1`,
  );
  assert.deepEqual(
    rows.map((row) => row.table),
    [
      "contacts", "conversations", "deals", "messages", "organizations",
      "webhooks.api_keys", "webhooks.deliveries", "webhooks.delivery_queue", "webhooks.detached_references", "webhooks.endpoint_states", "webhooks.events",
      "webhooks.inbound_integrations", "webhooks.intake_activity", "webhooks.intake_refusals", "webhooks.outbox", "webhooks.outbox_set_aside",
      "webhooks.webhook_configurations", "webhooks.webhook_logs",
    ],
    "the tenant tables this file knows about (a new one must be added here and to the tenancy tests)",
  );
  for (const row of rows) {
    assert.equal(row.enabled, true, `${row.table}: row-level security enabled`);
    assert.equal(row.forced, true, `${row.table}: row-level security forced (applies to the owner too)`);
  }
});

test("the partitions of the history tables are reached only through their tables: no role but the owner holds a privilege on one, and row-level security is on", async () => {
  const { rows } = await h.db.pool.query<{ partition: string; grantees: string[]; enabled: boolean }>(
    `select c.oid::regclass::text as partition,
            array(select a.grantee::regrole::text from aclexplode(c.relacl) a where a.grantee <> c.relowner) as grantees,
            c.relrowsecurity as enabled
       from pg_class c where c.relispartition and c.relkind in ('r', 'p') and c.relnamespace = 'webhooks'::regnamespace order by 1`,
  );
  assert.ok(rows.some((row) => row.partition === "webhooks.webhook_logs_default"), JSON.stringify(rows));
  for (const row of rows) {
    assert.deepEqual(row.grantees, [], `${row.partition}: no grants`);
    assert.equal(row.enabled, true, `${row.partition}: row-level security enabled (no policy: nothing for anyone granted it by mistake)`);
  }
  await assert.rejects(
    h.app.pool.query("select * from webhooks.webhook_logs_default"),
    (error: { code?: string }) => error.code === "42501",
    "the application cannot read a partition directly",
  );
});

test("every application policy takes its tenant from h.app.organization_id, in both USING and WITH CHECK", async () => {
  const { rows } = await h.db.pool.query<{ table: string; command: string; using: string | null; check: string | null }>(
    `select p.polrelid::regclass::text as table, p.polcmd as command,
            pg_get_expr(p.polqual, p.polrelid) as using, pg_get_expr(p.polwithcheck, p.polrelid) as check
       from pg_policy p
      where 'webhooks_app'::regrole = any(p.polroles)
      order by 1`,
  );
  assert.equal(rows.length, 15, "six read-write tenant tables, organizations, and eight read-only ones");
  const reads = /^\((organization_id|id) = \(NULLIF\(current_setting\('app\.organization_id'::text, true\), ''::text\)\)::uuid\)$/;
  for (const row of rows) {
    assert.match(String(row.using), reads, `${row.table}: USING`);
    if (row.command === "*") assert.equal(row.check, row.using, `${row.table}: WITH CHECK is the same predicate`);
    else assert.equal(row.command, "r", `${row.table}: otherwise read-only`);
  }
  const organizations = rows.find((row) => row.table === "organizations");
  assert.match(String(organizations?.using), /^\(id = /, "organizations: the tenant column is id");
});

test("the application and dispatcher roles are neither superusers nor able to bypass row-level security", async () => {
  const { rows } = await h.app.pool.query<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>(
    `select rolname, rolsuper, rolbypassrls, rolcanlogin from pg_roles
      where rolname in ('webhooks_app', 'webhooks_dispatcher', current_user) order by rolname`,
  );
  assert.equal(rows.length, 3);
  for (const role of rows) {
    assert.equal(role.rolsuper, false, `${role.rolname} is not a superuser`);
    assert.equal(role.rolbypassrls, false, `${role.rolname} does not bypass RLS`);
  }
  assert.deepEqual(
    rows.filter((role) => role.rolname.startsWith("webhooks_")).map((role) => role.rolcanlogin),
    [false, false],
    "the group roles cannot log in; applications grant them to their own login roles",
  );
});

test("the application can create nothing in the webhooks schema, where trigger functions resolve names", async () => {
  const { rows } = await h.app.pool.query<{ create_webhooks: boolean }>(
    "select has_schema_privilege('webhooks', 'create') as create_webhooks",
  );
  assert.equal(rows[0]!.create_webhooks, false);
});

test("every SECURITY DEFINER and trigger function pins a search_path that starts with pg_catalog and omits public", async () => {
  const { rows } = await h.db.pool.query<{ fn: string; config: string[] | null }>(
    `select p.oid::regprocedure::text as fn, p.proconfig as config
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('webhooks', 'public')
        and (p.prosecdef or p.prorettype = 'trigger'::regtype)
      order by 1`,
  );
  assert.ok(rows.some((row) => row.fn === "webhooks._capture_crm_change()"), "the capture trigger is among them");
  for (const row of rows) {
    const setting = (row.config ?? []).find((entry) => entry.startsWith("search_path="));
    assert.ok(setting, `${row.fn} pins search_path`);
    const path = setting.slice("search_path=".length).split(",").map((part) => part.trim().replace(/"/g, ""));
    assert.equal(path[0], "pg_catalog", `${row.fn}: pg_catalog comes first`);
    assert.ok(!path.includes("public") && !path.includes("$user"), `${row.fn}: no schema others can write to`);
    assert.equal(path.at(-1), "pg_temp", `${row.fn}: pg_temp is last, so temporary tables shadow nothing`);
  }
});

test("the only SECURITY DEFINER functions an application may call are the reviewed, tenant-checking ones", async () => {
  const { rows } = await h.app.pool.query<{ fn: string }>(
    `select p.oid::regprocedure::text as fn
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname in ('webhooks', 'public') and p.prosecdef and has_function_privilege(p.oid, 'execute')
      order by 1`,
  );
  assert.deepEqual(
    rows.map((row) => row.fn),
    [
      "webhooks.create_api_key(uuid,text)",
      "webhooks.discard_set_aside(bigint)", "webhooks.emit(uuid,text,jsonb)",
      "webhooks.recover(uuid,timestamp with time zone,timestamp with time zone)", "webhooks.release_set_aside(bigint)",
      "webhooks.replay(uuid)", "webhooks.replay_dead(uuid)", "webhooks.revoke_api_key(uuid)", "webhooks.rotate_secret(uuid)", "webhooks.send_test(uuid)",
    ],
    "a new SECURITY DEFINER function granted to webhooks_app must check the caller's tenant (webhooks._assert_tenant) and be listed here",
  );
});

test("every view an application may read runs as its caller, so row-level security applies through it", async () => {
  const { rows } = await h.app.pool.query<{ view: string; options: string[] | null }>(
    `select c.oid::regclass::text as view, c.reloptions as options
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('v', 'm') and n.nspname in ('webhooks', 'public') and has_table_privilege(c.oid, 'select')
      order by 1`,
  );
  const { rows: version } = await h.app.pool.query<{ n: number }>("select current_setting('server_version_num')::int as n");
  // Before PostgreSQL 15 (no security_invoker) 000004 withholds the stats view from applications.
  if (version[0]!.n >= 150000) assert.ok(rows.some((row) => row.view === "webhooks.webhook_stats"));
  for (const row of rows) {
    assert.ok((row.options ?? []).includes("security_invoker=true"), `${row.view} has security_invoker = true`);
  }
});
