import { setTimeout as delay } from "node:timers/promises";
import type { Pool } from "../db/pool.js";
import { Activity } from "../daemon/activity.js";
import { describeError, type Logger } from "../logger.js";
import { createAttempt, type AttemptReport } from "./attempt.js";
import { DeliveryStore, type DeliveryContext } from "./delivery-store.js";
import { HttpSender } from "./send.js";

const CLAIM_GAP_MS = 5;

export interface DelivererOptions {
  pool: Pool;
  /** The registered daemon (webhooks.daemons.id) whose claims these are. */
  daemonId: string;
  /** Attempts in flight in this daemon at most (WEBHOOKS_CONCURRENCY). */
  capacity: number;
  logger: Logger;
  /** Target guard (WEBHOOKS_ALLOW_PRIVATE_TARGETS, WEBHOOKS_ALLOW_HTTP); both default to false. */
  allowPrivateTargets?: boolean;
  allowHttp?: boolean;
  /** An endpoint failing continuously this long is disabled (WEBHOOKS_DISABLE_AFTER_FAILING_HOURS). */
  disableAfterFailingHours?: number;
  /** How often to look for due deliveries (retries, other daemons' fan-outs) when nothing wakes it. */
  pollIntervalMs?: number;
  /** Its database steps, watched for stalls: claims and records move the queue. */
  activities?: { claim: Activity; record: Activity };
  /** Told of each attempt once decided (the metrics). */
  onAttempt?: (report: AttemptReport) => void;
}

/**
 * Claims queued deliveries and runs their attempts. An attempt holds nothing but its HTTP
 * exchange: no connection, no worker slot, so thousands can be in flight and a slow endpoint
 * costs only its own max_in_flight. A successful exchange frees its slots (the daemon's and its
 * endpoint's) as soon as it ends; a failed one once it is recorded, so that the next claim
 * already counts it toward the endpoint's circuit breaker. Claims run one at a time, and another starts as soon as
 * there is news (a fan-out, a finished attempt) or the poll interval passes: what finishes
 * meanwhile is claimed together.
 */
export class Deliverer {
  private readonly store: DeliveryStore;
  private readonly sender: HttpSender;
  private readonly attempt: ReturnType<typeof createAttempt>;
  /** Attempts not finished (sent, or being recorded). */
  private readonly inFlight = new Set<Promise<void>>();
  /** Attempts that hold a slot: their exchange is open (or, for a failure, not yet recorded). */
  private open = 0;
  /** The same, per organization: claims serve the organizations holding fewest first. */
  private readonly openFor = new Map<string, number>();
  /** This daemon's requests open per endpoint, published with each claim (recording is not the endpoint's business). */
  private readonly inFlightTo = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  readonly stats = { claimed: 0 };

  private readonly claiming: Activity;

  constructor(private readonly options: DelivererOptions) {
    const { claim, record } = options.activities ?? { claim: new Activity("claim", "the delivery queue"), record: new Activity("record", "attempts into webhook_logs") };
    this.claiming = claim;
    this.store = new DeliveryStore(options.pool, options.daemonId, { disableAfterFailingHours: options.disableAfterFailingHours, activity: record });
    this.sender = new HttpSender({ allowPrivateTargets: options.allowPrivateTargets ?? false, allowHttp: options.allowHttp ?? false });
    this.attempt = createAttempt({
      store: this.store,
      sender: this.sender,
      logger: options.logger,
      stopping: () => !this.running,
      activity: record,
      counted: options.onAttempt,
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** News: deliveries were queued, or an attempt finished. Coalesced into the next claim. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** The deliveries this daemon is attempting (what a release of stray claims keeps). */
  private readonly inFlightIds = new Set<string>();

  get attemptsInFlight(): number {
    return this.inFlight.size;
  }

  /** Stops claiming, lets the attempts in flight finish and record, gives back any claim left. */
  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
    await this.store.releaseClaims().catch((error: unknown) =>
      this.options.logger.warn("could not give back claims; they are released once this daemon is reaped", { error: describeError(error) }),
    );
    await this.sender.close();
  }

  private async run(): Promise<void> {
    const { capacity, logger, pollIntervalMs = 100 } = this.options;
    let failures = 0;
    while (this.running) {
      this.woken = false;
      // capacity bounds the requests open at once; attempts waiting only for their record are
      // cheap, but bounded too (another capacity's worth), so a slow database slows claiming.
      const room = Math.min(500, capacity - this.open, 2 * capacity - this.inFlight.size);
      let claimed = 0;
      if (room > 0) {
        try {
          if (this.store.claimsUncertain) {
            const released = await this.store.releaseStrayClaims(this.inFlightIds);
            if (released > 0) logger.warn("gave back claims whose commit reply was lost: each logged as an attempt never made, to be attempted again", { deliveries: released });
          }
          const deliveries = await this.claiming.step(() =>
            this.store.claim(room, (webhookId) => this.inFlightTo.get(webhookId) ?? 0, {
              ids: [...this.openFor.keys()],
              open: [...this.openFor.values()],
            }),
          );
          failures = 0;
          claimed = deliveries.length;
          this.stats.claimed += claimed;
          for (const delivery of deliveries) this.track(delivery);
        } catch (error) {
          failures += 1;
          const retryInMs = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
          logger.warn(...this.claiming.retryLine(error, retryInMs));
          await delay(retryInMs);
          continue;
        }
      }
      // A full claim suggests more is waiting; otherwise wait for news or the poll interval.
      if (claimed > 0 && claimed === room) continue;
      // News arrived during the claim: claim again after a short gap that lets more news gather
      // (each claim is a transaction; at thousands a second, bigger claims cost less per delivery).
      if (!this.woken) await this.sleep(pollIntervalMs);
      else await delay(CLAIM_GAP_MS);
    }
  }

  private track(delivery: DeliveryContext): void {
    const { webhookId, organizationId } = delivery;
    increment(this.inFlightTo, webhookId, 1);
    increment(this.openFor, organizationId, 1);
    this.open += 1;
    let open = true;
    const exchangeOver = () => {
      if (!open) return;
      open = false;
      this.open -= 1;
      increment(this.inFlightTo, webhookId, -1);
      increment(this.openFor, organizationId, -1);
      this.wake();
    };
    this.inFlightIds.add(delivery.id);
    const tracked = this.attempt(delivery, exchangeOver)
      .catch((error: unknown) => this.options.logger.error("an attempt failed unexpectedly", { error: describeError(error) }))
      .finally(() => {
        exchangeOver();
        this.inFlightIds.delete(delivery.id);
        this.inFlight.delete(tracked);
        this.wake();
      });
    this.inFlight.add(tracked);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }
}

/** Adds `by` to a count, dropping it at zero (the maps hold only what is in flight). */
function increment(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
