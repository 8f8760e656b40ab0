/**
 * The phases about a database with history (run.ts runs them):
 * - history: the drain rate with BENCH_HISTORY_ATTEMPTS (1,000,000) past attempts, their events
 *   and deliveries in the database, beside a fresh database (target: within 10 %), and the
 *   plans and times of two reads of one organization's history;
 * - metrics: GET /metrics with BENCH_METRICS_LOG_ROWS (10,000,000) rows in webhook_logs, beside
 *   one with ten (target: < 50 ms), the two daemons on BENCH_DAEMON_PORT and the port after it.
 * Both use the same two databases, created and set up alike: <BENCH_DB_NAME>_fresh and
 * <BENCH_DB_NAME>_history.
 */
import type { ChildProcess } from "node:child_process";
import { statfs } from "node:fs/promises";
import { existsSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import type pg from "pg";
import type { Pool } from "../src/db/pool.js";
import {
  count, cpuCell, fmt, createDatabase, dropDatabase, insertContacts, median, medianCpu, organizationWithEndpoint, percentile, settle,
  startDaemon, stopDaemon, timeUntilLogged, type BenchDatabase, type CpuPerDelivery, type DrainSetup, type PhaseReport, type Receiver,
} from "./harness.js";

export const HISTORY_ATTEMPTS = Number(process.env.BENCH_HISTORY_ATTEMPTS ?? 1_000_000);
export const METRICS_LOG_ROWS = Number(process.env.BENCH_METRICS_LOG_ROWS ?? 10_000_000);
/** The history belongs to this many organizations (one endpoint each); the first is the one measured. */
const ORGANIZATIONS = 20;
/** History spreads evenly over this many days up to now: inside the default 30-day retention, which the daemon's prune applies. */
const HISTORY_DAYS = 29;
/** Rows per INSERT statement of the history (three tables each) and of the cheap log rows. */
const HISTORY_CHUNK = 100_000;
const LOG_CHUNK = 1_000_000;
const QUERY_RUNS = 20;
const METRICS_WARMUPS = 3;
const METRICS_REQUESTS = 50;
const GB = 2 ** 30;

export interface HistoryContext {
  admin: pg.Client;
  serverUrl: string;
  dbName: string;
  setup: DrainSetup;
  receiver: Receiver;
  runs: number;
  drainEvents: number;
}

interface Endpoint {
  organizationId: string;
  webhookId: string;
  url: string;
}

/** A database with ORGANIZATIONS organizations, each with an endpoint at the receiver; endpoints[0] is the one measured. */
interface SetUpDatabase extends BenchDatabase {
  label: string;
  endpoints: Endpoint[];
}

/** The two databases, created on first use (by whichever of the phases runs first) and dropped at the end. */
export class HistoryDatabases {
  private opened: Promise<{ fresh: SetUpDatabase; history: SetUpDatabase }> | undefined;

  constructor(private readonly ctx: HistoryContext) {}

  get() {
    this.opened ??= (async () => ({ fresh: await this.open("fresh"), history: await this.open("history") }))();
    return this.opened;
  }

  async drop(): Promise<void> {
    if (!this.opened) return;
    const { fresh, history } = await this.opened;
    await dropDatabase(this.ctx.admin, fresh);
    await dropDatabase(this.ctx.admin, history);
  }

  private async open(label: string): Promise<SetUpDatabase> {
    const db = await createDatabase(this.ctx.admin, this.ctx.serverUrl, `${this.ctx.dbName}_${label}`);
    const endpoints: Endpoint[] = [];
    for (let i = 0; i < ORGANIZATIONS; i++) {
      // Only the first organization gets events during the bench; the others' endpoints just exist.
      const url = `http://127.0.0.1:${this.ctx.receiver.port}/hook${i === 0 ? "" : `/${i}`}`;
      endpoints.push({ ...(await organizationWithEndpoint(db.pool, `bench history ${i + 1}`, url)), url });
    }
    return { ...db, label, endpoints };
  }
}

/**
 * Fails before anything is written when the Postgres data directory's file system has less free
 * space than the phases that run need (15 GB for the metrics phase's 10 M log rows beside the
 * history, scaled to the sizes asked for). Skipped with a warning when the data directory is not
 * on this machine.
 */
export async function checkDiskSpace(admin: pg.Client, phases: { history: boolean; metrics: boolean }): Promise<void> {
  const needed = Math.max(1 * GB, phases.metrics ? (15 * GB * METRICS_LOG_ROWS) / 10_000_000 : 0,
                          phases.history || phases.metrics ? (5 * GB * HISTORY_ATTEMPTS) / 1_000_000 : 0);
  const dir = await admin.query<{ dir: string }>("select current_setting('data_directory') as dir").then((r) => r.rows[0]!.dir, () => undefined);
  if (!dir || !existsSync(dir)) {
    console.error(`disk space: the server's data directory (${dir ?? "not readable"}) is not on this machine; not checked (${(needed / GB).toFixed(1)} GB needed)`);
    return;
  }
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  console.error(`disk space: ${(free / GB).toFixed(1)} GB free on the file system of ${dir}, ${(needed / GB).toFixed(1)} GB needed`);
  if (free < needed) {
    throw new Error(`not enough disk space for the history/metrics phases: ${(free / GB).toFixed(1)} GB free on the file system of ${dir}, ` +
                    `${(needed / GB).toFixed(1)} GB needed (BENCH_HISTORY_ATTEMPTS ${HISTORY_ATTEMPTS}, BENCH_METRICS_LOG_ROWS ${METRICS_LOG_ROWS})`);
  }
}

/** The endpoints as the fill statements take them: arrays indexed by row number modulo their count. */
const endpointArrays = (endpoints: Endpoint[]) =>
  [endpoints.map((e) => e.organizationId), endpoints.map((e) => e.webhookId), endpoints.map((e) => e.url)];

/**
 * Rows lo..hi of `total` past finished deliveries ($3..$5), spread evenly over the HISTORY_DAYS
 * before $6 in time order, round the endpoints ($1 organizations, $2 webhooks, $7 urls): each an
 * event with the body the capture writes, its delivery (succeeded at its one attempt) and that
 * attempt's log row with the headers and body a real one has (about 1.3 kB).
 */
const HISTORY_SQL = `
with s as materialized (
  select $6::timestamptz - make_interval(days => ${HISTORY_DAYS}) * (1 - i::float8 / $5) as at,
         ($1::uuid[])[1 + i % cardinality($1::uuid[])] as organization_id,
         ($2::uuid[])[1 + i % cardinality($1::uuid[])] as webhook_id,
         ($7::text[])[1 + i % cardinality($1::uuid[])] as url,
         'evt_' || replace(gen_random_uuid()::text, '-', '') as event_id,
         gen_random_uuid() as delivery_id,
         gen_random_uuid() as contact_id,
         20 + (i * 7919) % 180 as duration_ms
    from generate_series($3::bigint, $4::bigint) i
), b as materialized (
  select s.*, at + make_interval(secs => duration_ms / 1000.0) as done_at,
         format('{"id":"%s","event":"contact.created","timestamp":"%s","organization_id":"%s","data":{"id": "%s", "city": null, '
                '"email": "ada@example.com", "phone": "+15550100", "source": null, "address": null, "last_name": "Lovelace", '
                '"created_at": "%s", "first_name": "Ada", "updated_at": "%s", "assigned_to": null, "business_name": null, '
                '"custom_fields": {}, "organization_id": "%s"}}',
                event_id, to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), organization_id, contact_id,
                to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), organization_id) as body
    from s
), e as (
  insert into webhooks.events (id, organization_id, event_type, body, occurred_at, dispatched_at)
  select event_id, organization_id, 'contact.created', body, at, at from b
), d as (
  insert into webhooks.deliveries (id, organization_id, event_id, webhook_id, state, attempts, next_attempt_at, last_status,
                                   created_at, updated_at, completed_at)
  select delivery_id, organization_id, event_id, webhook_id, 'succeeded', 1, null, 200, at, done_at, done_at from b
)
insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers,
                                   request_body, response_status, response_headers, response_body, duration_ms, success, created_at)
select organization_id, webhook_id, event_id, delivery_id, 'contact.created', 1, url,
       jsonb_build_object('user-agent', 'pg-webhooks/0.1.0', 'webhook-id', event_id, 'content-type', 'application/json',
                          'x-webhook-event', 'contact.created',
                          'webhook-signature', 'v1,' || encode(decode(md5(event_id) || md5(delivery_id::text), 'hex'), 'base64'),
                          'webhook-timestamp', extract(epoch from at)::bigint::text, 'x-webhook-delivery-id', delivery_id),
       body, 200,
       jsonb_build_object('date', to_char(done_at at time zone 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS "GMT"'), 'connection', 'keep-alive',
                          'keep-alive', 'timeout=5', 'content-type', 'text/plain', 'transfer-encoding', 'chunked'),
       'ok', duration_ms, true, done_at
  from b`;

/**
 * Log rows lo..hi of `total` ($3..$5), cheap but valid (no body, empty headers), spread over the
 * HISTORY_DAYS before $6 in time order, round the endpoints ($1, $2); delivery ids ascend under
 * the prefix $7 (unique, and cheap to index).
 */
const CHEAP_LOGS_SQL = `
insert into webhooks.webhook_logs (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers,
                                   response_status, duration_ms, success, created_at)
select ($1::uuid[])[1 + i % cardinality($1::uuid[])], ($2::uuid[])[1 + i % cardinality($1::uuid[])],
       'evt_' || $7::text || i, ($7::text || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'contact.created', 1,
       'http://127.0.0.1/hook', '{}', 200, 50, true, $6::timestamptz - make_interval(days => ${HISTORY_DAYS}) * (1 - i::float8 / $5)
  from generate_series($3::bigint, $4::bigint) i`;

/**
 * Runs `sql` over rows 1..total in chunks (parameters: the endpoints' organizations and webhooks,
 * lo, hi, total, the end of the history, then `more`), into partitions made first for the whole
 * span; progress on stderr.
 */
async function fill(db: SetUpDatabase, what: string, sql: string, total: number, chunk: number, more: unknown[]): Promise<void> {
  const { pool } = db;
  await pool.query("call webhooks.create_partitions(now() - make_interval(days => $1))", [HISTORY_DAYS + 1]);
  const end = (await pool.query<{ end: Date }>("select now() as end")).rows[0]!.end;
  const [organizations, webhooks] = endpointArrays(db.endpoints);
  const started = performance.now();
  for (let lo = 1; lo <= total; lo += chunk) {
    const hi = Math.min(total, lo + chunk - 1);
    await pool.query(sql, [organizations, webhooks, lo, hi, total, end, ...more]);
    console.error(`${db.label}: ${count(hi)} / ${count(total)} ${what} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  }
}

const fillHistory = (db: SetUpDatabase, total: number) =>
  fill(db, "past attempts with their events and deliveries", HISTORY_SQL, total, HISTORY_CHUNK, [endpointArrays(db.endpoints)[2]]);

const fillCheapLogs = (db: SetUpDatabase, total: number) =>
  fill(db, "cheap log rows", CHEAP_LOGS_SQL, total, LOG_CHUNK, [Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0")]);

/**
 * One drain of `events` in `db` (its first organization's contacts), timed like the drain phase;
 * what it wrote (events, deliveries, attempts) is deleted afterwards, so every run starts from the
 * same history.
 */
async function drainOnce(ctx: HistoryContext, db: SetUpDatabase, events: number) {
  const { pool } = db;
  const start = (await pool.query<{ start: Date }>("select now() as start")).rows[0]!.start;
  await insertContacts(pool, db.endpoints[0]!.organizationId, events);
  await settle(pool);
  const result = await timeUntilLogged(db, ctx.setup, events, `history (${db.label})`);
  await ctx.receiver.collect();
  await pool.query("delete from webhooks.webhook_logs where created_at >= $1", [start]);
  await pool.query("delete from webhooks.deliveries where created_at >= $1", [start]);
  await pool.query("delete from webhooks.events where dispatched_at >= $1", [start]);
  return result;
}

/** `sql`'s plan, EXPLAIN (ANALYZE, BUFFERS), after QUERY_RUNS runs timed by EXPLAIN ANALYZE (median planning and execution, ms). */
async function planAndTimes(pool: Pool, sql: string) {
  const planning: number[] = [];
  const execution: number[] = [];
  for (let i = 0; i < QUERY_RUNS; i++) {
    const { rows } = await pool.query<{ "QUERY PLAN": [{ "Planning Time": number; "Execution Time": number }] }>(`explain (analyze, format json) ${sql}`);
    planning.push(rows[0]!["QUERY PLAN"][0]["Planning Time"]);
    execution.push(rows[0]!["QUERY PLAN"][0]["Execution Time"]);
  }
  const { rows } = await pool.query<{ "QUERY PLAN": string }>(`explain (analyze, buffers) ${sql}`);
  return { planning, execution, plan: rows.map((r) => r["QUERY PLAN"]).join("\n") };
}

const ms = (n: number) => n.toFixed(2);

/**
 * history: drains of ctx.drainEvents on the fresh database and on the history database, the two
 * interleaved (alternating which goes first) ctx.runs times; then the two reads of one
 * organization's history, timed and explained.
 */
export async function historyPhase(ctx: HistoryContext, dbs: HistoryDatabases): Promise<PhaseReport> {
  const { fresh, history } = await dbs.get();
  await fillHistory(history, HISTORY_ATTEMPTS);
  for (const db of [fresh, history]) await settle(db.pool);
  await history.pool.query("checkpoint");
  const rates = { fresh: [] as number[], history: [] as number[] };
  const cpus = { fresh: [] as CpuPerDelivery[], history: [] as CpuPerDelivery[] };
  for (let run = 0; run < ctx.runs; run++) {
    for (const db of run % 2 === 0 ? [fresh, history] : [history, fresh]) {
      const key = db === fresh ? "fresh" : "history";
      const { rate, cpu } = await drainOnce(ctx, db, ctx.drainEvents);
      rates[key].push(rate);
      if (cpu) cpus[key].push(cpu);
      console.error(`history run ${run + 1}, ${db.label} database: ${fmt(rate)} deliveries/s` + (cpu ? `; CPU per delivery daemon / Postgres / receiver ${cpuCell(cpu)} µs` : ""));
    }
  }
  await settle(history.pool);

  const organizationId = history.endpoints[0]!.organizationId;
  const queries = [
    { what: "webhook_stats of one organization", sql: `select * from webhooks.webhook_stats where organization_id = '${organizationId}'` },
    { what: "one organization's failed attempts in the last hour",
      sql: `select * from webhooks.webhook_logs where organization_id = '${organizationId}' and created_at > now() - interval '1 hour' and not success order by created_at desc limit 100` },
  ];
  const rows = [
    `| history: drain, ${count(ctx.drainEvents)} deliveries, fresh database (deliveries/s) | ${rates.fresh.map(fmt).join(", ")} | ${fmt(median(rates.fresh))} | |`,
    `| history: drain, ${count(ctx.drainEvents)} deliveries, with ${count(HISTORY_ATTEMPTS)} past attempts (deliveries/s) | ${rates.history.map(fmt).join(", ")} | ${fmt(median(rates.history))} | |`,
    `| history: drain rate with history / fresh | | **${(median(rates.history) / median(rates.fresh)).toFixed(2)}×** | ≥ 0.90× |`,
  ];
  if (cpus.fresh.length && cpus.history.length) {
    rows.push(`| history: CPU per delivery, fresh: daemon / Postgres / receiver (µs) | ${cpus.fresh.map(cpuCell).join(", ")} | ${medianCpu(cpus.fresh)} | |`,
              `| history: CPU per delivery, with history: daemon / Postgres / receiver (µs) | ${cpus.history.map(cpuCell).join(", ")} | ${medianCpu(cpus.history)} | |`);
  }
  const plans: string[] = [];
  for (const query of queries) {
    const { planning, execution, plan } = await planAndTimes(history.pool, query.sql);
    rows.push(`| history: ${query.what}, execution (ms) | ${QUERY_RUNS} runs, planning ${ms(median(planning))} ms | **${ms(median(execution))}** | a few ms |`);
    plans.push(`${query.what}:\n\n\`\`\`sql\n${query.sql}\n\`\`\`\n\n\`\`\`\n${plan}\n\`\`\``);
  }
  return {
    rows,
    sections: [`<details><summary>history: plans with ${count(HISTORY_ATTEMPTS)} past attempts (${ORGANIZATIONS} organizations, ` +
               `over ${HISTORY_DAYS} days; EXPLAIN (ANALYZE, BUFFERS))</summary>\n\n${plans.join("\n\n")}\n\n</details>`],
  };
}

/**
 * GET /metrics on a daemon of each database at once (on BENCH_DAEMON_PORT, + 1, …), their requests
 * interleaved, one at a time: METRICS_WARMUPS each not counted, then METRICS_REQUESTS each (ms).
 */
async function scrapeTimes(ctx: HistoryContext, dbs: BenchDatabase[]): Promise<number[][]> {
  const ports = dbs.map((_, i) => ctx.setup.daemonPort + i);
  const daemons: ChildProcess[] = [];
  const times = dbs.map(() => [] as number[]);
  try {
    for (const [i, db] of dbs.entries()) daemons.push(await startDaemon(db.url, ports[i]!));
    for (let n = 0; n < METRICS_WARMUPS + METRICS_REQUESTS; n++) {
      for (const [i, port] of ports.entries()) {
        const started = performance.now();
        const response = await fetch(`http://127.0.0.1:${port}/metrics`);
        const text = await response.text();
        if (!response.ok || !text.includes("pg_webhooks_outbox_events")) throw new Error(`metrics: GET /metrics answered ${response.status}: ${text.slice(0, 200)}`);
        if (n >= METRICS_WARMUPS) times[i]!.push(performance.now() - started);
        await delay(20);
      }
    }
  } finally {
    for (const daemon of daemons) await stopDaemon(daemon);
  }
  return times;
}

const logRows = async (pool: Pool) => Number((await pool.query<{ n: string }>("select count(*) as n from webhooks.webhook_logs")).rows[0]!.n);

/**
 * metrics: the history database's webhook_logs grown to METRICS_LOG_ROWS with cheap rows (over
 * the history phase's, when it ran), the fresh one's emptied to ten; GET /metrics timed on each.
 */
export async function metricsPhase(ctx: HistoryContext, dbs: HistoryDatabases): Promise<PhaseReport> {
  const { fresh, history } = await dbs.get();
  const present = await logRows(history.pool);
  if (present < METRICS_LOG_ROWS) await fillCheapLogs(history, METRICS_LOG_ROWS - present);
  await history.pool.query("analyze webhooks.webhook_logs");
  await fresh.pool.query("truncate webhooks.webhook_logs");
  await fillCheapLogs(fresh, 10);
  const both = [fresh, history];
  // Both as autovacuum would keep them (the drains' dead queue rows slow a scrape: 45 ms instead of 6 on the
  // fresh database after the history phase's 300,000 deliveries); the fill's dirty pages written now, not during the scrapes.
  for (const db of both) await settle(db.pool);
  await history.pool.query("checkpoint");
  const logged = await Promise.all(both.map((db) => logRows(db.pool)));
  const times = await scrapeTimes(ctx, both);
  const rows = both.map((db, i) => {
    const cell = `${fmt(percentile(times[i]!, 50))} / ${fmt(percentile(times[i]!, 95))} / ${fmt(Math.max(...times[i]!))}`;
    console.error(`metrics, ${db.label} database, ${count(logged[i]!)} log rows: GET /metrics p50 / p95 / max ${cell} ms`);
    return `| metrics: GET /metrics with ${count(logged[i]!)} rows in webhook_logs, p50 / p95 / max (ms) | ${METRICS_REQUESTS} requests, interleaved | **${cell}** | < 50 ms |`;
  });
  return { rows, sections: [] };
}
