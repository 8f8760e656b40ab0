import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { useHarness } from "../support/harness.js";
import { asTenant, assertPermissionDenied, assertPolicyViolation } from "../tenancy/roles.js";
import { acceptLead, createIntegration, requestId, sha256 } from "./support.js";

// Integrations and their activity belong to an organization; the intake functions are the daemon's.

const h = useHarness({ app: true, dispatcher: true, twoOrganizations: true });
let integrationB: string;

h.before(async () => {
  integrationB = (await createIntegration(h.db.pool, h.orgB, { name: "B's form" })).id;
  await acceptLead(h.dispatcher.pool, integrationB, "b-key", { customer_phone: "5550100400" });
});

test("an application creates its integration with a generated 64-hex secret and sees only its own", async () => {
  const mine = await asTenant(h.app.pool, h.orgA, async (client) => {
    const { rows } = await client.query(
      "insert into webhooks.inbound_integrations (organization_id, name) values ($1, 'A form') returning id, signing_secret, lead_stage, assignee_pool",
      [h.orgA]);
    return rows[0];
  });
  assert.match(mine.signing_secret, /^[0-9a-f]{64}$/);
  assert.deepEqual([mine.lead_stage, mine.assignee_pool], ["new", []]);
  const seen = await asTenant(h.app.pool, h.orgA, async (client) =>
    (await client.query("select id from webhooks.inbound_integrations")).rows.map((row) => row.id));
  assert.deepEqual(seen, [mine.id]);
  const none = await asTenant(h.app.pool, null, async (client) => (await client.query("select id from webhooks.inbound_integrations")).rows);
  assert.deepEqual(none, [], "no tenant, nothing");
});

test("an application cannot create an integration for another organization, nor touch the round-robin counter", async () => {
  await assertPolicyViolation(asTenant(h.app.pool, h.orgA, (client) =>
    client.query("insert into webhooks.inbound_integrations (organization_id, name) values ($1, 'x')", [h.orgB])), "insert for B");
  const updated = await asTenant(h.app.pool, h.orgA, async (client) =>
    (await client.query("update webhooks.inbound_integrations set name = 'stolen' where id = $1", [integrationB])).rowCount);
  assert.equal(updated, 0, "B's integration is invisible to A");
  await assertPermissionDenied(asTenant(h.app.pool, h.orgA, (client) =>
    client.query("update webhooks.inbound_integrations set leads_assigned = 5")), "update leads_assigned");
});

test("an application reads only its organization's intake activity, and cannot write it", async () => {
  const a = await asTenant(h.app.pool, h.orgA, async (client) => (await client.query("select id from webhooks.intake_activity")).rows);
  assert.deepEqual(a, []);
  const b = await asTenant(h.app.pool, h.orgB, async (client) =>
    (await client.query("select outcome, idempotency_key from webhooks.intake_activity")).rows);
  assert.deepEqual(b, [{ outcome: "accepted", idempotency_key: "b-key" }]);
  await assertPermissionDenied(asTenant(h.app.pool, h.orgB, (client) =>
    client.query("insert into webhooks.intake_activity (request_id, http_status, outcome) values ($1, 400, 'refused')", [requestId()])),
  "insert into intake_activity");
});

test("an application reads only its organization's refusal counts, and cannot write them", async () => {
  await h.dispatcher.pool.query(
    "select webhooks._record_intake_refusals(array[now(), now()], array[$1, null]::uuid[], array['invalid_signature', 'unknown_integration'], array[401, 404], array[3, 7]::bigint[])",
    [integrationB]);
  const seen = (organization: string) => asTenant(h.app.pool, organization, async (client) =>
    (await client.query("select integration_id, organization_id, reason, http_status, count::int from webhooks.intake_refusals")).rows);
  assert.deepEqual(await seen(h.orgB), [{ integration_id: integrationB, organization_id: h.orgB, reason: "invalid_signature", http_status: 401, count: 3 }]);
  assert.deepEqual(await seen(h.orgA), [], "another organization's counts, and unknown ids', are invisible");
  const { rows } = await h.dispatcher.pool.query("select count(*)::int as n from webhooks.intake_refusals where organization_id is null");
  assert.equal(rows[0].n, 1, "the dispatcher sees the unknown ids' counts");
  await assertPermissionDenied(asTenant(h.app.pool, h.orgB, (client) =>
    client.query("insert into webhooks.intake_refusals (minute, integration_id, organization_id, reason, http_status, count) values (now(), $1, $2, 'x', 400, 1)",
      [integrationB, h.orgB])), "insert into intake_refusals");
  await assertPermissionDenied(h.dispatcher.pool.query("delete from webhooks.intake_refusals"), "dispatcher delete");
});

test("an application cannot call the intake functions", async () => {
  const calls: [string, unknown[]][] = [
    ["select * from webhooks._accept_lead($1, $2, 'k', $3, '{}')", [integrationB, requestId(), sha256({})]],
    ["select * from webhooks._process_lead('ev_00000000000000000000000000000000')", []],
    ["select webhooks._refuse_request($1, null, 400, 'x')", [requestId()]],
    ["select webhooks._record_intake_refusals(array[now()], array[$1]::uuid[], array['x'], array[400], array[1]::bigint[])", [integrationB]],
  ];
  for (const [call, params] of calls) {
    await assertPermissionDenied(asTenant(h.app.pool, h.orgB, (client) => client.query(call, params)), call);
  }
});

test("the dispatcher reads every integration with its secret but writes only through the functions", async () => {
  const { rows } = await h.dispatcher.pool.query("select signing_secret from webhooks.inbound_integrations where id = $1", [integrationB]);
  assert.match(rows[0].signing_secret, /^[0-9a-f]{64}$/);
  await assertPermissionDenied(h.dispatcher.pool.query("update webhooks.inbound_integrations set is_active = false"), "dispatcher update");
});

test("invalid integrations are refused naming the column", async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ name: " " }, "name"],
    [{ signing_secret: "" }, "signing_secret"],
    [{ lead_stage: "" }, "lead_stage"],
    [{ assignee_pool: ["11111111-1111-4111-8111-111111111111", null] }, "assignee_pool"],
  ];
  for (const [values, column] of cases) {
    await assert.rejects(createIntegration(h.db.pool, h.orgA, values), (error: pg.DatabaseError) => {
      assert.equal(error.code, "23514");
      assert.equal(error.column, column);
      assert.match(error.message, new RegExp(`^inbound_integrations\\.${column} `));
      return true;
    });
  }
});

test("updated_at moves when the integration changes, not when a lead takes its turn", async () => {
  const id = (await createIntegration(h.db.pool, h.orgA, { assignee_pool: ["11111111-1111-4111-8111-111111111111"] })).id;
  const stamp = async () => (await h.db.pool.query("select updated_at from webhooks.inbound_integrations where id = $1", [id])).rows[0].updated_at;
  const created = await stamp();
  await h.db.pool.query("update webhooks.inbound_integrations set leads_assigned = leads_assigned + 1 where id = $1", [id]);
  assert.deepEqual(await stamp(), created);
  await h.db.pool.query("update webhooks.inbound_integrations set name = 'renamed' where id = $1", [id]);
  assert.ok((await stamp()) > created);
});
