import { z } from "zod";

/**
 * The management API's resources, one zod schema each: requests are validated with them, answers
 * serialized with them, and the OpenAPI document (GET /api/v1/openapi.json) is generated from them.
 * The database checks the same values again (its triggers are the rules; a refusal there is a 400
 * naming the field too).
 */

export const ErrorBody = z.object({
  error: z.string(),
  field: z.string().nullable().optional(),
}).meta({ id: "Error" });

const SIGNATURE_SCHEMES = ["standard", "hmac-hex", "hmac-prefixed", "hmac-timestamped"] as const;

/** How deep a JSON value nests, counted without recursion: a hostile body may nest thousands deep. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || typeof item !== "object") continue;
    deepest = Math.max(deepest, depth);
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** A filter nests at most this deep (the database also bounds its size). */
export const MAX_FILTER_DEPTH = 32;

/** What a client may set on a webhook (POST: url and events required; PATCH: any of them). */
const webhookFields = {
  url: z.string().min(1).max(2048).describe("Absolute https:// URL (http:// only where the daemon allows it)."),
  events: z.array(z.string().min(1).max(200)).min(1).max(100).describe("Event types (GET /api/v1/event-types), or [\"*\"] for all."),
  name: z.string().min(1).max(200).describe("Defaults to description, else the URL's host."),
  description: z.string().min(1).max(200).describe("Taken as the name when none is given."),
  max_retries: z.number().int().min(0).max(25),
  retry_base_seconds: z.number().int().min(1).max(86_400),
  timeout: z.number().int().min(1).max(60).describe("Seconds an attempt may take (timeout_seconds)."),
  is_active: z.boolean(),
  paused: z.boolean().describe("Deliveries wait, and are sent once unpaused."),
  signature_scheme: z.enum(SIGNATURE_SCHEMES),
  signature_header: z.string().min(1).max(100),
  filter: z.record(z.string(), z.unknown()).nullable()
    .refine((filter) => filter === null || depthOf(filter) <= MAX_FILTER_DEPTH, `nested more than ${MAX_FILTER_DEPTH} levels deep`)
    .describe("Only events whose payload contains this JSON object."),
  headers: z.record(z.string(), z.string()).describe("Static headers sent with every attempt (values are never shown again)."),
  max_in_flight: z.number().int().min(1).max(1000),
  rate_limit_per_second: z.number().positive().nullable(),
  ordering: z.enum(["none", "fifo"]).describe("fifo: deliveries concerning one resource (data.id) one at a time, in commit order."),
};

export const WebhookCreate = z.object(webhookFields).partial().required({ url: true, events: true }).strict().meta({ id: "WebhookCreate" });
export const WebhookUpdate = z.object(webhookFields).omit({ description: true }).partial().strict().meta({ id: "WebhookUpdate" });

export const Webhook = z.object({
  id: z.uuid(),
  name: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  is_active: z.boolean(),
  paused: z.boolean(),
  disabled_reason: z.string().nullable(),
  max_retries: z.number().int(),
  retry_base_seconds: z.number().int(),
  timeout: z.number().int(),
  signature_scheme: z.enum(SIGNATURE_SCHEMES),
  signature_header: z.string(),
  filter: z.record(z.string(), z.unknown()).nullable(),
  headers: z.record(z.string(), z.string()).describe("Header names; every value reads [redacted]."),
  max_in_flight: z.number().int(),
  rate_limit_per_second: z.number().nullable(),
  ordering: z.enum(["none", "fifo"]),
  failing_since: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
}).meta({ id: "Webhook" });

/** A webhook with its secret: the answer of POST /webhooks only. */
export const WebhookWithSecret = Webhook.extend({ secret: z.string() }).meta({ id: "WebhookWithSecret" });

export const WebhookList = z.object({ data: z.array(Webhook), next_cursor: z.string().nullable() }).meta({ id: "WebhookList" });

export const IdParams = z.object({ id: z.uuid() });

export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(200).optional(),
});

export const EventType = z.object({ name: z.string(), description: z.string().nullable() }).meta({ id: "EventType" });

export const DELIVERY_STATES = ["pending", "succeeded", "failed", "dead"] as const;

export const Delivery = z.object({
  id: z.uuid(),
  webhook_id: z.uuid(),
  event_id: z.string(),
  event_type: z.string().nullable().describe("Null once the event has expired."),
  status: z.enum(DELIVERY_STATES).describe("pending: not attempted yet; failed: a retry is scheduled; dead: no more retries."),
  attempt_count: z.number().int().describe("Attempts made (over replays too)."),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
  completed_at: z.string().nullable(),
}).meta({ id: "Delivery" });

export const DeliveryList = z.object({ data: z.array(Delivery), next_cursor: z.string().nullable() }).meta({ id: "DeliveryList" });

export const DeliveriesQuery = ListQuery.extend({
  status: z.enum(DELIVERY_STATES).optional(),
  event_type: z.string().min(1).max(200).optional(),
});

export const Attempt = z.object({
  attempt: z.number().int(),
  created_at: z.string(),
  url: z.string(),
  success: z.boolean(),
  duration_ms: z.number().int().nullable(),
  error: z.string().nullable(),
  request_headers: z.record(z.string(), z.unknown()),
  request_body: z.string().nullable(),
  response_status: z.number().int().nullable(),
  response_headers: z.record(z.string(), z.unknown()).nullable(),
  response_body: z.string().nullable(),
}).meta({ id: "Attempt" });

export const DeliveryWithAttempts = Delivery.extend({ attempts: z.array(Attempt) }).meta({ id: "DeliveryWithAttempts" });

export const ReplayAnswer = z.object({ status: z.enum(["queued", "already queued", "in flight"]) }).meta({ id: "ReplayAnswer" });

export const RecoverBody = z.object({
  since: z.iso.datetime({ offset: true }).describe("Deliveries created at or after this time…"),
  until: z.iso.datetime({ offset: true }).optional().describe("…and before this one (default: now)."),
}).strict().meta({ id: "RecoverBody" });
