import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { promisify } from "node:util";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../../src/db/embedded-postgres.js";
import { embeddedPostgresBinDir } from "../../src/db/embedded-postgres-runtime.js";
import { migrate } from "../../src/db/migrate.js";
import { createPool, type Pool } from "../../src/db/pool.js";
import { createLogger } from "../../src/logger.js";
import { spawnDaemon, type DaemonProcess } from "../support/daemon.js";
import { freePort } from "../support/free-port.js";
import { createOrganization, createWebhook } from "../support/fixtures.js";
import { startReceiver, type Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";
import { streamContacts, waitUntilAllSucceeded, waitUntilReceived } from "./load.js";

const run = promisify(execFile);

// A private cluster: restarting the suite's shared server would break every other test file.
// embedded-postgres starts it once (initdb, credentials); restarts go through pg_ctl, as the
// `postgres` OS user when running as root (Postgres refuses root).
const logger = createLogger(process.env.TEST_LOG_LEVEL === "debug" ? "debug" : "error");
let dataDir: string;
let port: number;
let embedded: EmbeddedPostgres | undefined;
let url: string;
let pool: Pool;
let receiver: Receiver;
let daemon: DaemonProcess | undefined;


async function pgCtl(...args: string[]): Promise<void> {
  // Where embedded Postgres runs its binaries from: as root in a private directory, a copy.
  const command = [path.join(await embeddedPostgresBinDir(logger), "pg_ctl"), "-D", path.join(dataDir, "pg"), ...args];
  const [file, ...rest] = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...command] : command;
  await run(file!, rest, { timeout: 30_000 });
}

/** Starts the cluster again with the flags embedded-postgres used; waits until it accepts connections. */
async function startCluster(): Promise<void> {
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`;
  await pgCtl("start", "-w", "-l", path.join(dataDir, "pg", "restart.log"), "-o", options);
}

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "pg-webhooks-restart-"));
  await chmod(dataDir, 0o755);
  port = await freePort();
  embedded = await startEmbeddedPostgres({ dataDir, port, logger });
  url = embedded.url;
  pool = createPool(url, { max: 4 });
  await migrate(pool, logger);
  receiver = await startReceiver(() => ({ status: 200, body: "ok", delayMs: 20 }));
});
after(async () => {
  await daemon?.kill("SIGKILL");
  await pool?.end();
  await receiver?.close();
  if (embedded) await embedded.stop();
  else await pgCtl("stop", "-w", "-m", "fast").catch(() => undefined);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** On failure: where the jobs are stuck, and what the daemon said last. */
async function describeState(t: TestContext, daemonProcess: DaemonProcess): Promise<void> {
  for (const line of daemonProcess.output().split("\n").slice(-40)) t.diagnostic(line.slice(0, 400));
  const { rows: jobs } = await pool.query(
    `select claimed_by, count(*)::int, bool_or(retry) as retries, min(due_at) as due_at
       from webhooks.delivery_queue group by claimed_by`,
  );
  const { rows: daemons } = await pool.query("select id, worker_pool_id, heartbeat_at from webhooks.daemons");
  t.diagnostic(`queue: ${JSON.stringify(jobs)}; daemons: ${JSON.stringify(daemons)}`);
}

test("Postgres restarting under load (fast, then immediate shutdown) loses no committed event", async (t) => {
  const org = await createOrganization(pool);
  await createWebhook(pool, { organizationId: org, url: receiver.url, events: ["contact.created"] });
  daemon = await spawnDaemon(url);
  const stream = streamContacts(pool, org, { intervalMs: 5, max: 600, maxMs: 45_000 });
  try {
    await stream.committedAtLeast(50);

    // 1. Fast shutdown (SIGINT): sessions are terminated, the cluster checkpoints and stops.
    await embedded!.stop();
    embedded = undefined;
    const failuresBefore = stream.failures;
    await waitFor("inserts to fail while Postgres is down", () => stream.failures > failuresBefore);
    await startCluster();
    await stream.committedAtLeast(50);

    // 2. Immediate shutdown: every backend dies at once, no checkpoint; WAL replay on start.
    await pgCtl("stop", "-w", "-m", "immediate");
    const failuresBeforeCrash = stream.failures;
    await waitFor("inserts to fail while Postgres is down", () => stream.failures > failuresBeforeCrash);
    await startCluster();
    await stream.committedAtLeast(50);
    await stream.stop();
    t.diagnostic(`${stream.committed.length} inserts committed, ${stream.failures} failed while Postgres was down`);

    await waitUntilReceived(receiver, stream.committed, 60_000);
    await waitUntilAllSucceeded(pool, stream.committed, { timeoutMs: 60_000 });
    assert.equal(daemon.child.exitCode, null, "the same daemon rode out both restarts");
  } catch (error) {
    await describeState(t, daemon).catch(() => undefined);
    throw error;
  } finally {
    await stream.stop();
  }
});
