import { backendPids, createPool, type Pool } from "../db/pool.js";
import { describeBackends, describeBlockers, statementSummary, type BackendReport } from "../db/backend-report.js";
import { describeError, type Logger } from "../logger.js";
import { Activity } from "./activity.js";

export interface StallWatchOptions {
  /** The daemon's pool: its connections are the ones inspected. */
  pool: Pool;
  connectionString: string;
  /** The pool's lock_timeout: a lock wait is reported once it has lasted half of it (at most 1 s). */
  lockTimeoutMs: number;
  /** An activity that has not moved for this long is stalled (WEBHOOKS_STALL_SECONDS). */
  stallMs: number;
  logger: Logger;
}

/** What /healthz and the log say about one stalled activity. */
export interface Stall {
  activity: string;
  seconds: number;
  /** One line: what has not moved for how long, and what it waits on. */
  reason: string;
  /** The daemon's connections busy in a statement, with their wait events and blockers. */
  statements: StatementReport[];
  lastError?: Record<string, unknown>;
}

interface StatementReport {
  pid: number;
  statement: string | null;
  seconds: number | null;
  wait_event_type: string | null;
  wait_event: string | null;
  waiting_for: string | null;
  blocked_by: number[];
  blockers: string | null;
}

/**
 * Watches the daemon's work so that it never hangs silently (README, "Locks, stalls and
 * crashes"). Every activity (activity.ts) records when its work last moved; a timer, without
 * touching the database while all is well, looks at them:
 *
 * - a step in flight longer than half the lock_timeout (at most 1 s): the daemon's connections
 *   are inspected (webhooks._describe_backends), and each one waiting for a lock is logged with
 *   who holds it: a lock timeout then never comes unexplained;
 * - an activity that has not moved for WEBHOOKS_STALL_SECONDS is stalled: logged (warn) with the
 *   statements the daemon is in, their wait events and blockers, once when it starts and again
 *   every WEBHOOKS_STALL_SECONDS while it lasts, and reported by /healthz (503) and /metrics.
 *
 * It inspects over a connection of its own, so that a pool whose every connection waits can
 * still be explained.
 */
export class StallWatch {
  private readonly activities: Activity[] = [];
  private readonly slowMs: number;
  private readonly checkMs: number;
  private inspector: Pool | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  /** When each stalled activity was last reported, and what was said. */
  private readonly reported = new Map<Activity, { at: number; stall: Stall }>();
  /** When each waiting connection's wait (pid and statement start) was last logged. */
  private readonly waitsLogged = new Map<string, number>();
  private recentBlockers: { at: number; text: string[] } = { at: 0, text: [] };
  private inspectionFailedAt = 0;

  constructor(private readonly options: StallWatchOptions) {
    this.slowMs = Math.min(1000, options.lockTimeoutMs / 2);
    this.checkMs = Math.max(50, Math.min(1000, this.slowMs / 2));
  }

  /** A watched loop; see Activity. */
  activity(name: string, work: string, options: { reportsStalls?: boolean } = {}): Activity {
    const activity = new Activity(name, work, options.reportsStalls ?? true, () => this.blockersSeenLately());
    this.activities.push(activity);
    return activity;
  }

  start(): void {
    this.inspector ??= createPool(this.options.connectionString, {
      max: 1,
      applicationName: "pg-webhooks:watch",
      lockTimeoutMs: this.options.lockTimeoutMs,
      statementTimeoutMs: 10_000,
      logger: this.options.logger,
    });
    const tick = () => {
      this.checking = this.check().catch((error: unknown) => this.options.logger.warn("stall watch failed", { error: describeError(error) }));
      void this.checking.finally(() => {
        if (this.timer) this.timer = setTimeout(tick, this.checkMs);
      });
    };
    this.timer = setTimeout(tick, this.checkMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.checking;
    await this.inspector?.end().catch(() => undefined);
    this.inspector = undefined;
  }

  /** The activities stalled now, as last reported. */
  stalls(): Stall[] {
    const now = Date.now();
    return this.activities
      .filter((activity) => activity.reportsStalls && activity.stuckFor(now) >= this.options.stallMs && this.reported.has(activity))
      .map((activity) => ({ ...this.reported.get(activity)!.stall, seconds: round(activity.stuckFor(now) / 1000) }));
  }

  /** Seconds each activity has not moved (0 when moving), and whether that is a stall, for /metrics. */
  stuckSeconds(): { activity: string; seconds: number; stalled: boolean }[] {
    const now = Date.now();
    return this.activities
      .filter((activity) => activity.reportsStalls)
      .map((activity) => ({
        activity: activity.name,
        seconds: round(activity.stuckFor(now) / 1000),
        stalled: activity.stuckFor(now) >= this.options.stallMs,
      }));
  }

  /** Statements that gave up waiting for a lock (lock_timeout), over all activities. */
  lockTimeouts(): number {
    return this.activities.reduce((sum, activity) => sum + activity.lockTimeouts, 0);
  }

  /**
   * Who blocked the daemon's connections lately (within a lock_timeout and a check): what a loop
   * adds to its log line when a statement failed with lock_not_available.
   */
  blockersSeenLately(): string[] {
    return Date.now() - this.recentBlockers.at <= this.options.lockTimeoutMs + 2 * this.checkMs ? this.recentBlockers.text : [];
  }

  private async check(): Promise<void> {
    const now = Date.now();
    const slow = this.activities.some((activity) => activity.busySince !== undefined && now - activity.busySince >= this.slowMs);
    const stalled = this.activities.filter((activity) => activity.reportsStalls && activity.stuckFor(now) >= this.options.stallMs);
    for (const activity of [...this.reported.keys()]) {
      if (stalled.includes(activity)) continue;
      const { stall } = this.reported.get(activity)!;
      this.reported.delete(activity);
      this.options.logger.info(`${activity.name} is moving ${activity.work} again`, { activity: activity.name, stalledSeconds: stall.seconds });
    }
    if (!slow && stalled.length === 0) return;
    const backends = await this.inspect();
    this.logLockWaits(backends, now);
    for (const activity of stalled) {
      const last = this.reported.get(activity);
      if (last && now - last.at < this.options.stallMs) continue;
      const stall = this.describeStall(activity, backends, now);
      this.reported.set(activity, { at: now, stall });
      this.options.logger.warn(`stalled: ${stall.reason}`, {
        activity: activity.name,
        stalledSeconds: stall.seconds,
        statements: stall.statements,
        ...(stall.lastError ? { lastError: stall.lastError } : {}),
      });
    }
  }

  /** The daemon's connections that are in a statement or a transaction, as the server sees them. */
  private async inspect(): Promise<BackendReport[]> {
    try {
      const reports = await describeBackends(this.inspector!, backendPids(this.options.pool));
      return reports.filter((report) => report.state !== null && report.state !== "idle");
    } catch (error) {
      // Before migration 000014 (a new database, still migrating) there is nothing to call yet.
      if ((error as { code?: unknown }).code === "42883") return [];
      // E.g. the server is down: say so now and then, go on.
      if (Date.now() - this.inspectionFailedAt > 60_000) {
        this.inspectionFailedAt = Date.now();
        this.options.logger.warn("could not inspect the daemon's database connections", { error: describeError(error) });
      }
      return [];
    }
  }

  private logLockWaits(backends: BackendReport[], now: number): void {
    const waiting = backends.filter((backend) => backend.wait_event_type === "Lock" && (backend.statement_seconds ?? 0) * 1000 >= this.slowMs);
    if (waiting.length > 0) this.recentBlockers = { at: now, text: waiting.map(describeBlockers) };
    // Each wait is logged when first seen, then every few seconds while it lasts.
    const every = Math.max(this.options.lockTimeoutMs, 5000);
    const current = new Set<string>();
    for (const backend of waiting) {
      const key = `${backend.pid}:${Math.round(now / 1000 - (backend.statement_seconds ?? 0))}`;
      current.add(key);
      const loggedAt = this.waitsLogged.get(key);
      if (loggedAt !== undefined && now - loggedAt < every) continue;
      this.waitsLogged.set(key, now);
      this.options.logger.warn(`waiting for ${describeBlockers(backend)}`, {
        pid: backend.pid,
        waitingSeconds: round(backend.statement_seconds ?? 0),
        statement: statementSummary(backend.statement),
        waitingFor: backend.waiting_for,
        blockers: backend.blockers,
        lockTimeoutMs: this.options.lockTimeoutMs,
      });
    }
    for (const key of this.waitsLogged.keys()) if (!current.has(key)) this.waitsLogged.delete(key);
  }

  private describeStall(activity: Activity, backends: BackendReport[], now: number): Stall {
    const seconds = round(activity.stuckFor(now) / 1000);
    const statements: StatementReport[] = backends
      .filter((backend) => backend.state === "active" || backend.state?.startsWith("idle in transaction"))
      .map((backend) => ({
        pid: backend.pid,
        statement: statementSummary(backend.statement),
        seconds: backend.statement_seconds === null ? null : round(backend.statement_seconds),
        wait_event_type: backend.wait_event_type,
        wait_event: backend.wait_event,
        waiting_for: backend.waiting_for,
        blocked_by: (backend.blockers ?? []).map((blocker) => blocker.pid),
        blockers: backend.blockers?.length ? describeBlockers(backend) : null,
      }));
    const blocked = statements.find((statement) => statement.blockers !== null);
    const busy = statements[0];
    const waitingOn = blocked
      ? `; a statement of the daemon waits for ${blocked.blockers}`
      : busy
        ? `; the daemon is in "${busy.statement}" (${busy.wait_event_type ? `waiting on ${busy.wait_event_type}/${busy.wait_event}` : "running"})`
        : activity.lastError !== undefined
          ? `; its last step failed: ${String(describeError(activity.lastError).message)}`
          : "";
    return {
      activity: activity.name,
      seconds,
      reason: `${activity.name} has not moved ${activity.work} for ${seconds} s${waitingOn}`,
      statements,
      ...(activity.lastError !== undefined ? { lastError: describeError(activity.lastError) } : {}),
    };
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
