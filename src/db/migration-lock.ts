import { setTimeout as delay } from "node:timers/promises";
import type pg from "pg";
import type { Logger } from "../logger.js";
import { describeBackends, describeSession } from "./backend-report.js";

/**
 * The advisory lock every pg-webhooks process takes to migrate a database (the same key since
 * the first release, so a daemon of an older release and a newer one never migrate at once).
 * Any role may take an advisory lock, so whoever holds it is named, never waited for silently.
 */
const KEY = "hashtext('pg-webhooks:migrate')";

export interface MigrationLockOptions {
  /** Told "waiting for the migration lock held by …" each time the holder is reported (/healthz shows it). */
  onWaiting?: (reason: string) => void;
  /** How often to try again. */
  retryMs?: number;
  /** How often to say who holds it while waiting. */
  reportEveryMs?: number;
}

interface Holder {
  pid: number;
  role: string | null;
  application_name: string | null;
  state?: string | null;
  transaction_seconds?: number | null;
  session_seconds?: number | null;
}

/**
 * Takes the migration lock on `client`'s session, trying pg_try_advisory_lock in a loop (a
 * blocking pg_advisory_lock would wait silently, and forever); while another session holds it,
 * logs who that is every few seconds.
 */
export async function takeMigrationLock(client: pg.ClientBase, logger: Logger, options: MigrationLockOptions = {}): Promise<void> {
  const { retryMs = 250, reportEveryMs = 5000, onWaiting } = options;
  const started = Date.now();
  let reportedAt: number | undefined;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>(`select pg_try_advisory_lock(${KEY}) as locked`);
    if (rows[0]!.locked) {
      if (reportedAt !== undefined) logger.info("took the migration lock", { waitedSeconds: (Date.now() - started) / 1000 });
      return;
    }
    if (reportedAt === undefined || Date.now() - reportedAt >= reportEveryMs) {
      const holders = await migrationLockHolders(client);
      const named = holders.map((holder) => describeSession(holder)).join("; ");
      const reason = `waiting for the migration lock held by ${named || "a session that has just released it"}`;
      logger.warn(reason, {
        holders,
        waitingSeconds: (Date.now() - started) / 1000,
        hint: "another pg-webhooks process holds it for as long as its migrations take; any other session holding it is one to end",
      });
      onWaiting?.(reason);
      reportedAt = Date.now();
    }
    await delay(retryMs);
  }
}

export async function releaseMigrationLock(client: pg.ClientBase): Promise<void> {
  await client.query(`select pg_advisory_unlock(${KEY})`);
}

/**
 * The sessions holding the migration lock (pg_locks splits the bigint key into classid, the high
 * half, and objid). pid, role and application_name are visible to any login; the state and the
 * transaction's age come from webhooks._describe_backends once migration 000014 has created it.
 */
async function migrationLockHolders(client: pg.ClientBase): Promise<Holder[]> {
  const { rows } = await client.query<Holder & { describable: boolean }>(
    `select l.pid, a.usename::text as role, a.application_name,
            to_regprocedure('webhooks._describe_backends(integer[])') is not null as describable
       from pg_locks l left join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.objsubid = 1
        and l.database = (select oid from pg_database where datname = current_database())
        and ((l.classid::bigint << 32) | l.objid::bigint) = ${KEY}::bigint`,
  );
  const holders = rows.map(({ pid, role, application_name }) => ({ pid, role, application_name }));
  if (!rows[0]?.describable) return holders;
  const described = await describeBackends(client, holders.map((holder) => holder.pid)).catch(() => []);
  return holders.map((holder) => {
    const report = described.find((row) => row.pid === holder.pid);
    // Never its statement: a holder logged in as this daemon's role could show one with its data.
    return report
      ? { ...holder, state: report.state, transaction_seconds: report.transaction_seconds, session_seconds: report.session_seconds }
      : holder;
  });
}
