/**
 * `npm run bench`: capture overhead (pgbench), drain throughput, end-to-end latency, one healthy
 * endpoint's latency beside a dead one (dead-endpoint) and throughput to many slow endpoints
 * (slow-endpoints), measured side by side in one run, each figure the median of BENCH_RUNS (3);
 * then the drain beside a million past attempts (history), /metrics at ten million log rows
 * (metrics), both in history.ts, and a steady load under a retention of minutes (soak, soak.ts).
 * BENCH_ONLY=<phase>[,<phase>…] runs those phases. Needs `pgbench` on PATH and a PostgreSQL:
 * BENCH_DATABASE_URL, else the local server at 127.0.0.1:5432, else embedded Postgres (on
 * BENCH_EMBEDDED_PORT, 54391). The bench's database is BENCH_DB_NAME (pgw_bench), dropped and
 * created; its daemons listen on BENCH_DAEMON_PORT (18787): two benches can run side by side.
 * Prints a Markdown report (paste it into BENCHMARKS.md).
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import * as processCpu from "./process-cpu.js";
import {
  createDatabase, cpuCell, dropDatabase, embeddedServer, fmt, insertContacts, median, medianCpu, organizationWithEndpoint, percentile, settle, startDaemon,
  startReceiver, steadyInserts, stopDaemon, timeUntilLogged, type CpuPerDelivery, type DrainSetup, type PhaseReport,
} from "./harness.js";
import { soakPhase } from "./soak.js";
import { checkDiskSpace, historyPhase, HistoryDatabases, metricsPhase, type HistoryContext } from "./history.js";

const DB_NAME = process.env.BENCH_DB_NAME ?? "pgw_bench";
const DAEMON_PORT = Number(process.env.BENCH_DAEMON_PORT ?? 18787);
const EMBEDDED_PORT = Number(process.env.BENCH_EMBEDDED_PORT ?? 54391);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PGBENCH_SECONDS = Number(process.env.BENCH_PGBENCH_SECONDS ?? 10);
/** Without a capture phase (BENCH_ONLY=drain), the backlog each drain run delivers. */
const DRAIN_EVENTS = Number(process.env.BENCH_DRAIN_EVENTS ?? 100_000);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 20);
const PHASES = ["capture", "drain", "latency", "dead-endpoint", "slow-endpoints", "fifo", "history", "metrics", "soak"] as const;
const ONLY = process.env.BENCH_ONLY?.split(",").filter(Boolean); // some of PHASES; unset: all of them
for (const phase of ONLY ?? []) if (!(PHASES as readonly string[]).includes(phase)) throw new Error(`BENCH_ONLY must name some of ${PHASES.join(", ")}`);
/** How many runs a phase makes: BENCH_RUNS, or none when BENCH_ONLY names other phases only. */
const runsOf = (phase: (typeof PHASES)[number]) => (!ONLY || ONLY.includes(phase) ? RUNS : 0);
const LATENCY_RATE = 100;
/** dead-endpoint: the backlog stuck at the endpoint that never answers, and the seconds of the healthy endpoint's writes measured beside it. */
const DEAD_BACKLOG = Number(process.env.BENCH_DEAD_BACKLOG ?? 2000);
const DEAD_SECONDS = Number(process.env.BENCH_DEAD_SECONDS ?? 10);
/** slow-endpoints: endpoints (each subscribed to contact.created) × contacts = deliveries, each answered after the delay. */
const SLOW_ENDPOINTS = Number(process.env.BENCH_SLOW_ENDPOINTS ?? 20);
const SLOW_CONTACTS = Number(process.env.BENCH_SLOW_CONTACTS ?? 3000);
/** The fifo phase: one fifo endpoint, BENCH_FIFO_RESOURCES contacts updated BENCH_FIFO_UPDATES times each. */
const FIFO_RESOURCES = Number(process.env.BENCH_FIFO_RESOURCES ?? 2000);
const FIFO_UPDATES = Number(process.env.BENCH_FIFO_UPDATES ?? 10);
const SLOW_DELAY_MS = Number(process.env.BENCH_SLOW_DELAY_MS ?? 200);

async function server(): Promise<{ url: string; describe: string; stop(): Promise<void> }> {
  if (process.env.BENCH_DATABASE_URL) return { url: process.env.BENCH_DATABASE_URL, describe: "BENCH_DATABASE_URL", stop: async () => undefined };
  const local = "postgres://postgres@127.0.0.1:5432/postgres";
  if (spawnSync("pg_isready", ["-q", "-d", local]).status === 0) return { url: local, describe: "local PostgreSQL at 127.0.0.1:5432", stop: async () => undefined };
  return embeddedServer(EMBEDDED_PORT);
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
  if (runsOf("history") > 0 || runsOf("metrics") > 0) await checkDiskSpace(admin, { history: runsOf("history") > 0, metrics: runsOf("metrics") > 0 });
  const db = await createDatabase(admin, srv.url, DB_NAME);
  const { url, pool } = db;
  // The server's backends are the postmaster's children; found through one of ours (same machine only).
  const { rows: [backend] } = await pool.query<{ pid: number }>("select pg_backend_pid() as pid");
  const postmaster = processCpu.available() ? processCpu.postmasterOf(backend!.pid) : undefined;
  const work = await mkdtemp(path.join(os.tmpdir(), "pgw-bench-work-"));
  const receiver = await startReceiver(path.join(work, "received.txt"));
  const daemonPort = DAEMON_PORT;
  const drainSetup = (receiverPid: number): DrainSetup => ({ daemonPort, receiverPid, postmaster });

  // BENCH_MAX_IN_FLIGHT: the endpoint's max_in_flight (default: the column's default).
  const { organizationId: orgId } = await organizationWithEndpoint(pool, "bench", `http://127.0.0.1:${receiver.port}/hook`, process.env.BENCH_MAX_IN_FLIGHT ?? null);
  // The baseline: the same table (columns, defaults, indexes, foreign key), without capture.
  await pool.query(`create table public.contacts_plain (like public.contacts including all);
                    alter table public.contacts_plain add foreign key (organization_id) references public.organizations (id);`);
  const script = (table: string) => `insert into public.${table} (organization_id, first_name, last_name, email, phone) values ('${orgId}', 'Ada', 'Lovelace', 'ada@example.com', '+15550100');\n`;
  await writeFile(path.join(work, "capture.sql"), script("contacts"));
  await writeFile(path.join(work, "plain.sql"), script("contacts_plain"));

  // 1. Capture overhead (daemon stopped), interleaved runs.
  const plainTps: number[] = [];
  const captureTps: number[] = [];
  for (let run = 0; run < runsOf("capture"); run++) {
    plainTps.push(pgbench(url, path.join(work, "plain.sql")));
    captureTps.push(pgbench(url, path.join(work, "capture.sql")));
  }
  const backlog = Number((await pool.query("select count(*) from webhooks.outbox")).rows[0].count);

  // 2. Drain: the backlog the capture writes left, delivered with every attempt logged. Every run
  // drains a backlog of that size (later runs re-create it with one bulk insert), so the runs
  // compare like with like; without a capture phase, BENCH_DRAIN_EVENTS of them.
  const drainEvents = backlog > 0 && !process.env.BENCH_DRAIN_EVENTS ? backlog : DRAIN_EVENTS;
  const drainRates: number[] = [];
  const drainCpu: CpuPerDelivery[] = [];
  for (let run = 0; run < runsOf("drain"); run++) {
    if (run > 0 || backlog !== drainEvents) {
      await pool.query("truncate webhooks.outbox");
      await insertContacts(pool, orgId, drainEvents);
    }
    await settle(pool);
    const events = Number((await pool.query("select count(*) from webhooks.outbox")).rows[0].count);
    await pool.query("truncate webhooks.webhook_logs restart identity; truncate webhooks.deliveries; truncate webhooks.events;");
    const { rate, cpu } = await timeUntilLogged(db, drainSetup(receiver.child.pid!), events, "drain");
    drainRates.push(rate);
    if (cpu) drainCpu.push(cpu);
    await receiver.collect();
  }

  // 3. Latency at a steady 100 events/s, commit → POST received.
  const p50s: number[] = [];
  const p99s: number[] = [];
  const maxes: number[] = [];
  /**
   * With a daemon running: one organization's contacts committed at a steady LATENCY_RATE for
   * `seconds` (after a 2 s warm-up at the same rate, not counted), each one's latency from just
   * before its INSERT is sent to its receipt by `receiver` (which only that organization's
   * endpoint may use meanwhile); infinite for one not received 2 s after the last write.
   */
  const steadyLatencies = async (organizationId: string, seconds: number): Promise<number[]> => {
    await receiver.collect();
    const sentAt = new Map<string, number>();
    // Two seconds at the same rate first, not counted: a steady state, not a cold start.
    const warmup = LATENCY_RATE * 2;
    await steadyInserts(url, organizationId, LATENCY_RATE, LATENCY_RATE * seconds + warmup, (id, t0, i) => {
      if (i >= warmup) sentAt.set(id, t0);
    });
    await delay(2000);
    const received = await receiver.collect();
    return [...sentAt].map(([id, t0]) => (received.get(id) ?? Number.POSITIVE_INFINITY) - t0);
  };
  for (let run = 0; run < runsOf("latency"); run++) {
    await settle(pool);
    const daemon = await startDaemon(url, daemonPort);
    const latencies = await steadyLatencies(orgId, LATENCY_SECONDS);
    p50s.push(percentile(latencies, 50));
    p99s.push(percentile(latencies, 99));
    maxes.push(Math.max(...latencies));
    await stopDaemon(daemon);
  }

  // Each of the next phases' runs starts from empty delivery tables and deletes its endpoints
  // afterwards (with them go their deliveries and queue rows), so no phase sees another's work.
  const startEmpty = () =>
    pool.query("truncate webhooks.webhook_logs, webhooks.deliveries, webhooks.events, webhooks.outbox, webhooks.delivery_queue restart identity");

  // 4. Dead endpoint: organization A's endpoint accepts connections and never answers, with
  // DEAD_BACKLOG deliveries queued; organization B's endpoint (the fast receiver) meanwhile gets
  // events at a steady LATENCY_RATE. B's latency must not depend on A. Both endpoints and the
  // daemon at their defaults (max_in_flight 256, timeout_seconds 5).
  const deadP50s: number[] = [];
  const deadP99s: number[] = [];
  const deadMaxes: number[] = [];
  if (runsOf("dead-endpoint") > 0) {
    const dead = await startReceiver(path.join(work, "dead.txt"), "never");
    const { rows: [orgA, orgB] } = await pool.query<{ id: string }>("insert into organizations (name) values ('bench dead A'), ('bench dead B') returning id");
    for (let run = 0; run < runsOf("dead-endpoint"); run++) {
      await startEmpty();
      const { rows: [endpointA] } = await pool.query<{ id: string; max_in_flight: number }>(
        `insert into webhooks.webhook_configurations (organization_id, name, url, events)
         values ($1, 'dead', $2, '{contact.created}') returning id, max_in_flight`, [orgA!.id, `http://127.0.0.1:${dead.port}/hook`]);
      await pool.query(`insert into webhooks.webhook_configurations (organization_id, name, url, events)
                        values ($1, 'healthy', $2, '{contact.created}')`, [orgB!.id, `http://127.0.0.1:${receiver.port}/hook`]);
      await insertContacts(pool, orgA!.id, DEAD_BACKLOG);
      await settle(pool);
      const daemon = await startDaemon(url, daemonPort);
      // Stuck: as many of A's deliveries in flight as its endpoint allows, the rest queued behind them.
      const stuck = Math.min(endpointA!.max_in_flight, DEAD_BACKLOG);
      for (let waited = 0; ; waited += 50) {
        const { rows: [q] } = await pool.query<{ n: number }>(
          "select count(*)::int as n from webhooks.delivery_queue where webhook_id = $1 and claimed_by is not null", [endpointA!.id]);
        if (q!.n >= stuck) break;
        if (waited > 60_000) throw new Error(`dead-endpoint: only ${q!.n} of A's deliveries were claimed after 60 s (expected ${stuck})`);
        await delay(50);
      }
      const latencies = await steadyLatencies(orgB!.id, DEAD_SECONDS);
      deadP50s.push(percentile(latencies, 50));
      deadP99s.push(percentile(latencies, 99));
      deadMaxes.push(Math.max(...latencies));
      const { rows: [a] } = await pool.query<{ ok: number; n: number; queued: number; circuit: string }>(
        `select (select count(*) filter (where success) from webhooks.webhook_logs where webhook_id = $1)::int as ok,
                (select count(*) from webhooks.webhook_logs where webhook_id = $1)::int as n,
                (select count(*) from webhooks.delivery_queue where webhook_id = $1)::int as queued,
                (select circuit from webhooks.endpoint_states where webhook_id = $1) as circuit`, [endpointA!.id]);
      if (a!.ok > 0) throw new Error(`dead-endpoint: the endpoint that never answers has ${a!.ok} successful attempts`);
      console.error(`dead-endpoint run ${run + 1}: B p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, ` +
        `max ${Math.max(...latencies).toFixed(1)} ms; A: ${a!.n} attempts logged (all failed), ${a!.queued} still queued, circuit ${a!.circuit}`);
      await stopDaemon(daemon); // waits for A's open attempts to time out
      await pool.query("delete from webhooks.webhook_configurations where organization_id = any($1)", [[orgA!.id, orgB!.id]]);
    }
    dead.child.kill("SIGTERM");
  }

  // 5. Slow endpoints: SLOW_ENDPOINTS endpoints on one receiver process that answers every request
  // after SLOW_DELAY_MS, SLOW_CONTACTS events each, timed like the drain (from healthy until all
  // logged). The attempts in flight bound it (WEBHOOKS_CONCURRENCY 1024 / 0.2 s = 5,120/s at the
  // defaults) unless CPU binds first; the CPU row shows the receiver is not what binds.
  const slowDeliveries = SLOW_ENDPOINTS * SLOW_CONTACTS;
  const slowRates: number[] = [];
  const slowCpu: CpuPerDelivery[] = [];
  if (runsOf("slow-endpoints") > 0) {
    const slow = await startReceiver(path.join(work, "slow.txt"), SLOW_DELAY_MS);
    const { rows: [orgSlow] } = await pool.query<{ id: string }>("insert into organizations (name) values ('bench slow') returning id");
    for (let run = 0; run < runsOf("slow-endpoints"); run++) {
      await startEmpty();
      await pool.query(`insert into webhooks.webhook_configurations (organization_id, name, url, events)
                        select $1, 'slow ' || i, $2 || i, '{contact.created}' from generate_series(1, $3) i`,
                       [orgSlow!.id, `http://127.0.0.1:${slow.port}/hook/`, SLOW_ENDPOINTS]);
      await insertContacts(pool, orgSlow!.id, SLOW_CONTACTS);
      await settle(pool);
      const { rate, cpu } = await timeUntilLogged(db, drainSetup(slow.child.pid!), slowDeliveries, "slow-endpoints");
      slowRates.push(rate);
      if (cpu) slowCpu.push(cpu);
      console.error(`slow-endpoints run ${run + 1}: ${rate.toFixed(1)} deliveries/s` +
        (cpu ? `; CPU per delivery daemon / Postgres / receiver ${cpu.daemon.toFixed(0)} / ${cpu.postgres.toFixed(0)} / ${cpu.receiver.toFixed(0)} µs` +
               ` (the receiver busy ${((cpu.receiver * rate) / 1e4).toFixed(0)} % of a core)` : ""));
      await pool.query("delete from webhooks.webhook_configurations where organization_id = $1", [orgSlow!.id]);
    }
    slow.child.kill("SIGTERM");
  }

  // 5b. A fifo endpoint (README "Ordered delivery"): FIFO_RESOURCES lanes of FIFO_UPDATES updates
  // each, every lane's deliveries one at a time in commit order, timed like the drain.
  const fifoDeliveries = FIFO_RESOURCES * FIFO_UPDATES;
  const fifoRates: number[] = [];
  const fifoCpu: CpuPerDelivery[] = [];
  if (runsOf("fifo") > 0) {
    const { rows: [orgFifo] } = await pool.query<{ id: string }>("insert into organizations (name) values ('bench fifo') returning id");
    for (let run = 0; run < runsOf("fifo"); run++) {
      await startEmpty();
      await insertContacts(pool, orgFifo!.id, FIFO_RESOURCES);
      await pool.query(`insert into webhooks.webhook_configurations (organization_id, name, url, events, ordering)
                        values ($1, 'fifo', $2, '{contact.updated}', 'fifo')`, [orgFifo!.id, `http://127.0.0.1:${receiver.port}/hook`]);
      for (let update = 0; update < FIFO_UPDATES; update++) {
        await pool.query("update contacts set custom_fields = jsonb_build_object('n', $2::int) where organization_id = $1", [orgFifo!.id, update + 1]);
      }
      await settle(pool);
      const { rate, cpu } = await timeUntilLogged(db, drainSetup(receiver.child.pid!), fifoDeliveries, "fifo");
      fifoRates.push(rate);
      if (cpu) fifoCpu.push(cpu);
      console.error(`fifo run ${run + 1}: ${rate.toFixed(1)} deliveries/s`);
      await receiver.collect();
      await pool.query("delete from webhooks.webhook_configurations where organization_id = $1", [orgFifo!.id]);
      await pool.query("delete from contacts where organization_id = $1", [orgFifo!.id]);
    }
  }

  // 6. History, 7. metrics: on two databases of their own (history.ts).
  const historyContext: HistoryContext = { admin, serverUrl: srv.url, dbName: DB_NAME, setup: drainSetup(receiver.child.pid!),
                                           receiver, runs: runsOf("history"), drainEvents: DRAIN_EVENTS };
  const historyDatabases = new HistoryDatabases(historyContext);
  const reports: PhaseReport[] = [];
  if (runsOf("history") > 0) reports.push(await historyPhase(historyContext, historyDatabases));
  if (runsOf("metrics") > 0) reports.push(await metricsPhase(historyContext, historyDatabases));
  await historyDatabases.drop();
  // 8. Soak: once (minutes long), on a database of its own (soak.ts).
  if (runsOf("soak") > 0) reports.push(await soakPhase({ admin, serverUrl: srv.url, describe: srv.describe, dbName: DB_NAME, daemonPort, receiver }));

  receiver.child.kill("SIGTERM");
  await dropDatabase(admin, db);
  await admin.end();
  await srv.stop();
  await rm(work, { recursive: true, force: true });

  const ratio = median(plainTps) / median(captureTps);
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(`## ${new Date().toISOString().slice(0, 10)} — ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${srv.describe}

| measure | runs | median | target |
|---|---|---|---|
| capture: plain table, 4 writers (tps) | ${plainTps.map(fmt).join(", ")} | ${fmt(median(plainTps))} | |
| capture: contacts with capture, 4 writers (tps) | ${captureTps.map(fmt).join(", ")} | ${fmt(median(captureTps))} | |
| capture overhead (plain / captured) | | **${ratio.toFixed(2)}×** | ≤ 2.0× |
| drain, ${drainEvents} deliveries, all logged (deliveries/s) | ${drainRates.map(fmt).join(", ")} | **${fmt(median(drainRates))}** | ≥ 5,000/s |
${drainCpu.length ? `| drain CPU per delivery: daemon / Postgres / receiver (µs) | ${drainCpu.map(cpuCell).join(", ")} | ${medianCpu(drainCpu)} | |
` : ""}| latency p50 at ${LATENCY_RATE} events/s (ms) | ${p50s.map(fmt).join(", ")} | ${fmt(median(p50s))} | |
| latency p99 at ${LATENCY_RATE} events/s (ms) | ${p99s.map(fmt).join(", ")} | **${fmt(median(p99s))}** | ≤ 50 ms |
| latency max (ms) | ${maxes.map(fmt).join(", ")} | ${fmt(median(maxes))} | |
| dead endpoint: B's latency p50 at ${LATENCY_RATE} events/s while A's ${DEAD_BACKLOG} are stuck (ms) | ${deadP50s.map(fmt).join(", ")} | ${fmt(median(deadP50s))} | |
| dead endpoint: B's latency p99 at ${LATENCY_RATE} events/s while A's ${DEAD_BACKLOG} are stuck (ms) | ${deadP99s.map(fmt).join(", ")} | **${fmt(median(deadP99s))}** | < 1,000 ms |
| dead endpoint: B's latency max (ms) | ${deadMaxes.map(fmt).join(", ")} | ${fmt(median(deadMaxes))} | |
| slow endpoints: ${SLOW_ENDPOINTS} × ${SLOW_DELAY_MS} ms, ${slowDeliveries} deliveries, all logged (deliveries/s) | ${slowRates.map(fmt).join(", ")} | **${fmt(median(slowRates))}** | ≥ 2,500/s |
${slowCpu.length ? `| slow endpoints CPU per delivery: daemon / Postgres / receiver (µs) | ${slowCpu.map(cpuCell).join(", ")} | ${medianCpu(slowCpu)} | |
` : ""}| fifo endpoint: ${FIFO_RESOURCES} lanes × ${FIFO_UPDATES} updates, ${fifoDeliveries} deliveries, all logged (deliveries/s) | ${fifoRates.map(fmt).join(", ")} | **${fmt(median(fifoRates))}** | thousands/s |
${fifoCpu.length ? `| fifo CPU per delivery: daemon / Postgres / receiver (µs) | ${fifoCpu.map(cpuCell).join(", ")} | ${medianCpu(fifoCpu)} | |
` : ""}${reports.flatMap((r) => r.rows).map((row) => row + "\n").join("")}${reports.flatMap((r) => r.sections).map((section) => "\n" + section + "\n").join("")}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
