import type pg from "pg";

/**
 * What a server process (backend) is doing and who blocks it, as webhooks._describe_backends
 * (sql/000014_daemon_hardening.sql) reports it: how the daemon names the session behind a lock
 * wait, a lock timeout or a stall in its log and on /healthz. A blocker's statement is never
 * read (it could hold its role's data); the daemon's own statements are.
 */
export interface Blocker {
  pid: number;
  role: string | null;
  application_name: string | null;
  state: string | null;
  transaction_seconds: number | null;
  /** The lock modes it holds on what the waiter wants (null: it is queued ahead, not holding). */
  holds: string | null;
}

export interface BackendReport {
  pid: number;
  role: string | null;
  application_name: string | null;
  state: string | null;
  session_seconds: number | null;
  transaction_seconds: number | null;
  statement_seconds: number | null;
  wait_event_type: string | null;
  wait_event: string | null;
  /** Only for the caller's own sessions. */
  statement: string | null;
  /** The lock it waits for, e.g. "AccessShareLock on relation webhooks.webhook_configurations". */
  waiting_for: string | null;
  blockers: Blocker[] | null;
}

/** A pool or a client: anything that runs a query. */
export type Queryable = Pick<pg.Pool, "query"> | Pick<pg.ClientBase, "query">;

export async function describeBackends(db: Queryable, pids: number[]): Promise<BackendReport[]> {
  if (pids.length === 0) return [];
  const { rows } = await (db as pg.Pool).query<BackendReport>("select * from webhooks._describe_backends($1::int[])", [pids]);
  return rows;
}

/** The error a statement fails with when it waited lock_timeout for a lock. */
export function isLockTimeout(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "55P03";
}

/** `pid 4711 (role app, application_name "crm", idle in transaction, transaction open 12.0 s)`. */
export function describeSession(session: {
  pid: number;
  role?: string | null;
  application_name?: string | null;
  state?: string | null;
  transaction_seconds?: number | null;
  session_seconds?: number | null;
}): string {
  const parts = [`role ${session.role ?? "unknown"}`, `application_name ${JSON.stringify(session.application_name ?? "")}`];
  if (session.state) parts.push(session.state);
  if (session.transaction_seconds != null) parts.push(`transaction open ${seconds(session.transaction_seconds)}`);
  else if (session.session_seconds != null) parts.push(`no transaction open, connected ${seconds(session.session_seconds)}`);
  else parts.push("transaction age not visible to this login");
  return `pid ${session.pid} (${parts.join(", ")})`;
}

/** `AccessShareLock on relation x, held by pid 4711 (…) holding AccessExclusiveLock; …`. */
export function describeBlockers(backend: BackendReport): string {
  const blockers = (backend.blockers ?? []).map(
    (blocker) => `${describeSession(blocker)} ${blocker.holds ? `holding ${blocker.holds}` : "queued ahead for a conflicting lock"}`,
  );
  return `${backend.waiting_for ?? "a lock"}, held by ${blockers.join("; ") || "a session that has just let go"}`;
}

/** The daemon's own statement, one line without comments, short enough for a log line. */
export function statementSummary(statement: string | null, length = 240): string | null {
  if (statement === null) return null;
  const line = statement.replace(/--[^\n]*/g, " ").replace(/\s+/g, " ").trim();
  return line.length > length ? `${line.slice(0, length - 1)}…` : line;
}

function seconds(value: number): string {
  return `${value.toFixed(1)} s`;
}
