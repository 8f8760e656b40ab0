import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { acceptLead, createIntegration, requestId, sha256 } from "./support.js";

// webhooks._accept_lead as the daemon (webhooks_dispatcher) calls it after verifying a signature.

const h = useHarness({ dispatcher: { poolSize: 10 } });
let org: string;
let integration: string;

h.before(async () => {
  org = await createOrganization(h.db.pool, "Intake");
  integration = (await createIntegration(h.db.pool, org)).id;
});

async function activity(key: string): Promise<{ outcome: string; http_status: number; event_id: string | null; body: unknown }[]> {
  const { rows } = await h.db.pool.query(
    "select outcome, http_status, event_id, body from webhooks.intake_activity where idempotency_key = $1 order by id",
    [key],
  );
  return rows;
}

test("a new idempotency key is accepted with a fresh ev_ id, its body recorded and a process_lead job queued", async () => {
  const body = { customer_phone: "+15550100001" };
  const result = await acceptLead(h.dispatcher.pool, integration, "key-new", body);
  assert.equal(result.http_status, 202);
  assert.equal(result.status, "accepted");
  assert.match(String(result.event_id), /^ev_[0-9a-f]{32}$/);
  assert.deepEqual(await activity("key-new"), [{ outcome: "accepted", http_status: 202, event_id: result.event_id, body }]);
  const { rows: jobs } = await h.db.pool.query(
    `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier = 'webhooks.process_lead'`,
  );
  assert.ok(jobs.some((job) => job.payload.eventId === result.event_id), "the lead's job is durably queued with it");
});

test("the same key and body again is a 200 duplicate carrying the original event id, recorded as a duplicate", async () => {
  const body = { customer_phone: "+15550100002" };
  const first = await acceptLead(h.dispatcher.pool, integration, "key-dup", body);
  const again = await acceptLead(h.dispatcher.pool, integration, "key-dup", body);
  assert.deepEqual(again, { http_status: 200, status: "duplicate", event_id: first.event_id });
  assert.deepEqual((await activity("key-dup")).map((row) => [row.outcome, row.event_id, row.body]), [
    ["accepted", first.event_id, body],
    ["duplicate", first.event_id, null],
  ]);
});

test("the same key with a different body within 24 hours is a 409 conflict, recorded", async () => {
  await acceptLead(h.dispatcher.pool, integration, "key-conflict", { customer_phone: "+15550100003" });
  const other = await acceptLead(h.dispatcher.pool, integration, "key-conflict", { customer_phone: "+15550100004" });
  assert.deepEqual(other, { http_status: 409, status: "conflict", event_id: null });
  assert.deepEqual((await activity("key-conflict")).map((row) => row.outcome), ["accepted", "conflict"]);
});

test("a key first used more than 24 hours ago may be reused: a new accepted lead", async () => {
  const body = { customer_phone: "+15550100005" };
  const old = await acceptLead(h.dispatcher.pool, integration, "key-old", body);
  await h.db.pool.query("update webhooks.intake_activity set received_at = now() - interval '25 hours' where event_id = $1", [old.event_id]);
  const reused = await acceptLead(h.dispatcher.pool, integration, "key-old", body);
  assert.equal(reused.http_status, 202);
  assert.notEqual(reused.event_id, old.event_id);
});

test("an unknown or inactive integration is a 404, recorded as refused", async () => {
  const unknown = "00000000-0000-4000-8000-000000000000";
  assert.deepEqual(await acceptLead(h.dispatcher.pool, unknown, "key-404", { customer_phone: "1" }),
    { http_status: 404, status: "not_found", event_id: null });
  const inactive = (await createIntegration(h.db.pool, org, { is_active: false })).id;
  assert.deepEqual(await acceptLead(h.dispatcher.pool, inactive, "key-404", { customer_phone: "1" }),
    { http_status: 404, status: "not_found", event_id: null });
  const { rows } = await h.db.pool.query(
    "select integration_id, organization_id, outcome, error from webhooks.intake_activity where idempotency_key = 'key-404' order by id",
  );
  assert.deepEqual(rows, [
    { integration_id: null, organization_id: null, outcome: "refused", error: "unknown integration" },
    { integration_id: inactive, organization_id: org, outcome: "refused", error: "inactive integration" },
  ]);
});

test("100 concurrent identical calls produce exactly one accepted row and all return its event id", async () => {
  const body = { customer_phone: "+15550100100", first_name: "Race" };
  // Hold every writer of intake_activity (SHARE blocks inserts, not reads) until all ten of the
  // dispatcher's connections are inside _accept_lead, so the calls really overlap.
  const gate = await h.db.pool.connect();
  let results: Awaited<ReturnType<typeof acceptLead>>[];
  try {
    await gate.query("begin");
    await gate.query("lock table webhooks.intake_activity in share mode");
    const calls = Promise.all(Array.from({ length: 100 }, () => acceptLead(h.dispatcher.pool, integration, "key-race", body)));
    await waitFor("ten calls blocked inside _accept_lead", async () => (await h.db.pool.query<{ n: number }>(
      "select count(*)::int as n from pg_stat_activity where usename = $1 and wait_event_type = 'Lock'", [h.dispatcher.name],
    )).rows[0]!.n === 10);
    await gate.query("commit");
    results = await calls;
  } finally {
    gate.release();
  }
  const accepted = results.filter((result) => result.http_status === 202);
  assert.equal(accepted.length, 1, "one 202");
  assert.equal(results.filter((result) => result.status === "duplicate").length, 99, "99 duplicates");
  assert.deepEqual(new Set(results.map((result) => result.event_id)), new Set([accepted[0]!.event_id]));
  const rows = await activity("key-race");
  assert.equal(rows.filter((row) => row.outcome === "accepted").length, 1);
  assert.equal(rows.length, 100, "every request recorded");
});

test("bad input is refused naming the column, and nothing is recorded", async () => {
  const cases: [unknown[], string][] = [
    [[integration, requestId(), "has.dot", sha256({}), "{}"], "idempotency_key"],
    [[integration, requestId(), "k", "nothex", "{}"], "body_sha256"],
    [[integration, requestId(), "k", sha256([]), "[]"], "body"],
    [[integration, "nope", "k", sha256({}), "{}"], "request_id"],
  ];
  for (const [params, column] of cases) {
    await assert.rejects(h.dispatcher.pool.query("select * from webhooks._accept_lead($1, $2, $3, $4, $5)", params),
      (error: pg.DatabaseError) => {
        assert.equal(error.code, "23514");
        assert.equal(error.column, column);
        assert.match(error.message, new RegExp(`^intake_activity\\.${column} `));
        return true;
      });
  }
});

test("_refuse_request records the HTTP layer's own refusals with the integration's organization", async () => {
  const id = requestId();
  await h.dispatcher.pool.query("select webhooks._refuse_request($1, $2, 401, 'invalid signature')", [id, integration]);
  const { rows } = await h.db.pool.query(
    "select integration_id, organization_id, http_status, outcome, error, event_id from webhooks.intake_activity where request_id = $1", [id]);
  assert.deepEqual(rows, [{ integration_id: integration, organization_id: org, http_status: 401, outcome: "refused",
    error: "invalid signature", event_id: null }]);
  await assert.rejects(h.dispatcher.pool.query("select webhooks._refuse_request($1, null, 202, 'x')", [requestId()]),
    (error: pg.DatabaseError) => error.column === "http_status");
});
