/**
 * A daemon whose work stops moving says so (src/daemon/stall-watch.ts): in its log, on /healthz
 * and on /metrics, with the statement it is in, what that waits on and who blocks it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { waitUntilReceived } from "../crash/load.js";

const h = useHarness({ receiver: true });

test("a dispatcher stuck in its outbox DELETE is reported as stalled in the log, on /healthz and on /metrics, then as moving again", async () => {
  const org = await createOrganization(h.db.pool);
  await createWebhook(h.db.pool, { organizationId: org, url: h.receiver.url, events: ["contact.created"] });
  const { rows } = await h.db.pool.query<{ id: string }>(
    "insert into contacts (organization_id, first_name) values ($1, 'waiting') returning id",
    [org],
  );
  // SHARE lets the dispatcher see the event (SELECT) but not take it (DELETE): it waits inside
  // its fan-out, as long as the lock is held (lock_timeout raised so it does not give up).
  const holder = await h.db.pool.connect();
  await holder.query("begin");
  await holder.query("lock table webhooks.outbox in share mode");
  const { rows: [session] } = await holder.query<{ pid: number }>("select pg_backend_pid() as pid");
  try {
    // Not waiting for /healthz to say ok: the stall may come first.
    const daemon = await h.spawnDaemon({ WEBHOOKS_STALL_SECONDS: "1", WEBHOOKS_LOCK_TIMEOUT_MS: "60000" }, undefined, { healthy: false });
    const stalled = await waitFor("a stall in the log", () =>
      daemon.logLines().find((line) => line.level === "warn" && String(line.message).startsWith("stalled: dispatch")),
    );
    assert.match(String(stalled.message), /dispatch has not moved the outbox for [\d.]+ s/);
    assert.match(String(stalled.message), new RegExp(`pid ${session!.pid} \\(role postgres`), "the message names the blocker");
    const statements = stalled.statements as { statement: string; wait_event_type: string; wait_event: string; blocked_by: number[] }[];
    const blocked = statements.find((statement) => statement.blocked_by.includes(session!.pid));
    assert.ok(blocked, `a statement blocked by the holder: ${JSON.stringify(statements)}`);
    assert.match(blocked.statement, /delete from webhooks\.outbox/);
    assert.equal(blocked.wait_event_type, "Lock");
    assert.equal(blocked.wait_event, "relation");

    const health = await fetch(`${daemon.url}/healthz`);
    assert.equal(health.status, 503);
    const body = (await health.json()) as { status: string; reason: string; stalls: unknown[] };
    assert.equal(body.status, "stalled");
    assert.deepEqual(Object.keys(body.stalls[0] as object).sort(), ["activity", "seconds"], "no statement text, no error, to whoever asks");
    assert.doesNotMatch(JSON.stringify(body), /delete from/i);
    assert.match(body.reason, /dispatch has not moved the outbox/);
    assert.match(body.reason, new RegExp(`pid ${session!.pid}`));

    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    assert.match(metrics, /^pg_webhooks_stalled\{activity="dispatch"\} 1$/m);
    assert.match(metrics, /^pg_webhooks_stalled\{activity="claim"\} 0$/m, "claims still move");
    const seconds = Number(/^pg_webhooks_stalled_seconds\{activity="dispatch"\} ([\d.]+)$/m.exec(metrics)?.[1]);
    assert.ok(seconds >= 1, `stalled for ${seconds} s`);

    await waitFor("the stall reported again while it lasts", () =>
      daemon.logLines().filter((line) => String(line.message).startsWith("stalled: dispatch")).length >= 2,
    );
    await holder.query("commit");
    await waitUntilReceived(h.receiver, [rows[0]!.id], 15_000);
    await waitFor("moving again in the log", () => daemon.logLines().some((line) => line.message === "dispatch is moving the outbox again"));
    await waitFor("/healthz ok again", async () => (await fetch(`${daemon.url}/healthz`)).status === 200);
  } finally {
    await holder.query("rollback").catch(() => undefined);
    holder.release();
  }
});
