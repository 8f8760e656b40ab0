/**
 * What the bench's phases share (run.ts, history.ts, soak.ts): the receiver and daemon processes,
 * a bench database, the backlog, the drain's timing and paced writes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import { createLogger } from "../src/logger.js";
import { createPool, type Pool } from "../src/db/pool.js";
import { migrate } from "../src/db/migrate.js";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.js";
import { packageRoot } from "../src/package-info.js";
import * as processCpu from "./process-cpu.js";

export const logger = createLogger("warn");

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};
/** The report's figures: one decimal; counts with thousands separators (1,234,567). */
export const fmt = (n: number) => n.toFixed(1);
export const count = (n: number) => n.toLocaleString("en-US");

/** A phase's lines of the report: rows of the measures table, and sections printed after it. */
export interface PhaseReport {
  rows: string[];
  sections: string[];
}

export type CpuPerDelivery = ReturnType<typeof processCpu.perDelivery>;
export const cpuCell = (c: CpuPerDelivery) => `${c.daemon.toFixed(0)} / ${c.postgres.toFixed(0)} / ${c.receiver.toFixed(0)}`;
export const medianCpu = (runs: CpuPerDelivery[]) =>
  (["daemon", "postgres", "receiver"] as const).map((side) => median(runs.map((c) => c[side])).toFixed(0)).join(" / ");

/** Receivers and daemons still running: killed if the bench exits early (an error), not left behind. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

export type Receiver = { port: number; child: ChildProcess; collect(): Promise<Map<string, number>> };

/**
 * A receiver in its own process (receiver-process.ts): answers at once, or `delayMs` after
 * reading each request, or never; collect() gives each event's data.id and arrival time received
 * since the last collect().
 */
export async function startReceiver(outFile: string, delayMs: number | "never" = 0): Promise<Receiver> {
  const args = [path.join(packageRoot, "dist/bench/receiver-process.js"), outFile, String(delayMs)];
  const child = track(spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] }));
  let stdout = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  while (!stdout.includes("\n")) await delay(10);
  return {
    port: Number(stdout.split("\n")[0]),
    child,
    async collect() {
      const before = stdout.split("flushed").length;
      child.kill("SIGUSR2");
      while (stdout.split("flushed").length === before) await delay(10);
      const map = new Map<string, number>();
      for (const line of (await readFile(outFile, "utf8")).split("\n")) {
        const [id, at] = line.split(" ");
        if (id && at && !map.has(id)) map.set(id, Number(at));
      }
      return map;
    },
  };
}

/**
 * A daemon (`pg-webhooks start`) on `url`, its HTTP server on `port`, with `env` added; resolves
 * once healthy. Its log (stderr) goes to the bench's stderr, or line by line to `onLogLine`.
 */
export async function startDaemon(url: string, port: number, env: Record<string, string> = {},
                                  onLogLine?: (line: string) => void): Promise<ChildProcess> {
  // e.g. BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the daemon
  const nodeArgs = process.env.BENCH_DAEMON_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = track(spawn(process.execPath, [...nodeArgs, path.join(packageRoot, "dist/src/cli.js"), "start"], {
    env: { PATH: process.env.PATH, DATABASE_URL: url, PORT: String(port), LOG_LEVEL: "warn",
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true", WEBHOOKS_ALLOW_HTTP: "true",
      // The daemon's default concurrency unless BENCH_CONCURRENCY says otherwise.
      ...(process.env.BENCH_CONCURRENCY ? { WEBHOOKS_CONCURRENCY: process.env.BENCH_CONCURRENCY } : {}),
      ...env },
    stdio: ["ignore", "ignore", onLogLine ? "pipe" : "inherit"],
  }));
  if (onLogLine) {
    let partial = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) if (line) onLogLine(line);
    });
  }
  for (let i = 0; i < 600; i++) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return child;
    await delay(50);
  }
  throw new Error("daemon did not become healthy");
}

export async function stopDaemon(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

/** A PostgreSQL server of the bench's own (embedded-postgres), in a temp dir removed when it stops. */
export async function embeddedServer(port: number): Promise<{ url: string; describe: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "pgw-bench-"));
  await chmod(dir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir: dir, port, logger });
  return { url: embedded.url, describe: "embedded PostgreSQL", stop: async () => { await embedded.stop(); await rm(dir, { recursive: true, force: true }); } };
}

export function inDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = "/" + database;
  return parsed.toString();
}

/** A database of the bench: dropped if left by an earlier run, created, migrated. */
export interface BenchDatabase {
  name: string;
  url: string;
  pool: Pool;
}

export async function createDatabase(admin: pg.Client, serverUrl: string, name: string): Promise<BenchDatabase> {
  await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  const url = inDatabase(serverUrl, name);
  const pool = createPool(url, { max: 4 });
  await migrate(pool, logger);
  return { name, url, pool };
}

export async function dropDatabase(admin: pg.Client, db: BenchDatabase): Promise<void> {
  await db.pool.end();
  await admin.query(`drop database if exists ${pg.escapeIdentifier(db.name)} with (force)`);
}

/**
 * Each drain or latency run leaves tens of thousands of dead queue rows behind; a system in a
 * steady state has autovacuum keep up with them, so each run starts vacuumed.
 */
export const settle = (pool: Pool) =>
  pool.query(`vacuum analyze webhooks.outbox, webhooks.events, webhooks.deliveries, webhooks.webhook_logs, webhooks.delivery_queue,
                             webhooks.endpoint_states, webhooks.endpoint_claims, graphile_worker._private_jobs`);

/** A backlog: the same rows the capture phase's script writes, in one statement. */
export const insertContacts = (pool: Pool, organizationId: string, n: number) =>
  pool.query(`insert into public.contacts (organization_id, first_name, last_name, email, phone)
              select $1, 'Ada', 'Lovelace', 'ada@example.com', '+15550100' from generate_series(1, $2)`, [organizationId, n]);

/** An organization with one endpoint subscribed to contact.created at `url`. */
export async function organizationWithEndpoint(pool: Pool, name: string, url: string, maxInFlight: string | null = null) {
  const { rows: [org] } = await pool.query<{ id: string }>("insert into organizations (name) values ($1) returning id", [name]);
  // max_in_flight null: the column's default.
  const { rows: [endpoint] } = await pool.query<{ id: string }>(
    `insert into webhooks.webhook_configurations (organization_id, name, url, events, max_in_flight)
     values ($1, $2, $3, '{contact.created}', coalesce($4::int, 256)) returning id`, [org!.id, name, url, maxInFlight]);
  return { organizationId: org!.id, webhookId: endpoint!.id };
}

/** What a drain is timed against: the daemon's port, the receiver's pid and the server's postmaster (for CPU). */
export interface DrainSetup {
  daemonPort: number;
  receiverPid: number;
  /** The Postgres server's postmaster pid when its processes can be read (same machine), for CPU per delivery. */
  postmaster: number | undefined;
}

/**
 * Starts the daemon on what is queued in `db` and times it from healthy (fan-out begins only then)
 * until `deliveries` more attempts are logged (counted by the log's ids above the last one given
 * before the start: an index probe, not a count of the history); checks they all succeeded, and
 * stops the daemon. With the CPU each side spent per delivery.
 */
export async function timeUntilLogged(db: BenchDatabase, setup: DrainSetup, deliveries: number, phase: string) {
  const maxId = async (above: number) =>
    Number((await db.pool.query<{ n: string }>("select coalesce(max(id), $1) as n from webhooks.webhook_logs where id > $1", [above])).rows[0]!.n);
  // The sequence, not max(id): rows deleted since (the history phase's cleanup) leave their ids used.
  const before = Number((await db.pool.query<{ n: string }>(
    "select coalesce(pg_sequence_last_value('webhooks.webhook_logs_id_seq'), 0) as n")).rows[0]!.n);
  const daemon = await startDaemon(db.url, setup.daemonPort);
  const started = performance.now();
  const pids = { daemon: daemon.pid!, receiver: setup.receiverPid, postmaster: setup.postmaster ?? -1 };
  // Postgres CPU is the backends of this database (another session's, on a shared server, is not the drain's).
  const backends = async () =>
    (await db.pool.query<{ pid: number }>("select pid from pg_stat_activity where datname = current_database()")).rows.map((row) => row.pid);
  const drainBackends = new Set(setup.postmaster ? await backends() : []);
  const cpuBefore = setup.postmaster ? processCpu.snapshot(pids) : undefined;
  // Polled every 100 ms: counting rows that often would load the server under test.
  while ((await maxId(before)) < before + deliveries) await delay(100);
  const rate = deliveries / ((performance.now() - started) / 1000);
  for (const pid of setup.postmaster ? await backends() : []) drainBackends.add(pid);
  const cpu = cpuBefore ? processCpu.perDelivery(cpuBefore, processCpu.snapshot(pids), deliveries, drainBackends) : undefined;
  const { rows: [check] } = await db.pool.query<{ ok: number; n: number }>(
    "select count(*) filter (where success)::int as ok, count(*)::int as n from webhooks.webhook_logs where id > $1", [before]);
  if (check!.ok !== deliveries || check!.n !== deliveries) throw new Error(`${phase}: expected ${deliveries} successful attempts, got ${check!.ok} of ${check!.n}`);
  await stopDaemon(daemon);
  return { rate, cpu };
}

/**
 * `total` contacts of one organization committed one by one at a steady `rate` per second on a
 * connection of their own; onWritten gets each one's id (the event's data.id) and the time just
 * before its INSERT was sent (ms since the epoch, as the receiver's arrival times).
 */
export async function steadyInserts(url: string, organizationId: string, rate: number, total: number,
                                    onWritten: (id: string, sentAt: number, index: number) => void): Promise<void> {
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  try {
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const wait = start + (i * 1000) / rate - performance.now();
      if (wait > 0) await delay(wait);
      const sentAt = performance.timeOrigin + performance.now();
      const { rows } = await writer.query<{ id: string }>("insert into public.contacts (organization_id, first_name) values ($1, 'lat') returning id", [organizationId]);
      onWritten(rows[0]!.id, sentAt, i);
    }
  } finally {
    await writer.end();
  }
}
