import { isLockTimeout } from "../db/backend-report.js";
import { describeError } from "../logger.js";

/**
 * One loop of the daemon whose progress is watched (stall-watch.ts): the dispatcher moving the
 * outbox, the deliverer claiming from the queue, attempts being recorded, the heartbeat. The loop
 * runs each database step through `step`; this only keeps timestamps (no I/O, nothing per
 * delivery beyond two clock reads per statement).
 */
export class Activity {
  /** When its work last stopped moving: the start of the first step since the last one that moved. */
  stuckSince: number | undefined;
  /** When the step in flight began (undefined: none is). */
  busySince: number | undefined;
  /** The last step's error, while it has not moved since. */
  lastError: unknown;
  lockTimeouts = 0;

  constructor(
    /** e.g. "dispatch". */
    readonly name: string,
    /** What moving means, e.g. "the outbox": "dispatch has not moved the outbox for 31 s". */
    readonly work: string,
    /** Whether a stall of this activity makes the daemon unhealthy (not while it is still starting). */
    readonly reportsStalls = true,
    /** Who blocked the daemon's connections lately, as the watch saw them. */
    private readonly blockersSeen: () => string[] = () => [],
  ) {}

  /**
   * Runs one database step. `moved` says whether its result is progress (by default any success
   * is); a step that fails, or succeeds without moving, leaves the activity stuck since before it.
   */
  async step<T>(work: () => Promise<T>, moved: (result: T) => boolean = () => true): Promise<T> {
    const now = Date.now();
    this.busySince = now;
    this.stuckSince ??= now;
    try {
      const result = await work();
      if (moved(result)) {
        this.stuckSince = undefined;
        this.lastError = undefined;
      }
      return result;
    } catch (error) {
      this.lastError = error;
      if (isLockTimeout(error)) this.lockTimeouts += 1;
      throw error;
    } finally {
      this.busySince = undefined;
    }
  }

  /**
   * The log line for a failed step about to be retried. A lock timeout names who held the lock
   * (the watch looks at waits long before lock_timeout ends them).
   */
  retryLine(error: unknown, retryInMs: number, fields: Record<string, unknown> = {}): [string, Record<string, unknown>] {
    if (!isLockTimeout(error)) return [`${this.name} failed; retrying`, { ...fields, error: describeError(error), retryInMs }];
    const blockers = this.blockersSeen();
    const held = blockers.length > 0 ? blockers.join("; ") : "a lock (its holder was not seen: the wait ended before the watch looked)";
    return [`${this.name} waited longer than lock_timeout for ${held}; retrying`, { ...fields, error: describeError(error), blockedBy: blockers, retryInMs }];
  }

  /** How long its work has not moved, in ms (0 when it is moving). */
  stuckFor(now = Date.now()): number {
    return this.stuckSince === undefined ? 0 : now - this.stuckSince;
  }
}
