import assert from "node:assert/strict";
import { test } from "node:test";
import { fanOut } from "../../src/capture/fan-out.js";
import { DaemonRegistry } from "../../src/daemon/daemon-registry.js";
import { createLogger } from "../../src/logger.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

// The registry on its own, against a real database and no running daemon: registration,
// heartbeats, and what it does for daemons that stopped beating.

const h = useHarness({});
const logger = createLogger("silent");
const registry = () => new DaemonRegistry(h.db.pool, logger, { heartbeatIntervalMs: 60_000, staleDaemonMs: 1_000 }, []);

async function registered(id: string): Promise<{ heartbeat_at: Date } | undefined> {
  const { rows } = await h.db.pool.query("select heartbeat_at from webhooks.daemons where id = $1", [id]);
  return rows[0];
}

test("register adds the daemon's row; a beat refreshes it, and re-creates it when it was reaped meanwhile; stop removes it", async () => {
  const r = registry();
  await r.register(null);
  const first = (await registered(r.id))!.heartbeat_at;
  await h.db.pool.query("update webhooks.daemons set heartbeat_at = now() - interval '1 minute' where id = $1", [r.id]);
  await r.beat();
  assert.ok((await registered(r.id))!.heartbeat_at >= first, "the heartbeat moved forward");

  await h.db.pool.query("delete from webhooks.daemons where id = $1", [r.id]);
  await r.beat();
  assert.ok(await registered(r.id), "re-registered");

  await r.stop();
  assert.equal(await registered(r.id), undefined);
});

test("reapStale forgets daemons silent longer than staleDaemonMs, never itself nor a live one", async () => {
  const r = registry();
  await r.register(null);
  await h.db.pool.query(
    `insert into webhooks.daemons (id, hostname, pid, heartbeat_at) values
       ('daemon-silent', 'elsewhere', 1, now() - interval '10 seconds'),
       ('daemon-alive', 'elsewhere', 2, now())`,
  );
  await h.db.pool.query("update webhooks.daemons set heartbeat_at = now() - interval '10 seconds' where id = $1", [r.id]);
  await r.reapStale();
  const { rows } = await h.db.pool.query<{ id: string }>("select id from webhooks.daemons order by id");
  assert.deepEqual(rows.map((row) => row.id).sort(), ["daemon-alive", r.id].sort());
  await r.stop();
  await h.db.pool.query("delete from webhooks.daemons where id = 'daemon-alive'");
});

test("reapStale gives back a dead daemon's claimed deliveries, each with a log row for the attempt it interrupted", async () => {
  const org = await createOrganization(h.db.pool);
  const hook = await createWebhook(h.db.pool, { organizationId: org, url: "https://receiver.example/hook", events: ["contact.created"] });
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'One'), ($1, 'Two')", [org]);
  await fanOut(h.db.pool, 100, logger);
  // As claims by a daemon that has since died without a trace, published in endpoint_claims as a
  // claim does: one took its attempt number, the other (as a daemon of an older release) did not.
  await h.db.pool.query(
    `update webhooks.delivery_queue set claimed_by = 'daemon-killed', claimed_at = now(),
            attempts = attempts + (case when delivery_id = (select min(delivery_id::text)::uuid from webhooks.delivery_queue where webhook_id = $1) then 1 else 0 end)
      where webhook_id = $1`,
    [hook.id],
  );
  await h.db.pool.query("insert into webhooks.endpoint_claims (webhook_id, daemon_id, in_flight) values ($1, 'daemon-killed', 2)", [hook.id]);

  const r = registry();
  await r.register(null);
  await r.reapStale();
  await r.stop();

  const { rows: queue } = await h.db.pool.query("select claimed_by, retry, attempts from webhooks.delivery_queue where webhook_id = $1", [hook.id]);
  assert.deepEqual(
    queue,
    [{ claimed_by: null, retry: true, attempts: 1 }, { claimed_by: null, retry: true, attempts: 1 }],
    "back in the queue, to be attempted again under number 2",
  );
  const { rows: published } = await h.db.pool.query("select 1 from webhooks.endpoint_claims where daemon_id = 'daemon-killed'");
  assert.equal(published.length, 0, "its published in-flight figures are gone with it");
  const { rows: logs } = await h.db.pool.query<{ attempt: number; success: boolean; response_status: number | null; error: string }>(
    "select attempt, success, response_status, error from webhooks.webhook_logs where webhook_id = $1",
    [hook.id],
  );
  assert.equal(logs.length, 2);
  for (const log of logs) {
    assert.deepEqual({ attempt: log.attempt, success: log.success, status: log.response_status }, { attempt: 1, success: false, status: null });
    assert.match(log.error, /^interrupted: .*daemon-killed/);
  }
  const { rows: deliveries } = await h.db.pool.query("select attempts, state from webhooks.deliveries where webhook_id = $1", [hook.id]);
  assert.deepEqual(deliveries, [{ attempts: 1, state: "failed" }, { attempts: 1, state: "failed" }]);

  // A second reaper finds nothing left to give back: each interrupted attempt is logged once.
  const again = registry();
  await again.register(null);
  await again.reapStale();
  await again.stop();
  const { rows: after } = await h.db.pool.query("select count(*)::int as n from webhooks.webhook_logs where webhook_id = $1", [hook.id]);
  assert.equal(after[0].n, 2);
});
