import type { Task } from "graphile-worker";
import type { Logger } from "../logger.js";
import { userAgent } from "../package-info.js";
import type { AttemptRecord, DeliveryContext, DeliveryStore, EndpointHealth } from "./delivery-store.js";
import { nextRetryDelayMs, parseRetryAfterMs } from "./retry-policy.js";
import type { HttpResult, HttpSender } from "./send.js";
import { sign } from "./sign.js";

/** SPEC 5: an event whose body exceeds 256 KiB is not sent. */
export const MAX_PAYLOAD_BYTES = 256 * 1024;

export interface DeliverDependencies {
  store: DeliveryStore;
  sender: HttpSender;
  logger: Logger;
  random?: () => number;
}

/**
 * One attempt of one delivery: load → sign → POST → record. HTTP failures are data (a log row
 * and a scheduled retry), never a thrown error; only a database failure throws, and then
 * graphile-worker runs the job again.
 */
export function createDeliverTask({ store, sender, logger, random = Math.random }: DeliverDependencies): Task {
  return async (payload) => {
    const { deliveryId } = payload as { deliveryId: string };
    const delivery = await store.load(deliveryId);
    if (!delivery || delivery.state === "succeeded" || delivery.state === "dead") return;
    const attempt = delivery.attempts + 1;

    if (!delivery.isActive && !delivery.targeted) {
      await store.record({ deliveryId, state: "dead", attempt: delivery.attempts, retryAt: null, lastError: "endpoint is inactive", log: null });
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

    const bodyBytes = Buffer.byteLength(delivery.body);
    const result: HttpResult =
      bodyBytes > MAX_PAYLOAD_BYTES
        ? { status: null, headers: null, body: null, error: `payload of ${bodyBytes} bytes exceeds the 256 KiB limit; not sent`, durationMs: 0, refused: true }
        : await sender.send({ url: delivery.url, headers, body: delivery.body, timeoutMs: delivery.timeoutSeconds * 1000 });

    const record = decideOutcome(delivery, attempt, result, random());
    record.log = {
      organization_id: delivery.organizationId,
      webhook_id: delivery.webhookId,
      event_id: delivery.eventId,
      delivery_id: delivery.id,
      event_type: delivery.eventType,
      attempt,
      url: delivery.url,
      request_headers: headers,
      response_status: result.status,
      response_headers: result.headers,
      response_body: result.body,
      // The reason the attempt failed (timeout, "HTTP 500", a redirect's Location), readable in one SELECT.
      error: record.lastError,
      duration_ms: result.durationMs,
      success: record.state === "succeeded",
    };
    await store.record(record);
    if (record.state !== "succeeded") {
      logger.debug("attempt failed", { deliveryId, attempt, status: result.status, state: record.state });
    }
  };
}

/**
 * Pure: what an attempt's result means for the delivery and its endpoint. 410 Gone ends the
 * delivery at once (the store disables the endpoint). Retries count from the last replay.
 */
export function decideOutcome(
  delivery: Pick<DeliveryContext, "id" | "maxRetries" | "retryBaseSeconds"> & Partial<Pick<DeliveryContext, "attemptsBeforeReplay">>,
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
