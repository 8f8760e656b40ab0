import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import pg from "pg";
import { createPool, type Pool } from "../../src/db/pool.js";
import { migrate } from "../../src/db/migrate.js";
import { createLogger } from "../../src/logger.js";
import { databaseUrl } from "../support/database.js";
import { createOrganization } from "../support/fixtures.js";
import { LoginRoles } from "../support/login-roles.js";
import { acceptLead, createIntegration, processLead } from "./support.js";

// The intake functions run as their owner. When the owner is not a superuser the RLS it forced
// binds it too, so the owner policies of 000007 are what lets them work: checked here end to end.

let admin: pg.Client;
let superuser: Pool;
let ownerPool: Pool;
let roles: LoginRoles;
const owner = { name: `pgw_owner_${randomBytes(5).toString("hex")}`, password: randomBytes(12).toString("hex") };
const database = `pgw_i_${randomBytes(6).toString("hex")}`;

before(async () => {
  admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
  await admin.connect();
  await admin.query(`create role ${owner.name} login password '${owner.password}'`);
  await admin.query(`create database ${database} owner ${owner.name}`);
  const url = new URL(databaseUrl(database));
  url.username = owner.name;
  url.password = owner.password;
  ownerPool = createPool(url.toString(), { max: 2 });
  await migrate(ownerPool, createLogger("silent"));
  superuser = createPool(databaseUrl(database), { max: 2 });
  roles = new LoginRoles({
    url: databaseUrl(database), name: database, pool: superuser,
    async drop() {
      await Promise.all([superuser.end(), ownerPool.end()]);
      await admin.query(`drop database if exists ${database} with (force)`);
    },
  });
});
after(async () => {
  await roles?.dropAll();
  await admin?.query(`drop role if exists ${owner.name}`);
  await admin?.end();
});

test("under a non-superuser owner, leads are accepted, deduplicated and processed into a contact and a deal, and refusals counted", async () => {
  const { rows: self } = await ownerPool.query("select rolsuper, rolbypassrls from pg_roles where rolname = current_user");
  assert.deepEqual(self, [{ rolsuper: false, rolbypassrls: false }]);
  const dispatcher = await roles.create("webhooks_dispatcher");
  const org = await createOrganization(superuser, "Owned");
  const user = "11111111-1111-4111-8111-111111111111";
  const integration = (await createIntegration(superuser, org, { assignee_pool: [user] })).id;

  const accepted = await acceptLead(dispatcher.pool, integration, "k1", { customer_phone: "(555) 010-0500", first_name: "Grace" });
  assert.equal(accepted.http_status, 202);
  const duplicate = await acceptLead(dispatcher.pool, integration, "k1", { customer_phone: "(555) 010-0500", first_name: "Grace" });
  assert.deepEqual(duplicate, { http_status: 200, status: "duplicate", event_id: accepted.event_id });
  const ids = await processLead(dispatcher.pool, accepted.event_id!);
  assert.deepEqual(await processLead(dispatcher.pool, accepted.event_id!), ids);

  const second = await acceptLead(dispatcher.pool, integration, "k2", { customer_phone: "+1 555 010 0500", last_name: "Hopper" });
  const again = await processLead(dispatcher.pool, second.event_id!);
  assert.equal(again?.contact_id, ids?.contact_id, "the existing contact was found and updated");

  const { rows: contacts } = await superuser.query("select first_name, last_name, assigned_to from contacts");
  assert.deepEqual(contacts, [{ first_name: "Grace", last_name: "Hopper", assigned_to: user }]);
  await dispatcher.pool.query(
    "select webhooks._record_intake_refusals(array[now(), now()], array[$1, gen_random_uuid()], array['invalid_signature', 'unknown_integration'], array[401, 404], array[2, 5]::bigint[])",
    [integration]);
  const { rows: refusals } = await superuser.query("select integration_id, organization_id, count::int from webhooks.intake_refusals order by count");
  assert.deepEqual(refusals, [{ integration_id: integration, organization_id: org, count: 2 }, { integration_id: null, organization_id: null, count: 5 }]);

  const { rows: events } = await superuser.query("select event_type from webhooks.outbox order by id");
  assert.deepEqual(events.map((row) => row.event_type),
    ["contact.created", "contact.assigned", "deal.created", "deal.assigned", "contact.updated", "deal.created", "deal.assigned"]);
});
