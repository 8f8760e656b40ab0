/** One member's outcome when a batch is run with failure isolation. */
export type MemberOutcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/**
 * Runs a batch statement so that one bad member cannot fail the others: when the whole batch
 * fails with an error that a member's data can cause (`isMemberError`), it is split in halves and
 * each half run again, down to single members; only the members that fail alone get an error.
 * Any other error (the server is down, a bug of ours) fails every member as it is.
 */
export async function runIsolatingFailures<T, R>(
  items: T[],
  run: (items: T[]) => Promise<R[]>,
  isMemberError: (error: unknown) => boolean = isDataError,
): Promise<MemberOutcome<R>[]> {
  try {
    const values = await run(items);
    return values.map((value) => ({ ok: true, value }));
  } catch (error) {
    if (items.length === 1 || !isMemberError(error)) return items.map(() => ({ ok: false, error }));
    const middle = Math.ceil(items.length / 2);
    const first = await runIsolatingFailures(items.slice(0, middle), run, isMemberError);
    const second = await runIsolatingFailures(items.slice(middle), run, isMemberError);
    return [...first, ...second];
  }
}

/**
 * A Postgres error that a row's contents can cause: data exceptions (22), integrity violations
 * (23), program limits such as sizes and nesting (54), and errors raised by triggers or
 * functions (P0). Connection failures, shutdowns and syntax errors are not: retrying without
 * one member would not help, and setting members aside for them would be wrong.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(22|23|54|P0)/.test(code);
}
