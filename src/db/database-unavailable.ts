/**
 * Whether an error means the database cannot be used right now, so that retrying later may
 * succeed: the server cannot be reached or refuses the connection (SQLSTATE classes 08 and 28,
 * 3D000 no such database), it is short of resources (53), shutting down or starting (57P01–57P03),
 * the pool could not hand out a connection in time, or a statement waited too long for a lock or
 * was cancelled (55P03, 57014), or lost a serialization race (40001, 40P01). Anything else — a
 * permission, a bug, bad data — is not: retrying would fail the same way.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    if (/^(08|28|53)/.test(code) || ["3D000", "57P01", "57P02", "57P03", "55P03", "57014", "40001", "40P01"].includes(code)) return true;
    // Node's socket errors: ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE, ENOTFOUND, EAI_AGAIN, …
    if (/^E[A-Z_]+$/.test(code)) return true;
  }
  const message = error instanceof Error ? error.message : "";
  // node-postgres, without a code: a connection that died, or none free in connectionTimeoutMillis.
  return /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)/.test(message);
}
