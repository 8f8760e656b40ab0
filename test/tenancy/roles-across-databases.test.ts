import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createPool } from "../../src/db/pool.js";
import { migrate } from "../../src/db/migrate.js";
import { createLogger } from "../../src/logger.js";
import { databaseUrl, type TestDatabase } from "../support/database.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { LoginRoles } from "../support/login-roles.js";
import { asTenant } from "./roles.js";

// webhooks_app and webhooks_dispatcher are cluster-wide: every database on a server migrates
// against the same two roles. And the migrations need no superuser: a database owner can run
// them, after which its SECURITY DEFINER functions work under the RLS it forced on itself.

const logger = createLogger("silent");
let admin: pg.Client;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
});
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => console.error(error));
  await admin.end();
});

/** An empty database (not the migrated template), owned by `owner` when given, dropped after the file. */
async function emptyDatabase(owner?: { name: string; password: string }): Promise<TestDatabase> {
  const name = `pgw_r_${randomBytes(6).toString("hex")}`;
  await admin.query(`create database ${name}${owner ? ` owner ${owner.name}` : ""}`);
  const url = new URL(databaseUrl(name));
  if (owner) {
    url.username = owner.name;
    url.password = owner.password;
  }
  const pool = createPool(url.toString(), { max: 3 });
  return {
    url: url.toString(),
    name,
    pool,
    async drop() {
      await pool.end();
      await admin.query(`drop database if exists ${name} with (force)`);
    },
  };
}

test("two more databases migrated at once on the same server both reuse the existing roles", async () => {
  const { rows: before } = await admin.query("select oid, rolname from pg_roles where rolname like 'webhooks\\_%' order by rolname");
  assert.deepEqual(before.map((role) => role.rolname), ["webhooks_app", "webhooks_dispatcher"]);
  const databases = [await emptyDatabase(), await emptyDatabase()];
  cleanups.push(() => databases[0]!.drop(), () => databases[1]!.drop());

  const results = await Promise.all(databases.map((db) => migrate(db.pool, logger)));
  for (const result of results) assert.ok(result.applied.includes("000004_tenancy"), "the tenancy migration ran");

  const { rows: afterwards } = await admin.query("select oid, rolname from pg_roles where rolname like 'webhooks\\_%' order by rolname");
  assert.deepEqual(afterwards, before, "the same two roles, not recreated");
  for (const db of databases) {
    const { rows } = await db.pool.query<{ n: number }>(
      "select count(*)::int as n from pg_policy where 'webhooks_app'::regrole = any(polroles)",
    );
    assert.equal(rows[0]!.n, 15, `${db.name}: the application's policies name the shared role`);
  }
});

test("a database migrated by its non-superuser owner enforces tenancy and its definer functions still work", async () => {
  const owner = { name: `pgw_owner_${randomBytes(5).toString("hex")}`, password: randomBytes(12).toString("hex") };
  await admin.query(`create role ${owner.name} login password '${owner.password}'`);
  cleanups.push(async () => void (await admin.query(`drop role if exists ${owner.name}`)));
  const db = await emptyDatabase(owner);
  const superuser = superuserPool(db.name);
  const roles = new LoginRoles({ ...db, pool: superuser });
  cleanups.push(() => roles.dropAll());

  assert.ok((await migrate(db.pool, logger)).applied.includes("000004_tenancy"));
  const { rows: self } = await db.pool.query("select rolsuper, rolbypassrls from pg_roles where rolname = current_user");
  assert.deepEqual(self, [{ rolsuper: false, rolbypassrls: false }]);

  const app = await roles.create("webhooks_app");
  // Seeded as the superuser: forced RLS gives the owner no access to tenant rows of its own.
  const orgA = await createOrganization(superuser, "A");
  const orgB = await createOrganization(superuser, "B");
  const hookA = await createWebhook(superuser, { organizationId: orgA, url: "https://a.example.com/hook" });
  await createWebhook(superuser, { organizationId: orgB, url: "https://b.example.com/hook" });
  await superuser.query(
    "insert into webhooks.deliveries (organization_id, event_id, webhook_id) values ($1, 'evt_a', $2)",
    [orgA, hookA.id],
  );

  await asTenant(app.pool, orgA, async (client) => {
    const visible = await client.query<{ organization_id: string }>("select organization_id from webhooks.webhook_configurations");
    assert.deepEqual(visible.rows, [{ organization_id: orgA }], "RLS applies in this database too");
    await client.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [orgA]);
    await client.query("select webhooks.emit($1, 'zoom.recording.completed', '{}')", [orgA]);
    await client.query("select webhooks.send_test($1)", [hookA.id]);
    const deleted = await client.query("delete from webhooks.webhook_configurations where id = $1", [hookA.id]);
    assert.equal(deleted.rowCount, 1);
  });

  // Checked as the superuser: the owner is bound by the RLS it forced and would see only what its policies allow.
  const { rows: outbox } = await superuser.query("select organization_id, event_type from webhooks.outbox order by id");
  assert.deepEqual(outbox, [
    { organization_id: orgA, event_type: "contact.created" },
    { organization_id: orgA, event_type: "zoom.recording.completed" },
    { organization_id: orgA, event_type: "webhook.test" },
  ]);
  const { rows: deliveries } = await superuser.query("select 1 from webhooks.deliveries");
  assert.equal(deliveries.length, 0, "the deleted webhook's delivery went with it");
});

/** A superuser pool on `name`, for creating login roles (the owner may not create roles). */
function superuserPool(name: string): pg.Pool {
  const pool = createPool(databaseUrl(name), { max: 1 });
  cleanups.push(async () => void (await pool.end().catch(() => undefined)));
  return pool;
}
