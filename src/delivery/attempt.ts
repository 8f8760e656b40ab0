import { setTimeout as delay } from "node:timers/promises";
import { Activity } from "../daemon/activity.js";
import { describeError, type Logger } from "../logger.js";
import { userAgent } from "../package-info.js";
import { isDataError } from "../util/isolate-failures.js";
import type { AttemptRecord, DeliveryContext, DeliveryStore, EndpointHealth } from "./delivery-store.js";
import { nextRetryDelayMs, parseRetryAfterMs } from "./retry-policy.js";
import type { HttpResult, HttpSender } from "./send.js";
import { sign } from "./sign.js";

/** What an attempt needs of its neighbours: narrow, so that it can be tested on its own. */
export interface AttemptDependencies {
  store: Pick<DeliveryStore, "record">;
  sender: Pick<HttpSender, "send">;
  logger: Logger;
  random?: () => number;
  /** True once the daemon stops: a record that cannot be written is then given up (the claim is released). */
  stopping?: () => boolean;
  /** The store's record steps (their retry lines name a lock's holder). */
  activity?: Activity;
  /** Told each attempt's outcome once it is decided (metrics). */
  counted?: (report: AttemptReport) => void;
}

/** What an attempt came to, as pg_webhooks_attempts_total counts it: refused means nothing was sent. */
export type AttemptOutcome = "success" | "failed" | "dead" | "refused";

/** One attempt for the metrics: its outcome, how long it took, and for a success its event's write → 2xx. */
export interface AttemptReport {
  outcome: AttemptOutcome;
  durationMs: number;
  lagMs?: number;
}

/**
 * One attempt of one claimed delivery: sign → POST → record. HTTP failures are data (a log row
 * and a scheduled retry), never a thrown error. Recording is retried until it commits: a record
 * that fails alone because of its own contents is retried with its log reduced to the outcome,
 * so one bad attempt cannot hold its delivery claimed forever.
 */
export function createAttempt({
  store,
  sender,
  logger,
  random = Math.random,
  stopping = () => false,
  activity = new Activity("record", "attempts into webhook_logs"),
  counted = () => undefined,
}: AttemptDependencies) {
  /** `onExchangeOver` runs once the attempt no longer counts toward its endpoint's in-flight limit. */
  return async (delivery: DeliveryContext, onExchangeOver: () => void = () => undefined): Promise<void> => {
    const deliveryId = delivery.id;
    const attempt = delivery.attempts + 1;

    if (!delivery.isActive && !delivery.targeted) {
      onExchangeOver();
      await recordUntilCommitted({
        deliveryId, state: "dead", attempt: delivery.attempts, retryAt: null, lastError: "endpoint is inactive", log: null, partitionKeys: delivery.partitionKeys,
      });
      return;
    }
    const timestamp = new Date();
    const headers: Record<string, string> = {
      ...delivery.headers,
      "content-type": "application/json",
      "user-agent": userAgent,
      "x-webhook-event": delivery.eventType,
      "x-webhook-delivery-id": delivery.id,
      ...sign(delivery.signatureScheme, {
        body: delivery.body,
        eventId: delivery.eventId,
        deliveryId: delivery.id,
        timestamp,
        secrets: delivery.secrets,
        signatureHeader: delivery.signatureHeader,
      }),
    };
    // What is logged: the same headers, the static ones' values redacted (they often carry
    // credentials). The configuration's validation keeps their names apart from the others'.
    const loggedHeaders = { ...headers };
    for (const name in delivery.headers) loggedHeaders[name] = REDACTED_HEADER_VALUE;

    const result: HttpResult =
      delivery.notSentReason !== null
        ? { status: null, headers: null, body: null, error: delivery.notSentReason, durationMs: 0, refused: true }
        : await sender.send({ url: delivery.url, headers, body: delivery.body, timeoutMs: delivery.timeoutSeconds * 1000 });
    const record = decideOutcome(delivery, attempt, result, random());
    counted({
      outcome: result.refused ? "refused" : record.state === "succeeded" ? "success" : record.state,
      durationMs: result.durationMs,
      ...(record.state === "succeeded" ? { lagMs: Date.now() - delivery.occurredAt.getTime() } : {}),
    });
    // A success frees the endpoint's slot at once; a failure only once it is recorded, so that the
    // next claim already counts it toward the endpoint's circuit breaker.
    if (record.state === "succeeded") onExchangeOver();

    record.log = {
      organization_id: delivery.organizationId,
      webhook_id: delivery.webhookId,
      event_id: delivery.eventId,
      delivery_id: delivery.id,
      event_type: delivery.eventType,
      attempt,
      url: delivery.url,
      request_headers: loggedHeaders,
      response_status: result.status,
      response_headers: result.headers,
      response_body: result.body,
      // The reason the attempt failed (timeout, "HTTP 500", a redirect's Location), readable in one SELECT.
      error: record.lastError,
      duration_ms: result.durationMs,
      success: record.state === "succeeded",
    };
    await recordUntilCommitted(record);
    if (record.state !== "succeeded") {
      onExchangeOver();
      logger.debug("attempt failed", { deliveryId, attempt, status: result.status, state: record.state });
    }
  };

  async function recordUntilCommitted(record: AttemptRecord): Promise<void> {
    for (let failures = 1; ; failures++) {
      try {
        await store.record(record);
        return;
      } catch (error) {
        if (stopping()) {
          logger.warn("could not record an attempt before stopping; the delivery will be attempted again", { deliveryId: record.deliveryId, error: describeError(error) });
          return;
        }
        if (isDataError(error) && record.log) {
          // Refused for its contents: first without the other side's details, then without a log row.
          logger.error("an attempt's record was refused; recording it with less detail", { deliveryId: record.deliveryId, error: describeError(error) });
          const reduced = record.log.request_headers === REDUCED ? null : reducedLog(record.log, error);
          record = { ...record, log: reduced, endpoint: reduced ? record.endpoint : null };
        } else {
          const retryInMs = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
          logger.warn(...activity.retryLine(error, retryInMs, { deliveryId: record.deliveryId }));
          await delay(retryInMs);
        }
      }
    }
  }
}

/**
 * webhook_logs.request_headers holds a configuration's static headers under this value: their
 * names show which were sent, never what (README "Tenancy"). The receiver gets the real values.
 */
export const REDACTED_HEADER_VALUE = "[redacted]";

/** The log row without what the attempt's other side controls, for a row the database refused. */
const REDUCED: Record<string, string> = {};

function reducedLog(log: NonNullable<AttemptRecord["log"]>, error: unknown): NonNullable<AttemptRecord["log"]> {
  return {
    ...log,
    request_headers: REDUCED,
    response_headers: null,
    response_body: null,
    error: `${log.error ?? (log.success ? "succeeded" : "failed")}; the attempt's details could not be logged (${describeError(error).message as string})`.slice(0, 2000),
  };
}

/**
 * Pure: what an attempt's result means for the delivery and its endpoint. 410 Gone ends the
 * delivery at once (the store disables the endpoint). Retries count from the last replay.
 */
export function decideOutcome(
  delivery: Pick<DeliveryContext, "id" | "maxRetries" | "retryBaseSeconds" | "partitionKeys"> & Partial<Pick<DeliveryContext, "attemptsBeforeReplay">>,
  attempt: number,
  result: HttpResult,
  random: number,
  now = Date.now(),
): AttemptRecord {
  // Literal objects, not `{ ...base, … }`: this runs once per attempt, and a spread with extra
  // properties was the task's most expensive line in the drain profile.
  const outcome = (state: AttemptRecord["state"], retryAt: Date | null, lastError: string | null, endpoint: EndpointHealth | null): AttemptRecord => ({
    deliveryId: delivery.id,
    state,
    attempt,
    retryAt,
    lastError,
    log: null,
    endpoint,
    partitionKeys: delivery.partitionKeys,
  });
  if (result.status !== null && result.status >= 200 && result.status < 300) return outcome("succeeded", null, null, "up");
  const lastError = result.error ?? describeStatus(result);
  if (result.status === 410) return outcome("dead", null, "HTTP 410 Gone: endpoint disabled", "gone");
  // An oversized event or a refused target (target-guard.ts) was never sent: the endpoint is not
  // to blame, and retrying cannot help.
  const notSent = result.refused === true;
  const endpoint = notSent ? null : "down";
  const delay = notSent
    ? undefined
    : nextRetryDelayMs({
        attempt: attempt - (delivery.attemptsBeforeReplay ?? 0),
        maxRetries: delivery.maxRetries,
        retryBaseSeconds: delivery.retryBaseSeconds,
        random,
      });
  if (delay === undefined) return outcome("dead", null, lastError, endpoint);
  // The server's Retry-After wins when it asks for more patience than our backoff.
  const retryAfter = parseRetryAfterMs(result.headers?.["retry-after"], now) ?? 0;
  return outcome("failed", new Date(now + Math.max(delay, retryAfter)), lastError, endpoint);
}

function describeStatus(result: HttpResult): string {
  const location = result.headers?.location;
  if (result.status !== null && result.status >= 300 && result.status < 400) {
    return `HTTP ${result.status} redirect not followed${location ? ` (Location: ${location})` : ""}`;
  }
  return `HTTP ${result.status}`;
}
