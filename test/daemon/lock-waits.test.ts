/**
 * What the application role can lock must not stall the daemon silently (README, "Locks, stalls
 * and crashes"): every daemon connection waits at most lock_timeout, says who holds the lock, and
 * retries; the migration lock is waited for by trying, naming its holder in the log and on
 * /healthz; and a configuration row an application holds locked does not hold up anyone's records.
 * The daemon runs as a real webhooks_dispatcher login, the holder as a real webhooks_app login.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import type { DaemonProcess } from "../support/daemon.js";
import { createWebhook, logs } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { waitUntilReceived } from "../crash/load.js";

const h = useHarness({ app: true, dispatcher: true, twoOrganizations: true, receiver: true });

/** A session of the application's login, named as an operator would find it in pg_stat_activity. */
async function appSession(applicationName: string): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: h.app.url, application_name: applicationName });
  await client.connect();
  h.defer(() => client.end().catch(() => undefined));
  const { rows } = await client.query<{ pid: number }>("select pg_backend_pid() as pid");
  return { client, pid: rows[0]!.pid };
}

async function insertContact(org: string, name: string): Promise<string> {
  const { rows } = await h.db.pool.query<{ id: string }>("insert into contacts (organization_id, first_name) values ($1, $2) returning id", [org, name]);
  return rows[0]!.id;
}

test("the application locking webhook_configurations delays the daemon by lock_timeout at a time: each wait and each timeout names the holder, and delivery resumes once it lets go", async () => {
  await createWebhook(h.db.pool, { organizationId: h.orgA, url: h.receiver.url, events: ["contact.created"] });
  const daemon = await h.spawnDaemon({ WEBHOOKS_LOCK_TIMEOUT_MS: "1000" }, h.dispatcher.url);
  const { client: holder, pid } = await appSession("crm-batch-job");
  const named = new RegExp(
    `pid ${pid} \\(role ${h.app.name}, application_name "crm-batch-job", idle in transaction, transaction open [\\d.]+ s\\) holding AccessExclusiveLock`,
  );
  let id: string;
  try {
    await holder.query("begin");
    await holder.query("select set_config('app.organization_id', $1, true)", [h.orgA]);
    await holder.query("lock table webhooks.webhook_configurations in access exclusive mode");
    id = await insertContact(h.orgA, "behind the lock");

    const waiting = await waitFor("a log line naming the lock's holder while the daemon waits", () =>
      daemon.logLines().find((line) => line.level === "warn" && /^waiting for AccessShareLock on relation webhooks\.webhook_configurations/.test(String(line.message))),
    );
    assert.match(String(waiting.message), named);
    const blockers = waiting.blockers as { pid: number; role: string; application_name: string; transaction_seconds: number; holds: string }[];
    assert.deepEqual(
      blockers.map(({ pid, role, application_name, holds }) => ({ pid, role, application_name, holds })),
      [{ pid, role: h.app.name, application_name: "crm-batch-job", holds: "AccessExclusiveLock" }],
    );
    assert.ok(blockers[0]!.transaction_seconds > 0, "how long its transaction has been open");

    const timedOut = await waitFor("a lock timeout, retried, naming the holder", () =>
      daemon.logLines().find((line) => line.level === "warn" && /waited longer than lock_timeout for .*; retrying$/.test(String(line.message))),
    );
    assert.equal((timedOut.error as { code: string }).code, "55P03");
    assert.match(String(timedOut.message), named);
    assert.equal(h.receiver.requests.length, 0, "nothing could be fanned out meanwhile");
  } finally {
    await holder.end(); // lets go of the lock whatever happened: the next tests need the table
  }
  await waitUntilReceived(h.receiver, [id], 15_000);
  await daemon.kill();
});

test("a session holding the migration lock keeps a new daemon starting, and the daemon says who holds it, in its log and on /healthz", async () => {
  const { client: holder, pid } = await appSession("psql-maintenance");
  const named = new RegExp(
    `^waiting for the migration lock held by pid ${pid} \\(role ${h.app.name}, application_name "psql-maintenance", idle in transaction, transaction open [\\d.]+ s\\)$`,
  );
  let daemon: DaemonProcess;
  try {
    await holder.query("begin");
    await holder.query("select pg_advisory_lock(hashtext('pg-webhooks:migrate'))");
    daemon = await h.spawnDaemon({}, h.dispatcher.url, { healthy: false });
    const logged = await waitFor("a log line naming the migration lock's holder", () =>
      daemon.logLines().find((line) => String(line.message).startsWith("waiting for the migration lock")),
    );
    assert.equal(logged.level, "warn");
    assert.match(String(logged.message), named);
    const health = await waitFor("/healthz to answer", () => fetch(`${daemon.url}/healthz`).catch(() => undefined));
    assert.equal(health.status, 503);
    const body = (await health.json()) as { status: string; reason: string };
    assert.equal(body.status, "starting");
    assert.match(body.reason, named);
  } finally {
    await holder.end(); // lets go of the lock whatever happened
  }
  await waitFor("the daemon to become healthy", async () => (await fetch(`${daemon.url}/healthz`)).status === 200, 20_000);
  assert.ok(daemon.logLines().some((line) => line.message === "took the migration lock"));
  await daemon.kill();
});

test("an application holding its own configuration row locked does not hold up the attempt records of another organization", async () => {
  const failing = await createWebhook(h.db.pool, { organizationId: h.orgA, url: `${h.receiver.url}/a`, events: ["deal.created"], max_retries: 0 });
  const healthy = await createWebhook(h.db.pool, { organizationId: h.orgB, url: `${h.receiver.url}/b`, events: ["deal.created"] });
  h.receiver.respond((request) => (request.path.endsWith("/a") ? { status: 500, body: "down" } : { status: 200, body: "ok" }));
  // Waits of a minute would show: this test passes only if nothing waits for the row at all.
  await h.spawnDaemon({ WEBHOOKS_LOCK_TIMEOUT_MS: "60000" }, h.dispatcher.url);
  const { client: holder } = await appSession("crm-editor");
  await holder.query("begin");
  await holder.query("select set_config('app.organization_id', $1, true)", [h.orgA]);
  const { rowCount } = await holder.query("select 1 from webhooks.webhook_configurations where id = $1 for update", [failing.id]);
  assert.equal(rowCount, 1, "the application may lock its own configuration's row");
  try {
    // A's failure would mark its configuration failing (a write to the locked row), in the same
    // record statement as B's success.
    await h.db.pool.query("insert into deals (organization_id, title) values ($1, 'a'), ($2, 'b')", [h.orgA, h.orgB]);
    const recorded = await waitFor("both attempts recorded while A's row is locked", async () => {
      const rows = (await logs(h.db.pool)).filter((row) => row.webhook_id === failing.id || row.webhook_id === healthy.id);
      return rows.length === 2 ? rows : undefined;
    });
    assert.deepEqual(
      recorded.map((row) => [row.webhook_id, row.success]).sort(),
      [[failing.id, false], [healthy.id, true]].sort(),
    );
  } finally {
    await holder.end();
  }
});
