import type { QueryResult } from "pg";
import type { Pool } from "../db/pool.js";
import type { Activity } from "../daemon/activity.js";
import { Batcher } from "../util/batcher.js";
import { CLAIM_PLANNER_SETTINGS, claimStatement, claimedDeliveriesStatement, lockEndpointsStatement, type ClaimedRow } from "./claim-statement.js";
import type { PartitionKey, PartitionKeys } from "./partition-keys.js";
import { releaseClaimsStatement } from "./release-claims-statement.js";
import { recordStatement, type AttemptRecord } from "./record-statement.js";
import type { SignatureScheme } from "./sign.js";

export type { AttemptLog, AttemptRecord, EndpointHealth } from "./record-statement.js";

/** Everything one attempt needs: the delivery, its event's exact body, its endpoint. */
export interface DeliveryContext {
  id: string;
  attempts: number;
  /** Attempts made before the last webhooks.replay: the retry budget counts from here. */
  attemptsBeforeReplay: number;
  organizationId: string;
  eventId: string;
  eventType: string;
  body: string;
  /** When the event was written (its transaction's start): the metrics' write → 2xx lag starts here. */
  occurredAt: Date;
  /** Set when the event is too large to send: the attempt is logged as failed with this reason. */
  notSentReason: string | null;
  webhookId: string;
  /** Set for webhook.test: sent even to an inactive endpoint. */
  targeted: boolean;
  url: string;
  secrets: string[];
  signatureScheme: SignatureScheme;
  signatureHeader: string;
  isActive: boolean;
  maxRetries: number;
  retryBaseSeconds: number;
  timeoutSeconds: number;
  headers: Record<string, string>;
  /** Where its rows are (partition-keys.ts): its record finds them by these. */
  partitionKeys: PartitionKeys;
}

export interface DeliveryStoreOptions {
  /** An endpoint whose attempts have all failed for this long is disabled. */
  disableAfterFailingHours?: number;
  /** Record statements are its steps, watched for stalls. */
  activity?: Activity;
}

/** How long a finished attempt waits for others to be recorded with it (the endpoint is not kept waiting). */
const RECORD_LINGER_MS = 5;

/** WEBHOOKS_DISABLE_AFTER_FAILING_HOURS' default: 5 days. */
export const DEFAULT_DISABLE_AFTER_FAILING_HOURS = 120;

interface ContextRow {
  id: string;
  attempts: number;
  attempts_before_replay: number;
  organization_id: string;
  event_id: string;
  event_type: string;
  body: string;
  occurred_at: Date;
  not_sent_reason: string | null;
  webhook_id: string;
  targeted: boolean;
  url: string;
  secret: string;
  previous_secret: string | null;
  signature_scheme: SignatureScheme;
  signature_header: string;
  is_active: boolean;
  max_retries: number;
  retry_base_seconds: number;
  timeout_seconds: number;
  headers: Record<string, string>;
  delivery_key: PartitionKey;
  event_key: PartitionKey;
}

/**
 * The daemon's side of webhooks.delivery_queue: claims queued deliveries within every endpoint's
 * limits (claim-statement.ts) and records attempts in batches (record-statement.ts). At thousands
 * of deliveries a second one statement per attempt would be the bottleneck. A record's promise
 * resolves only once its log row is committed.
 */
export class DeliveryStore {
  private readonly recorder: Batcher<AttemptRecord, void>;
  private readonly disableAfterFailingHours: number;
  private readonly activity: Activity | undefined;

  constructor(
    private readonly pool: Pool,
    /** The registered daemon whose claims these are (webhooks.daemons.id). */
    private readonly daemonId: string,
    options: DeliveryStoreOptions = {},
  ) {
    this.disableAfterFailingHours = options.disableAfterFailingHours ?? DEFAULT_DISABLE_AFTER_FAILING_HOURS;
    this.activity = options.activity;
    // One statement in flight, and a record waits up to RECORD_LINGER_MS for others: fewer,
    // larger statements cost less per delivery on both sides (bench: 28 → 90 per batch).
    this.recorder = new Batcher((records) => this.recordMany(records), { maxBatch: 500, maxInFlight: 1, lingerMs: RECORD_LINGER_MS });
  }

  /**
   * Claims up to `limit` deliveries that their endpoints have room for now (claim-statement.ts);
   * `ownInFlight` tells this daemon's attempts in flight to an endpoint, `organizations` its open
   * attempts per organization.
   */
  async claim(
    limit: number,
    ownInFlight: (webhookId: string) => number,
    organizations: { ids: string[]; open: number[] } = { ids: [], open: [] },
  ): Promise<DeliveryContext[]> {
    const client = await this.pool.connect();
    try {
      // One round trip: begin, the planner settings and step 1 (which takes no parameters).
      const results = (await client.query(`begin; ${CLAIM_PLANNER_SETTINGS}; ${lockEndpointsStatement().text}`)) as unknown as QueryResult<{ webhook_id: string }>[];
      const webhookIds = results.at(-1)!.rows.map((endpoint) => endpoint.webhook_id);
      const { rows: claimed } =
        webhookIds.length === 0
          ? { rows: [] as ClaimedRow[] }
          : await client.query<ClaimedRow>(
              claimStatement({ webhookIds, ownInFlight: webhookIds.map(ownInFlight), daemonId: this.daemonId, limit, organizations }),
            );
      const { rows } = claimed.length === 0 ? { rows: [] as ContextRow[] } : await client.query<ContextRow>(claimedDeliveriesStatement(claimed));
      try {
        await client.query("commit");
      } catch (error) {
        // The commit may have happened and only its reply been lost: these claims are then held
        // by this daemon, which never got them. releaseStrayClaims gives them back.
        this.claimsUncertain = true;
        throw error;
      }
      return rows.map(toContext);
    } catch (error) {
      await client.query("rollback").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  record(record: AttemptRecord): Promise<void> {
    return this.recorder.add(record);
  }

  /** Set when a claim's COMMIT failed: claims this daemon does not know of may be held in its name. */
  claimsUncertain = false;

  /**
   * Gives back this daemon's claims other than `inFlight` (the deliveries it is attempting), each
   * logged as an attempt never made, after a claim's COMMIT failed: until then nothing else would
   * (the daemon is alive, so no reaper touches them) and they would wait for its restart.
   */
  async releaseStrayClaims(inFlight: Iterable<string>): Promise<number> {
    const { rowCount } = await this.pool.query(releaseClaimsStatement({ daemonId: this.daemonId, keep: [...inFlight] }));
    // Only once given back: a release that fails is tried again before the next claim.
    this.claimsUncertain = false;
    return rowCount ?? 0;
  }

  /** Gives back every claim this daemon still holds (at shutdown, once nothing is in flight). */
  async releaseClaims(): Promise<number> {
    const { rowCount } = await this.pool.query(releaseClaimsStatement({ daemonId: this.daemonId }));
    return rowCount ?? 0;
  }

  private async recordMany(records: AttemptRecord[]): Promise<void[]> {
    const statement = recordStatement(records, this.daemonId, this.disableAfterFailingHours);
    await (this.activity ? this.activity.step(() => this.pool.query(statement)) : this.pool.query(statement));
    return records.map(() => undefined);
  }
}

function toContext(row: ContextRow): DeliveryContext {
  return {
    id: row.id,
    attempts: row.attempts,
    attemptsBeforeReplay: row.attempts_before_replay,
    organizationId: row.organization_id,
    eventId: row.event_id,
    eventType: row.event_type,
    body: row.body,
    occurredAt: row.occurred_at,
    notSentReason: row.not_sent_reason,
    webhookId: row.webhook_id,
    targeted: row.targeted,
    url: row.url,
    secrets: row.previous_secret ? [row.secret, row.previous_secret] : [row.secret],
    signatureScheme: row.signature_scheme,
    signatureHeader: row.signature_header,
    isActive: row.is_active,
    maxRetries: row.max_retries,
    retryBaseSeconds: row.retry_base_seconds,
    timeoutSeconds: row.timeout_seconds,
    headers: row.headers,
    partitionKeys: { delivery: row.delivery_key, event: row.event_key },
  };
}
