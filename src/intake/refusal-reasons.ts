/**
 * Why an inbound request was refused before it was authenticated, and the status it was answered
 * with. These are counted (webhooks.intake_refusals, README "Inbound leads"), not recorded one
 * row per request: whoever sends them need not hold a secret, so their number is the sender's choice.
 */
export const REFUSAL_STATUS = {
  /** The path's id is not a uuid, or no integration has it. */
  unknown_integration: 404,
  inactive_integration: 404,
  method_not_allowed: 405,
  /** Content-Length, or the bytes received, over 1 MiB. */
  body_too_large: 413,
  /** The body did not arrive within WEBHOOKS_HTTP_READ_TIMEOUT_MS. */
  body_timeout: 408,
  /** WEBHOOKS_INTAKE_BODY_MEMORY_MB of bodies were being received already. */
  busy: 503,
  /** Missing, malformed or wrong x-webhook-signature. */
  invalid_signature: 401,
  /** Missing or malformed x-webhook-timestamp, or one more than 300 s from now. */
  invalid_timestamp: 401,
  /** A missing idempotency-key, or one outside [A-Za-z0-9_-]{1,200}. */
  invalid_idempotency_key: 400,
  /** The retired v1 path. */
  retired_endpoint: 410,
} as const;

export type RefusalReason = keyof typeof REFUSAL_STATUS;
