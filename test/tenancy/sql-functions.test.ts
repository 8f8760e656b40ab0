import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { asTenant, assertPermissionDenied } from "./roles.js";

// The webhooks functions that run as their owner (SECURITY DEFINER) write the outbox, which the
// application cannot: the public ones act only within the caller's organization, the private
// ones cannot be called by an application at all.

const h = useHarness({ app: true, dispatcher: true, twoOrganizations: true });
let hookA: string;
let hookB: string;

h.before(async () => {
  hookA = (await createWebhook(h.db.pool, { organizationId: h.orgA, url: "https://a.example.com/hook" })).id;
  hookB = (await createWebhook(h.db.pool, { organizationId: h.orgB, url: "https://b.example.com/hook" })).id;
});

async function outbox(): Promise<{ organization_id: string; event_type: string; webhook_id: string | null }[]> {
  const { rows } = await h.db.pool.query("select organization_id, event_type, webhook_id from webhooks.outbox order by id");
  return rows;
}

/** Refused by the function's tenant check (insufficient_privilege), with a message saying why. */
async function assertTenantRefused(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: pg.DatabaseError) => {
    assert.equal(error.code, "42501", `${error.code}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  });
}

test("the application cannot call the private enqueue function or attach capture with track/untrack", async () => {
  const calls = [
    "select webhooks._enqueue($1, array['zoom.recording.completed'], '{}', null)",
    "select webhooks._assert_tenant($1, 'x')",
    "select webhooks.track('public.contacts', 'person') where $1::uuid is not null",
    "select webhooks.untrack('public.contacts') where $1::uuid is not null",
  ];
  for (const call of calls) {
    await assertPermissionDenied(asTenant(h.app.pool, h.orgA, (client) => client.query(call, [h.orgB])), call);
  }
  assert.deepEqual(await outbox(), [], "no event was enqueued");
  const { rows } = await h.db.pool.query("select count(*)::int as n from webhooks.event_types where name like 'person.%'");
  assert.equal(rows[0].n, 0, "track registered nothing");
});

test("webhooks.emit enqueues an event for the caller's own organization", async () => {
  await h.db.pool.query("delete from webhooks.outbox");
  const id = await asTenant(h.app.pool, h.orgA, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      "select webhooks.emit($1, 'zoom.recording.completed', '{\"recording\": 1}') as id",
      [h.orgA],
    );
    return rows[0]!.id;
  });
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.deepEqual(await outbox(), [{ organization_id: h.orgA, event_type: "zoom.recording.completed", webhook_id: null }]);
});

test("webhooks.emit refuses another organization's id and refuses a caller with no organization set", async () => {
  await h.db.pool.query("delete from webhooks.outbox");
  await assertTenantRefused(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.emit($1, 'zoom.recording.completed', '{}')", [h.orgB])),
    /is not the organization of this transaction/,
  );
  for (const setting of [null, ""]) {
    await assertTenantRefused(
      asTenant(h.app.pool, setting, (client) => client.query("select webhooks.emit($1, 'zoom.recording.completed', '{}')", [h.orgA])),
      /no organization set for this transaction/,
    );
  }
  assert.deepEqual(await outbox(), [], "nothing was enqueued");
});

test("webhooks.send_test enqueues a test event for the caller's own webhook", async () => {
  await h.db.pool.query("delete from webhooks.outbox");
  await asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.send_test($1)", [hookA]));
  assert.deepEqual(await outbox(), [{ organization_id: h.orgA, event_type: "webhook.test", webhook_id: hookA }]);
});

test("webhooks.send_test refuses another organization's webhook and refuses a caller with no organization set", async () => {
  await h.db.pool.query("delete from webhooks.outbox");
  // Another organization's webhook is answered exactly like one that does not exist.
  const foreign = await asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.send_test($1)", [hookB])).then(
    () => assert.fail("send_test of another organization's webhook succeeded"),
    (error: { code?: string; message: string }) => error,
  );
  const missingId = "00000000-0000-4000-8000-000000000000";
  const missing = await asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.send_test($1)", [missingId])).then(
    () => assert.fail("send_test of a missing webhook succeeded"),
    (error: { code?: string; message: string }) => error,
  );
  assert.equal(foreign.code, "P0002");
  assert.equal(foreign.code, missing.code);
  assert.equal(foreign.message.replace(hookB, "<id>"), missing.message.replace(missingId, "<id>"));
  for (const setting of [null, ""]) {
    await assertTenantRefused(
      asTenant(h.app.pool, setting, (client) => client.query("select webhooks.send_test($1)", [hookA])),
      /no organization set for this transaction/,
    );
  }
  assert.deepEqual(await outbox(), [], "nothing was enqueued");
});

test("the dispatcher (the daemon and its CLI) may emit and send tests for any organization without a setting", async () => {
  await h.db.pool.query("delete from webhooks.outbox");
  await h.dispatcher.pool.query("select webhooks.send_test($1)", [hookB]);
  await h.dispatcher.pool.query("select webhooks.emit($1, 'zoom.recording.completed', '{}')", [h.orgA]);
  assert.deepEqual(await outbox(), [
    { organization_id: h.orgB, event_type: "webhook.test", webhook_id: hookB },
    { organization_id: h.orgA, event_type: "zoom.recording.completed", webhook_id: null },
  ]);
});
