/**
 * CPU time spent by the processes of one drain, read from /proc (Linux): the daemon, the
 * receiver and the backends of the Postgres server (those of the bench's database, when the
 * caller names them). Per delivery, it shows which side bounds throughput on a machine whose
 * cores they share.
 */
import { readFileSync, readdirSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ; Linux exposes utime/stime in these units

interface Stat {
  ppid: number;
  cpuMs: number;
}

function stat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15)
    return { ppid: Number(fields[1]), cpuMs: (ticks * 1000) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

export interface CpuSnapshot {
  daemon: number;
  receiver: number;
  /** Per backend pid: a backend that exits between two snapshots is not counted. */
  postgres: Map<number, number>;
}

export function available(): boolean {
  return stat(process.pid) !== undefined;
}

/** The parent of a backend: the postmaster, whose children are every backend of the server. */
export function postmasterOf(backendPid: number): number | undefined {
  return stat(backendPid)?.ppid;
}

export function snapshot(pids: { daemon: number; receiver: number; postmaster: number }): CpuSnapshot {
  const postgres = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (s && (s.ppid === pids.postmaster || pid === pids.postmaster)) postgres.set(pid, s.cpuMs);
  }
  return { daemon: stat(pids.daemon)?.cpuMs ?? 0, receiver: stat(pids.receiver)?.cpuMs ?? 0, postgres };
}

/**
 * Microseconds of CPU per delivery, by side, between two snapshots. With `backends`, Postgres is
 * only those backends (the bench database's: other databases' on a shared server are not ours;
 * the server's own processes, such as the WAL writer, are left out too).
 */
export function perDelivery(before: CpuSnapshot, after: CpuSnapshot, deliveries: number,
                            backends?: ReadonlySet<number>): { daemon: number; receiver: number; postgres: number } {
  let postgres = 0;
  for (const [pid, ms] of after.postgres) if (!backends || backends.has(pid)) postgres += ms - (before.postgres.get(pid) ?? 0);
  const us = (ms: number) => (ms * 1000) / deliveries;
  return { daemon: us(after.daemon - before.daemon), receiver: us(after.receiver - before.receiver), postgres: us(postgres) };
}
