/**
 * `npm run bench`: capture overhead (pgbench), drain throughput and end-to-end latency, measured
 * side by side in one run, each figure the median of 3. Needs `pgbench` on PATH and a PostgreSQL:
 * BENCH_DATABASE_URL, else the local server at 127.0.0.1:5432, else embedded Postgres.
 * Prints a Markdown report (paste it into BENCHMARKS.md).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import { createLogger } from "../src/logger.js";
import { createPool } from "../src/db/pool.js";
import { migrate } from "../src/db/migrate.js";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.js";
import { packageRoot } from "../src/package-info.js";
import * as processCpu from "./process-cpu.js";

const logger = createLogger("warn");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
/** Without a capture phase (BENCH_ONLY=drain), the backlog each drain run delivers. */
const DRAIN_EVENTS = Number(process.env.BENCH_DRAIN_EVENTS ?? 100_000);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 20);
const ONLY = process.env.BENCH_ONLY; // capture | drain | latency
const LATENCY_RATE = 100;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

async function server(): Promise<{ url: string; describe: string; stop(): Promise<void> }> {
  if (process.env.BENCH_DATABASE_URL) return { url: process.env.BENCH_DATABASE_URL, describe: "BENCH_DATABASE_URL", stop: async () => undefined };
  const local = "postgres://postgres@127.0.0.1:5432/postgres";
  if (spawnSync("pg_isready", ["-q", "-d", local]).status === 0) return { url: local, describe: "local PostgreSQL at 127.0.0.1:5432", stop: async () => undefined };
  const dir = await mkdtemp(path.join(os.tmpdir(), "pgw-bench-"));
  await chmod(dir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir: dir, port: 54391, logger });
  return { url: embedded.url, describe: "embedded PostgreSQL", stop: async () => { await embedded.stop(); await rm(dir, { recursive: true, force: true }); } };
}

function inDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = "/" + database;
  return parsed.toString();
}

async function startReceiver(outFile: string): Promise<{ port: number; child: ChildProcess; collect(): Promise<Map<string, number>> }> {
  const child = spawn(process.execPath, [path.join(packageRoot, "dist/bench/receiver-process.js"), outFile], { stdio: ["ignore", "pipe", "inherit"] });
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

async function startDaemon(url: string, port: number): Promise<ChildProcess> {
  // e.g. BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the daemon
  const nodeArgs = process.env.BENCH_DAEMON_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, path.join(packageRoot, "dist/src/cli.js"), "start"], {
    env: { PATH: process.env.PATH, DATABASE_URL: url, PORT: String(port), LOG_LEVEL: "warn",
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true", WEBHOOKS_ALLOW_HTTP: "true",
      // The daemon's default concurrency unless BENCH_CONCURRENCY says otherwise.
      ...(process.env.BENCH_CONCURRENCY ? { WEBHOOKS_CONCURRENCY: process.env.BENCH_CONCURRENCY } : {}) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (let i = 0; i < 600; i++) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) return child;
    await delay(50);
  }
  throw new Error("daemon did not become healthy");
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

function pgbench(url: string, scriptFile: string): number {
  const result = spawnSync("pgbench", ["-n", "-c", "4", "-j", "2", "-T", String(PGBENCH_SECONDS), "-f", scriptFile, url], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`pgbench failed: ${result.stderr}`);
  const tps = /tps = ([\d.]+)/.exec(result.stdout)?.[1];
  if (!tps) throw new Error(`no tps in pgbench output:\n${result.stdout}`);
  return Number(tps);
}

async function main() {
  if (spawnSync("pgbench", ["--version"]).status !== 0) throw new Error("pgbench is not on PATH (Debian: postgresql-client)");
  const srv = await server();
  const admin = new pg.Client({ connectionString: srv.url });
  await admin.connect();
  await admin.query("drop database if exists pgw_bench with (force)");
  await admin.query("create database pgw_bench");
  const url = inDatabase(srv.url, "pgw_bench");
  const pool = createPool(url, { max: 4 });
  await migrate(pool, logger);
  // The server's backends are the postmaster's children; found through one of ours (same machine only).
  const { rows: [backend] } = await pool.query<{ pid: number }>("select pg_backend_pid() as pid");
  const postmaster = processCpu.available() ? processCpu.postmasterOf(backend!.pid) : undefined;
  const work = await mkdtemp(path.join(os.tmpdir(), "pgw-bench-work-"));
  const receiver = await startReceiver(path.join(work, "received.txt"));
  const daemonPort = 18787;

  const { rows: [org] } = await pool.query<{ id: string }>("insert into organizations (name) values ('bench') returning id");
  // BENCH_MAX_IN_FLIGHT: the endpoint's max_in_flight (default: the column's default).
  await pool.query(`insert into webhooks.webhook_configurations (organization_id, name, url, events, max_in_flight)
                    values ($1, 'bench', $2, '{contact.created}', coalesce($3::int, 256))`,
                   [org!.id, `http://127.0.0.1:${receiver.port}/hook`, process.env.BENCH_MAX_IN_FLIGHT ?? null]);
  // The baseline: the same table (columns, defaults, indexes, foreign key), without capture.
  await pool.query(`create table public.contacts_plain (like public.contacts including all);
                    alter table public.contacts_plain add foreign key (organization_id) references public.organizations (id);`);
  const script = (table: string) => `insert into public.${table} (organization_id, first_name, last_name, email, phone) values ('${org!.id}', 'Ada', 'Lovelace', 'ada@example.com', '+15550100');\n`;
  await writeFile(path.join(work, "capture.sql"), script("contacts"));
  await writeFile(path.join(work, "plain.sql"), script("contacts_plain"));

  // 1. Capture overhead (daemon stopped), interleaved runs.
  const plainTps: number[] = [];
  const captureTps: number[] = [];
  for (let run = 0; run < (!ONLY || ONLY === "capture" ? RUNS : 0); run++) {
    plainTps.push(pgbench(url, path.join(work, "plain.sql")));
    captureTps.push(pgbench(url, path.join(work, "capture.sql")));
  }
  const backlog = Number((await pool.query("select count(*) from webhooks.outbox")).rows[0].count);

  // Each drain or latency run leaves tens of thousands of dead queue rows behind; a system in a
  // steady state has autovacuum keep up with them, so each run starts vacuumed.
  const settle = () =>
    pool.query("vacuum analyze webhooks.outbox, webhooks.events, webhooks.deliveries, webhooks.webhook_logs, graphile_worker._private_jobs");

  // 2. Drain: the backlog the capture writes left, delivered with every attempt logged. Every run
  // drains a backlog of that size (later runs re-create it with one bulk insert), so the runs
  // compare like with like; without a capture phase, BENCH_DRAIN_EVENTS of them.
  const drainEvents = backlog > 0 && !process.env.BENCH_DRAIN_EVENTS ? backlog : DRAIN_EVENTS;
  const drainRates: number[] = [];
  const drainCpu: { daemon: number; receiver: number; postgres: number }[] = [];
  for (let run = 0; run < (!ONLY || ONLY === "drain" ? RUNS : 0); run++) {
    if (run > 0 || backlog !== drainEvents) {
      await pool.query("truncate webhooks.outbox");
      // The same rows the capture writes insert (see script), in one statement.
      await pool.query(`insert into public.contacts (organization_id, first_name, last_name, email, phone)
                        select $1, 'Ada', 'Lovelace', 'ada@example.com', '+15550100' from generate_series(1, $2)`, [org!.id, drainEvents]);
    }
    await settle();
    const events = Number((await pool.query("select count(*) from webhooks.outbox")).rows[0].count);
    await pool.query("truncate webhooks.webhook_logs restart identity; truncate webhooks.deliveries; truncate webhooks.events;");
    const daemon = await startDaemon(url, daemonPort);
    const started = performance.now(); // from healthy: fan-out begins only then
    const pids = { daemon: daemon.pid!, receiver: receiver.child.pid!, postmaster: postmaster ?? -1 };
    const cpuBefore = postmaster ? processCpu.snapshot(pids) : undefined;
    // Progress by the log's identity (an index probe): counting rows every few ms would load the server under test.
    for (;;) {
      const { rows } = await pool.query("select coalesce(max(id), 0)::int as n from webhooks.webhook_logs");
      if (rows[0].n >= events) break;
      await delay(100);
    }
    drainRates.push(events / ((performance.now() - started) / 1000));
    if (cpuBefore) drainCpu.push(processCpu.perDelivery(cpuBefore, processCpu.snapshot(pids), events));
    const { rows: [check] } = await pool.query("select count(*) filter (where success)::int as ok, count(*)::int as n from webhooks.webhook_logs");
    if (check.ok !== events || check.n !== events) throw new Error(`drain: expected ${events} successful attempts, got ${check.ok} of ${check.n}`);
    await stopDaemon(daemon);
    await receiver.collect();
  }

  // 3. Latency at a steady 100 events/s, commit → POST received.
  const p50s: number[] = [];
  const p99s: number[] = [];
  const maxes: number[] = [];
  for (let run = 0; run < (!ONLY || ONLY === "latency" ? RUNS : 0); run++) {
    await settle();
    const daemon = await startDaemon(url, daemonPort);
    await receiver.collect();
    const sentAt = new Map<string, number>();
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    // Two seconds at the same rate first, not counted: a steady state, not a cold start.
    const warmup = LATENCY_RATE * 2;
    const total = LATENCY_RATE * LATENCY_SECONDS + warmup;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / LATENCY_RATE;
      const wait = due - performance.now();
      if (wait > 0) await delay(wait);
      const t0 = performance.timeOrigin + performance.now();
      const { rows } = await writer.query<{ id: string }>("insert into public.contacts (organization_id, first_name) values ($1, 'lat') returning id", [org!.id]);
      if (i >= warmup) sentAt.set(rows[0]!.id, t0);
    }
    await writer.end();
    await delay(2000);
    const received = await receiver.collect();
    const latencies = [...sentAt].map(([id, t0]) => (received.get(id) ?? Number.POSITIVE_INFINITY) - t0);
    p50s.push(percentile(latencies, 50));
    p99s.push(percentile(latencies, 99));
    maxes.push(Math.max(...latencies));
    await stopDaemon(daemon);
  }

  receiver.child.kill("SIGTERM");
  await pool.end();
  await admin.query("drop database if exists pgw_bench with (force)");
  await admin.end();
  await srv.stop();
  await rm(work, { recursive: true, force: true });

  const ratio = median(plainTps) / median(captureTps);
  const fmt = (n: number) => n.toFixed(1);
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`## ${new Date().toISOString().slice(0, 10)} — ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${srv.describe}

| measure | runs | median | target |
|---|---|---|---|
| capture: plain table, 4 writers (tps) | ${plainTps.map(fmt).join(", ")} | ${fmt(median(plainTps))} | |
| capture: contacts with capture, 4 writers (tps) | ${captureTps.map(fmt).join(", ")} | ${fmt(median(captureTps))} | |
| capture overhead (plain / captured) | | **${ratio.toFixed(2)}×** | ≤ 2.0× |
| drain, ${drainEvents} deliveries, all logged (deliveries/s) | ${drainRates.map(fmt).join(", ")} | **${fmt(median(drainRates))}** | ≥ 5,000/s |
${drainCpu.length ? `| drain CPU per delivery: daemon / Postgres / receiver (µs) | ${drainCpu.map((c) => `${c.daemon.toFixed(0)} / ${c.postgres.toFixed(0)} / ${c.receiver.toFixed(0)}`).join(", ")} | ${(["daemon", "postgres", "receiver"] as const).map((side) => median(drainCpu.map((c) => c[side])).toFixed(0)).join(" / ")} | |
` : ""}| latency p50 at ${LATENCY_RATE} events/s (ms) | ${p50s.map(fmt).join(", ")} | ${fmt(median(p50s))} | |
| latency p99 at ${LATENCY_RATE} events/s (ms) | ${p99s.map(fmt).join(", ")} | **${fmt(median(p99s))}** | ≤ 50 ms |
| latency max (ms) | ${maxes.map(fmt).join(", ")} | ${fmt(median(maxes))} | |
`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
