import type { Pool } from "../db/pool.js";
import { describeError, type Logger } from "../logger.js";
import { REFUSAL_STATUS, type RefusalReason } from "./refusal-reasons.js";

/** How often counts are written: one statement (and one log line) per interval, whatever the traffic. */
export const REFUSAL_FLUSH_INTERVAL_MS = 5_000;
/** Integrations named in one log line; the rest are summed as "others". */
const LOGGED_KEYS = 20;

interface Bucket {
  minute: number;
  integrationId: string | null;
  reason: RefusalReason;
  count: number;
}

/**
 * Counts the inbound requests refused before authentication, per (minute, integration, reason),
 * and writes the counts every few seconds in one call of webhooks._record_intake_refusals (one
 * upserted row of webhooks.intake_refusals per key) with one log line. Requests to unknown ids
 * are counted under a null integration, so the keys — and the rows written — are bounded by the
 * integrations and reasons there are, not by the requests. Counts a write failed for are kept
 * and written with the next ones.
 */
export class RefusalCounter {
  private pending = new Map<string, Bucket>();
  private readonly totals = new Map<RefusalReason, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
  ) {}

  count(integrationId: string | null, reason: RefusalReason, at = Date.now()): void {
    this.add({ minute: Math.floor(at / 60_000) * 60_000, integrationId, reason, count: 1 });
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), REFUSAL_FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops the timer and writes what is counted. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  /** Writes the counts so far (after any write under way). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  /** Prometheus lines: refusals by reason since the daemon started. */
  metrics(): string[] {
    return [
      "# HELP pg_webhooks_intake_refusals_total Inbound requests refused before authentication, by reason (also counted per minute in webhooks.intake_refusals).",
      "# TYPE pg_webhooks_intake_refusals_total counter",
      ...[...this.totals].map(([reason, count]) => `pg_webhooks_intake_refusals_total{reason="${reason}"} ${count}`),
    ];
  }

  private add(bucket: Bucket): void {
    const key = `${bucket.minute} ${bucket.integrationId ?? ""} ${bucket.reason}`;
    const existing = this.pending.get(key);
    if (existing) existing.count += bucket.count;
    else this.pending.set(key, { ...bucket });
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const buckets = [...this.pending.values()];
    this.pending = new Map();
    try {
      await this.pool.query("select webhooks._record_intake_refusals($1::timestamptz[], $2::uuid[], $3::text[], $4::int[], $5::bigint[])", [
        buckets.map((bucket) => new Date(bucket.minute).toISOString()),
        buckets.map((bucket) => bucket.integrationId),
        buckets.map((bucket) => bucket.reason),
        buckets.map((bucket) => REFUSAL_STATUS[bucket.reason]),
        buckets.map((bucket) => bucket.count),
      ]);
    } catch (error) {
      for (const bucket of buckets) this.add(bucket);
      this.logger.warn("could not record refused inbound requests; kept for the next attempt", { error: describeError(error) });
      return;
    }
    this.logger.info("inbound requests refused", summary(buckets));
  }
}

/** One log line's fields: the total and the largest counts by (integration, reason). */
function summary(buckets: Bucket[]): Record<string, unknown> {
  const byKey = new Map<string, { integration_id: string | null; reason: RefusalReason; count: number }>();
  for (const bucket of buckets) {
    const key = `${bucket.integrationId ?? ""} ${bucket.reason}`;
    const entry = byKey.get(key) ?? { integration_id: bucket.integrationId, reason: bucket.reason, count: 0 };
    entry.count += bucket.count;
    byKey.set(key, entry);
  }
  const refusals = [...byKey.values()].sort((a, b) => b.count - a.count);
  const total = refusals.reduce((sum, entry) => sum + entry.count, 0);
  const others = refusals.slice(LOGGED_KEYS).reduce((sum, entry) => sum + entry.count, 0);
  return { total, refusals: refusals.slice(0, LOGGED_KEYS), ...(others ? { others } : {}) };
}
