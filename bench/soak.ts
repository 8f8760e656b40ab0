/**
 * soak (run.ts runs it): a steady load for BENCH_SOAK_MINUTES (8) at BENCH_SOAK_RATE events/s
 * (300) under a retention of minutes, on a database of its own (<BENCH_DB_NAME>_soak) whose
 * partitions are a minute wide, on an embedded PostgreSQL of its own (BENCH_SOAK_SERVER=embedded,
 * the default, on BENCH_SOAK_EMBEDDED_PORT, 54392: autovacuum on, and the 1-minute partitions'
 * hundreds of locks per statement fill no one else's lock table) or on the bench's server
 * (BENCH_SOAK_SERVER=main). The daemon prunes as it does in production (every width, with
 * WEBHOOKS_RETENTION_DAYS=1: it creates partitions and drops none of these); the bench itself
 * calls webhooks.prune with a retention of RETENTION_MINUTES every TICK_MS. Every tick it samples
 * the history tables' sizes, the partitions, the queue, the dead tuples and what was received: once
 * the retention window has filled, sizes stay flat and dead tuples bounded.
 *
 * With autovacuum off on the server (as on the machine's PostgreSQL here, with
 * BENCH_SOAK_SERVER=main), the bench emulates it every tick: it vacuums (and analyzes) each table
 * over autovacuum's default thresholds.
 */
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import {
  count, createDatabase, dropDatabase, embeddedServer, fmt, organizationWithEndpoint, percentile, startDaemon, steadyInserts, stopDaemon,
  type PhaseReport, type Receiver,
} from "./harness.js";

const SOAK_RATE = Number(process.env.BENCH_SOAK_RATE ?? 300);
const SOAK_MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 8);
const SOAK_SERVER = process.env.BENCH_SOAK_SERVER ?? "embedded";
if (!["embedded", "main"].includes(SOAK_SERVER)) throw new Error("BENCH_SOAK_SERVER must be embedded or main");
const SOAK_EMBEDDED_PORT = Number(process.env.BENCH_SOAK_EMBEDDED_PORT ?? 54392);
/** The bench's retention, in minutes of 1-minute partitions. */
const RETENTION_MINUTES = 3;
const TICK_MS = 30_000;
/** The retention window is full once a partition has expired past it: the sizes from here on are compared with this sample's. */
const REFERENCE_MINUTE = RETENTION_MINUTES + 1;
/** Flat: the last sample within ±20 % of the reference. Bounded: no more than 1.5 × what was seen up to the reference. */
const FLAT = 0.2;
const BOUNDED = 1.5;
const HISTORY_TABLES = ["webhook_logs", "events", "deliveries", "intake_activity"] as const;
const MB = 2 ** 20;

export interface SoakContext {
  /** The bench's server. */
  admin: pg.Client;
  serverUrl: string;
  describe: string;
  dbName: string;
  daemonPort: number;
  receiver: Receiver;
}

/** The server the soak runs on: an embedded one started here, or the bench's. */
async function soakServer(ctx: SoakContext): Promise<{ admin: pg.Client; url: string; describe: string; stop(): Promise<void> }> {
  if (SOAK_SERVER === "main") return { admin: ctx.admin, url: ctx.serverUrl, describe: ctx.describe, stop: async () => undefined };
  const server = await embeddedServer(SOAK_EMBEDDED_PORT);
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  return { admin, url: server.url, describe: `an ${server.describe} of its own`, stop: async () => { await admin.end(); await server.stop(); } };
}

interface Sample {
  minute: number;
  /** Bytes of each history table, every partition with its indexes and TOAST. */
  bytes: Record<string, number>;
  partitions: number;
  queueBytes: number;
  dead: { queue: number; history: number; hot: number };
  written: number;
  received: number;
  /** Of the events received since the previous sample, commit → received (ms). */
  p99: number;
  /** Lines the daemon logged (warnings and errors at LOG_LEVEL=warn) since the previous sample. */
  logged: number;
}

/** The daemon's log lines counted by what they say: message and error, without the details that vary (relations, holders). */
function logTally() {
  const counts = new Map<string, number>();
  let lines = 0;
  return {
    counts,
    add(line: string) {
      let key = line.slice(0, 160);
      try {
        const entry = JSON.parse(line) as { level?: string; message?: string; error?: { message?: string } };
        // Which partition and which session vary; the table and the lock do not.
        key = `${entry.level ?? "?"}: ${(entry.message ?? "").replace(/, held by .*/, "").replace(/_p\d{8}_\d{4}\b/, "_p…")}` +
              (entry.error?.message ? ` (${entry.error.message})` : "");
      } catch {
        // not JSON: counted by its beginning
      }
      counts.set(key, (counts.get(key) ?? 0) + 1);
      lines++;
    },
    /** Lines since the last call. */
    take() {
      const n = lines;
      lines = 0;
      return n;
    },
  };
}

/** The sizes, partitions and dead tuples of one sample (pg_stat_user_tables, as autovacuum sees them). */
async function measure(client: pg.Client) {
  const { rows: tables } = await client.query<{ table_name: string; partitions: number; bytes: number; dead: number }>(`
    select h.table_name, count(*)::int as partitions,
           coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::float8 as bytes,
           coalesce(sum(s.n_dead_tup), 0)::int as dead
      from webhooks._partitioned h
      join pg_inherits i on i.inhparent = format('webhooks.%I', h.table_name)::regclass
      left join pg_stat_user_tables s on s.relid = i.inhrelid
     group by h.table_name`);
  const { rows: [queue] } = await client.query<{ bytes: number; dead: number; hot: number }>(`
    select pg_total_relation_size('webhooks.delivery_queue')::float8 as bytes,
           (select n_dead_tup from pg_stat_user_tables where relid = 'webhooks.delivery_queue'::regclass)::int as dead,
           (select coalesce(sum(n_dead_tup), 0) from pg_stat_user_tables
             where relid in ('webhooks.outbox'::regclass, 'webhooks.endpoint_states'::regclass, 'webhooks.endpoint_claims'::regclass))::int as hot`);
  return {
    bytes: Object.fromEntries(tables.map((t) => [t.table_name, t.bytes])),
    partitions: tables.reduce((sum, t) => sum + t.partitions, 0),
    queueBytes: queue!.bytes,
    dead: { queue: queue!.dead, history: tables.reduce((sum, t) => sum + t.dead, 0), hot: queue!.hot },
  };
}

/**
 * What autovacuum would do now at its default settings, done at once: VACUUM (ANALYZE) each table
 * whose dead tuples exceed 50 + 20 % of its tuples or whose inserts since the last vacuum exceed
 * 1000 + 20 %; ANALYZE each whose changes since the last analyze exceed 50 + 10 %. Returns the
 * tables vacuumed.
 */
async function emulateAutovacuum(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string; vacuum: boolean }>(`
    select format('%I.%I', s.schemaname, s.relname) as name,
           s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0) or s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0) as vacuum
      from pg_stat_user_tables s join pg_class c on c.oid = s.relid
     where c.relkind = 'r'
       and (s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0) or s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0)
            or s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0))`);
  const vacuumed: string[] = [];
  for (const table of rows) {
    try {
      await client.query(`${table.vacuum ? "vacuum (analyze)" : "analyze"} ${table.name}`);
      if (table.vacuum) vacuumed.push(table.name);
    } catch (error) {
      // A partition dropped meanwhile (by a prune) is not an error.
      if ((error as { code?: string }).code !== "42P01") throw error;
    }
  }
  return vacuumed;
}

const mb = (bytes: number) => (bytes / MB).toFixed(1);
const change = (from: number, to: number) => `${to >= from ? "+" : ""}${((to / from - 1) * 100).toFixed(0)} %`;

/** The steady load, sampled every TICK_MS; the report's rows, the samples' table and the verdict. */
export async function soakPhase(ctx: SoakContext): Promise<PhaseReport> {
  const server = await soakServer(ctx);
  try {
    return await soak(ctx, server);
  } finally {
    await server.stop();
  }
}

async function soak(ctx: SoakContext, server: { admin: pg.Client; url: string; describe: string }): Promise<PhaseReport> {
  const db = await createDatabase(server.admin, server.url, `${ctx.dbName}_soak`);
  // The width applies to partitions created after it is set: the (empty) daily ones migrate made
  // go first, and minute ones take their place.
  await db.pool.query("update webhooks._partitioning set width = interval '1 minute'");
  await db.pool.query(`do $$
    declare p record;
    begin
      for p in select h.table_name, x.partition_name from webhooks._partitioned h, webhooks._partitions(h.table_name) x where not x.is_default loop
        execute format('alter table webhooks.%I detach partition webhooks.%I', p.table_name, p.partition_name);
        execute format('drop table webhooks.%I', p.partition_name);
      end loop;
    end $$`);
  await db.pool.query("call webhooks.create_partitions()");
  const { organizationId } = await organizationWithEndpoint(db.pool, "bench soak", `http://127.0.0.1:${ctx.receiver.port}/hook`);
  const setting = async (client: pg.Client | typeof db.pool, name: string) =>
    (await client.query<{ setting: string }>("select current_setting($1) as setting", [name])).rows[0]!.setting;
  const autovacuumOn = (await setting(db.pool, "autovacuum")) === "on";
  const serverNote = `The soak ran on ${server.describe} (PostgreSQL ${await setting(db.pool, "server_version")}, ` +
    `max_connections ${await setting(db.pool, "max_connections")}, max_locks_per_transaction ${await setting(db.pool, "max_locks_per_transaction")}, ` +
    `autovacuum ${autovacuumOn ? "on" : "off"}); the bench's other phases on the ${ctx.describe} (autovacuum ${await setting(ctx.admin, "autovacuum")}).`;
  const vacuumNote = autovacuumOn
    ? `${serverNote} Autovacuum vacuums the tables; the bench does not.`
    : `${serverNote} As autovacuum is off at this server (\`show autovacuum\`), the bench emulates it every ${TICK_MS / 1000} s, vacuuming (and analyzing) each table ` +
      "over autovacuum's default thresholds (dead tuples > 50 + 20 % of its rows, or inserts since its last vacuum > 1000 + 20 %; " +
      "analyze: changes > 50 + 10 %), delivery_queue and the endpoint tables as much as the partitions.";
  console.error(`soak: ${vacuumNote}`);

  const maintenance = new pg.Client({ connectionString: db.url });
  await maintenance.connect();
  let dropped = 0;
  maintenance.on("notice", (notice) => {
    if (notice.message?.startsWith("dropped ")) dropped++;
  });
  await ctx.receiver.collect();
  const log = logTally();
  const daemon = await startDaemon(db.url, ctx.daemonPort, { WEBHOOKS_RETENTION_DAYS: "1" }, (line) => log.add(line));
  const sentAt = new Map<string, number>();
  const receivedAt = new Map<string, number>();
  let writeError: unknown;
  let writing = true;
  let lastSent = 0;
  const writes = steadyInserts(db.url, organizationId, SOAK_RATE, Math.round(SOAK_RATE * SOAK_MINUTES * 60), (id, t0) => sentAt.set(id, (lastSent = t0)))
    .catch((error: unknown) => (writeError = error))
    .finally(() => (writing = false));
  const started = performance.now();
  const samples: Sample[] = [];
  const vacuums = new Map<string, number>();
  let pruneFailures = 0;
  // Until the minutes are up and every event is written (a writer that fell behind catches up meanwhile).
  for (let tick = 0; tick * TICK_MS <= SOAK_MINUTES * 60_000 || writing; tick++) {
    const wait = started + tick * TICK_MS - performance.now();
    if (wait > 0) await delay(wait);
    if (writeError) throw writeError;
    if (tick > 0) {
      await maintenance.query(`call webhooks.prune(interval '${RETENTION_MINUTES} minutes')`).catch((error: unknown) => {
        pruneFailures++;
        console.error(`soak: webhooks.prune failed (tried again at the next tick): ${(error as Error).message}`);
      });
    }
    const latencies: number[] = [];
    for (const [id, at] of await ctx.receiver.collect()) {
      if (receivedAt.has(id)) continue;
      receivedAt.set(id, at);
      const sent = sentAt.get(id);
      if (sent !== undefined) latencies.push(at - sent);
    }
    const sample = { minute: (performance.now() - started) / 60_000, ...(await measure(maintenance)),
                     written: sentAt.size, received: receivedAt.size, p99: percentile(latencies, 99), logged: log.take() };
    samples.push(sample);
    console.error(`soak ${sample.minute.toFixed(1)} min: webhook_logs ${mb(sample.bytes.webhook_logs ?? 0)} MB, events ${mb(sample.bytes.events ?? 0)} MB, ` +
      `deliveries ${mb(sample.bytes.deliveries ?? 0)} MB, ${sample.partitions} partitions, delivery_queue ${(sample.queueBytes / 1024).toFixed(0)} kB, ` +
      `dead tuples queue / history / outbox+endpoints ${sample.dead.queue} / ${sample.dead.history} / ${sample.dead.hot}, ` +
      `${count(sample.written)} written, ${count(sample.received)} received, p99 ${fmt(sample.p99)} ms, ${sample.logged} daemon log lines`);
    if (!autovacuumOn) for (const table of await emulateAutovacuum(maintenance)) vacuums.set(table, (vacuums.get(table) ?? 0) + 1);
  }
  await writes;
  if (writeError) throw writeError;
  const firstSent = sentAt.values().next().value ?? lastSent; // the Map keeps the order of writing
  const writtenPerSecond = sentAt.size / ((lastSent - firstSent) / 1000);
  // The last events: every one written must arrive.
  for (let waited = 0; receivedAt.size < sentAt.size && waited < 30_000; waited += 500) {
    await delay(500);
    for (const [id, at] of await ctx.receiver.collect()) receivedAt.set(id, at);
  }
  const missing = [...sentAt.keys()].filter((id) => !receivedAt.has(id)).length;
  await stopDaemon(daemon);
  await maintenance.end();
  await dropDatabase(server.admin, db);
  return report(samples, { written: sentAt.size, writtenPerSecond, received: sentAt.size - missing, dropped, pruneFailures, vacuums, vacuumNote, logged: log.counts });
}

function report(samples: Sample[], totals: { written: number; writtenPerSecond: number; received: number; dropped: number; pruneFailures: number;
                                             vacuums: Map<string, number>; vacuumNote: string; logged: Map<string, number> }): PhaseReport {
  const last = samples[samples.length - 1]!;
  const reference = samples.find((s) => s.minute >= REFERENCE_MINUTE - 0.05);
  const judged = reference && reference !== last ? reference : undefined;
  const upToReference = judged ? samples.filter((s) => s.minute <= judged.minute) : samples;
  const after = judged ? samples.filter((s) => s.minute > judged.minute) : [];
  const historyBytes = (s: Sample) => HISTORY_TABLES.reduce((sum, t) => sum + (s.bytes[t] ?? 0), 0);
  const maxOf = (list: Sample[], f: (s: Sample) => number) => Math.max(0, ...list.map(f));
  // Flat: each growing history table's size; bounded: the queue's size and dead tuples (at least 1,000, a tick's noise).
  const flat = judged ? (["webhook_logs", "events", "deliveries"] as const).every((t) => Math.abs((last.bytes[t] ?? 0) / (judged.bytes[t] ?? 1) - 1) <= FLAT) : undefined;
  const bounded = (f: (s: Sample) => number, floor: number) => maxOf(after, f) <= BOUNDED * Math.max(floor, maxOf(upToReference, f));
  const deadBounded = bounded((s) => s.dead.queue, 1000) && bounded((s) => s.dead.history, 1000) && bounded((s) => s.dead.hot, 1000);
  const queueBounded = bounded((s) => s.queueBytes, 1 * MB);
  const allReceived = totals.received === totals.written;
  const verdict = !judged
    ? `too short to judge flatness (the last sample must come after minute ${REFERENCE_MINUTE}); ${allReceived ? "every" : "NOT every"} written event received`
    : [flat ? "sizes flat" : "sizes NOT flat", queueBounded && deadBounded ? "queue and dead tuples bounded" : "queue or dead tuples NOT bounded",
       allReceived ? "every written event received" : "NOT every written event received"].join(", ");
  const ok = Boolean(judged && flat && queueBounded && deadBounded && allReceived);
  const from = judged ?? samples[0]!;
  const title = `soak: ${SOAK_RATE} events/s for ${SOAK_MINUTES} min, retention ${RETENTION_MINUTES} min of 1-minute partitions`;
  const queueVacuums = totals.vacuums.get("webhooks.delivery_queue") ?? 0;
  const partitionVacuums = [...totals.vacuums].filter(([t]) => /_p\d{8}_\d{4}$/.test(t)).reduce((sum, [, n]) => sum + n, 0);
  const rows = [
    `| ${title}: history tables' total size, minute ${from.minute.toFixed(1)} → ${last.minute.toFixed(1)} (MB) | | ${mb(historyBytes(from))} → ${mb(historyBytes(last))} (${change(historyBytes(from), historyBytes(last))}) | flat (±${FLAT * 100} %) |`,
    `| soak: delivery_queue size, minute ${from.minute.toFixed(1)} → ${last.minute.toFixed(1)} (kB) | | ${(from.queueBytes / 1024).toFixed(0)} → ${(last.queueBytes / 1024).toFixed(0)} | bounded |`,
    `| soak: most dead tuples in a sample, delivery_queue / history partitions / outbox + endpoint tables | | ${maxOf(samples, (s) => s.dead.queue)} / ${maxOf(samples, (s) => s.dead.history)} / ${maxOf(samples, (s) => s.dead.hot)} | bounded |`,
    `| soak: events written per second, asked / done | | ${SOAK_RATE} / ${fmt(totals.writtenPerSecond)} | |`,
    `| soak: events received / written | | ${count(totals.received)} / ${count(totals.written)} | all |`,
    `| soak: latency p99 of each ${TICK_MS / 1000} s, the worst (ms) | | ${fmt(maxOf(samples.slice(1), (s) => (Number.isNaN(s.p99) ? 0 : s.p99)))} | |`,
    `| soak: lines the daemon logged (LOG_LEVEL=warn) | | ${count([...totals.logged.values()].reduce((a, b) => a + b, 0))} | |`,
    `| soak: verdict | | **${ok ? "pass" : "FAIL"}** | flat, bounded, all received |`,
  ];
  const table = [
    "| minute | webhook_logs (MB) | events (MB) | deliveries (MB) | intake_activity (MB) | partitions | delivery_queue (kB) | dead: queue | dead: history | dead: outbox + endpoints | written | received | p99 (ms) | daemon log lines |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ...samples.map((s) => `| ${s.minute.toFixed(1)} | ${HISTORY_TABLES.map((t) => mb(s.bytes[t] ?? 0)).join(" | ")} | ${s.partitions} | ${(s.queueBytes / 1024).toFixed(0)} | ` +
      `${s.dead.queue} | ${s.dead.history} | ${s.dead.hot} | ${count(s.written)} | ${count(s.received)} | ${Number.isNaN(s.p99) ? "–" : fmt(s.p99)} | ${s.logged} |`),
  ].join("\n");
  const section = `### ${title}

Each sample comes after the bench's \`call webhooks.prune(interval '${RETENTION_MINUTES} minutes')\` of that tick ` +
    `(${totals.dropped} partitions dropped in all, ${totals.pruneFailures} prunes failed) and before its vacuums. ` +
    `The daemon runs with WEBHOOKS_RETENTION_DAYS=1 (its own prune, every minute, creates partitions up to two hours ahead and drops none). ` +
    `Sizes: pg_total_relation_size summed over every partition (the empty ones ahead included); partitions: of the four history tables; ` +
    `dead: n_dead_tup. ${totals.vacuumNote}${totals.vacuums.size ? ` It vacuumed delivery_queue ${queueVacuums} times, history partitions ${partitionVacuums} times.` : ""}

${table}
${totals.logged.size ? `\nThe daemon logged: ${[...totals.logged].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${count(n)} × ${what}`).join("; ")}.\n` : ""}
**Verdict: ${ok ? "pass" : "FAIL"}** — ${verdict}` + (judged ? `: webhook_logs ${mb(judged.bytes.webhook_logs ?? 0)} → ${mb(last.bytes.webhook_logs ?? 0)} MB ` +
    `(${change(judged.bytes.webhook_logs ?? 1, last.bytes.webhook_logs ?? 0)}), events ${change(judged.bytes.events ?? 1, last.bytes.events ?? 0)}, ` +
    `deliveries ${change(judged.bytes.deliveries ?? 1, last.bytes.deliveries ?? 0)} from minute ${judged.minute.toFixed(1)} to ${last.minute.toFixed(1)}; ` +
    `${count(totals.received)} of ${count(totals.written)} events received.` : ".");
  return { rows, sections: [section] };
}
