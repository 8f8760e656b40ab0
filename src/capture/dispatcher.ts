import type { Pool } from "../db/pool.js";
import { Activity } from "../daemon/activity.js";
import type { Logger } from "../logger.js";
import { fanOut, outboxHasEvents } from "./fan-out.js";
import { holdAwakeLease, releaseAwakeLease, writersStillOpen } from "./wake-state.js";

export interface DispatcherOptions {
  /** Poll period while awake (events keep arriving). */
  pollIntervalMs: number;
  /** Poll period while asleep: the sweep that makes a lost NOTIFY harmless. */
  sweepIntervalMs: number;
  /** How long the outbox must stay empty before the dispatcher goes back to sleep. */
  quietMs: number;
  /** Length of the awake lease written for capture triggers; renewed at a quarter of it. */
  leaseMs: number;
  batchSize: number;
}

/** While it waits for writers that saw its lease, it looks again at most this far apart. */
const HAND_OFF_MAX_WAIT_MS = 100;

export const defaultDispatcherOptions: DispatcherOptions = {
  pollIntervalMs: 2,
  sweepIntervalMs: 1000,
  quietMs: 1000,
  leaseMs: 2000,
  batchSize: 500,
};

/**
 * Moves events from the outbox to deliveries. Asleep, it waits for a NOTIFY (or the sweep
 * interval); awake, it polls continuously and holds a lease that tells capture triggers not to
 * NOTIFY. See sql/000003_capture.sql for why that matters and why it is safe.
 */
export class Dispatcher {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private wakeRequested = false;
  private consecutiveErrors = 0;
  private sleeping = false;
  private lastPollFull = false;
  readonly stats = { events: 0, deliveries: 0, wakeups: 0 };

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly options: DispatcherOptions = defaultDispatcherOptions,
    /** Called after a fan-out created deliveries (the daemon's deliverer claims them at once). */
    private readonly onDeliveries: () => void = () => undefined,
    /** Its database steps, watched for stalls: it moves the outbox. */
    private readonly activity: Activity = new Activity("dispatch", "the outbox"),
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Whether it is asleep: only a wake-up or the sweep will make it poll the outbox again. */
  get isAsleep(): boolean {
    return this.sleeping;
  }

  /** A hint that the outbox has rows (NOTIFY, reconnect). Never required for correctness. */
  wake(): void {
    this.wakeRequested = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    // Start awake: the first poll is the start-up sweep.
    while (this.running) {
      try {
        await this.awake();
        if (!this.running) break;
        await this.asleep();
        this.consecutiveErrors = 0;
      } catch (error) {
        this.consecutiveErrors += 1;
        const backoff = Math.min(5000, 100 * 2 ** Math.min(this.consecutiveErrors, 6));
        this.logger.warn(...this.activity.retryLine(error, backoff));
        await this.sleep(backoff);
      }
    }
  }

  /**
   * Polls until the outbox has been empty for quietMs and no unseen writer can remain: after
   * ending its lease it waits only for the writers that may have read it (wake-state.ts), never
   * for unrelated transactions, then polls once more.
   */
  private async awake(): Promise<void> {
    const { pollIntervalMs, quietMs, leaseMs, batchSize } = this.options;
    this.stats.wakeups += 1;
    this.wakeRequested = false; // while awake we poll anyway
    await this.leaseStep(() => holdAwakeLease(this.pool, leaseMs));
    let leaseRenewedAt = Date.now();
    let lastFoundAt = Date.now();
    /** Set once the lease is released: the transactions that may have read it before. */
    let writers: string[] | undefined;
    let waitMs = pollIntervalMs;
    while (this.running) {
      if (writers === undefined && Date.now() - leaseRenewedAt > leaseMs / 4) {
        await this.leaseStep(() => holdAwakeLease(this.pool, leaseMs));
        leaseRenewedAt = Date.now();
      }
      const found = await this.poll(batchSize);
      if (found > 0) {
        lastFoundAt = Date.now();
        if (writers !== undefined) {
          await this.leaseStep(() => holdAwakeLease(this.pool, leaseMs));
          leaseRenewedAt = Date.now();
          writers = undefined;
          waitMs = pollIntervalMs;
        }
        if (found === batchSize) continue;
      } else if (Date.now() - lastFoundAt >= quietMs) {
        if (writers === undefined) {
          writers = await this.leaseStep(() => releaseAwakeLease(this.pool));
          continue; // poll once more right away
        }
        if (writers.length === 0 || !(await this.leaseStep(() => writersStillOpen(this.pool, writers!)))) {
          // Every writer that may have seen our lease has finished; a last poll picks up what they wrote.
          if ((await this.poll(batchSize)) === 0) return;
          lastFoundAt = Date.now();
          await this.leaseStep(() => holdAwakeLease(this.pool, leaseMs));
          leaseRenewedAt = Date.now();
          writers = undefined;
          waitMs = pollIntervalMs;
          continue;
        }
        // A writer keeps its transaction open: look again, less and less often.
        await this.sleep(waitMs);
        waitMs = Math.min(HAND_OFF_MAX_WAIT_MS, waitMs * 2);
        continue;
      }
      await this.sleep(pollIntervalMs);
    }
    if (writers === undefined) await releaseAwakeLease(this.pool).catch(() => undefined);
  }

  /** Waits for a wake-up; sweeps every sweepIntervalMs. Returns when there is work. */
  private async asleep(): Promise<void> {
    this.sleeping = true;
    try {
      while (this.running) {
        if (!this.wakeRequested) await this.sleep(this.options.sweepIntervalMs);
        if (!this.running) return;
        const woken = this.wakeRequested;
        this.wakeRequested = false;
        if (woken) return;
        if ((await this.poll(this.options.batchSize)) > 0) return;
      }
    } finally {
      this.sleeping = false;
    }
  }

  /**
   * Fans out up to `limit` events. An awake dispatcher polls every few milliseconds, mostly
   * finding nothing: that case costs one indexed read instead of a write transaction.
   */
  private async poll(limit: number): Promise<number> {
    let empty = false;
    // The outbox moved when events left it or it was found empty.
    return this.activity.step(async () => {
      if (!this.lastPollFull && !(await outboxHasEvents(this.pool))) {
        empty = true;
        return 0;
      }
      const { events, deliveries, setAside } = await fanOut(this.pool, limit, this.logger);
      this.lastPollFull = events + setAside === limit;
      if (deliveries > 0) this.onDeliveries();
      if (events > 0) {
        this.stats.events += events;
        this.stats.deliveries += deliveries;
        this.logger.debug("fanned out", { events, deliveries });
      }
      return events + setAside;
    }, (found) => found > 0 || empty);
  }

  /** A step on the lease: watched like a poll, but it does not move the outbox. */
  private leaseStep<T>(work: () => Promise<T>): Promise<T> {
    return this.activity.step(work, () => false);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        done();
      };
    });
  }
}
