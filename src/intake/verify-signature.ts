import { createHmac, timingSafeEqual } from "node:crypto";
import type { RefusalReason } from "./refusal-reasons.js";

/** README "Inbound leads": a timestamp further than this from now is refused (replay window). */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;

/** A `.` would make `<timestamp>.<body>.<key>` ambiguous. */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9_-]{1,200}$/;

const SIGNATURE_HEADER = /^signature=([0-9a-fA-F]{64})$/;
const UNIX_SECONDS = /^\d{1,12}$/;

export interface SignedRequest {
  /** Header values as node gives them (a repeated header is an array and is refused). */
  signature: string | string[] | undefined;
  timestamp: string | string[] | undefined;
  idempotencyKey: string | string[] | undefined;
  body: Buffer;
  secret: string;
  /** Unix seconds; defaults to the clock. */
  now?: number;
}

export type Verification =
  | { ok: true; idempotencyKey: string; timestamp: number }
  | { ok: false; status: 400 | 401; reason: Extract<RefusalReason, `invalid_${string}`>; error: string };

/** HMAC-SHA256 hex of `<timestamp>.<raw body>.<idempotency-key>`, keyed with the secret's UTF-8 bytes. */
export function intakeSignature(secret: string, timestamp: string | number, body: Buffer | string, idempotencyKey: string): string {
  return createHmac("sha256", Buffer.from(secret, "utf8"))
    .update(`${timestamp}.`)
    .update(typeof body === "string" ? Buffer.from(body, "utf8") : body)
    .update(`.${idempotencyKey}`)
    .digest("hex");
}

/**
 * Checks an inbound request's signature headers. Pure and total: every malformed input is a
 * refusal (401 for signature/timestamp problems, 400 for a bad idempotency-key), never a throw.
 */
export function verifySignature(request: SignedRequest): Verification {
  const now = request.now ?? Math.floor(Date.now() / 1000);
  const signature = single(request.signature);
  if (signature === undefined) return { ok: false, status: 401, reason: "invalid_signature", error: "missing x-webhook-signature header" };
  const match = SIGNATURE_HEADER.exec(signature.trim());
  if (!match) return { ok: false, status: 401, reason: "invalid_signature", error: "x-webhook-signature must be signature=<64 hex characters>" };

  const timestampText = single(request.timestamp)?.trim();
  if (timestampText === undefined || timestampText === "") return { ok: false, status: 401, reason: "invalid_timestamp", error: "missing x-webhook-timestamp header" };
  if (!UNIX_SECONDS.test(timestampText)) return { ok: false, status: 401, reason: "invalid_timestamp", error: "x-webhook-timestamp must be an integer (unix seconds)" };
  const timestamp = Number(timestampText);
  if (Math.abs(now - timestamp) > TIMESTAMP_TOLERANCE_SECONDS) {
    return { ok: false, status: 401, reason: "invalid_timestamp", error: `x-webhook-timestamp is more than ${TIMESTAMP_TOLERANCE_SECONDS} seconds from now` };
  }

  const idempotencyKey = single(request.idempotencyKey);
  if (idempotencyKey === undefined || !IDEMPOTENCY_KEY_PATTERN.test(idempotencyKey)) {
    return { ok: false, status: 400, reason: "invalid_idempotency_key", error: "idempotency-key header must match [A-Za-z0-9_-]{1,200}" };
  }

  const expected = Buffer.from(intakeSignature(request.secret, timestampText, request.body, idempotencyKey), "hex");
  const given = Buffer.from(match[1]!.toLowerCase(), "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, status: 401, reason: "invalid_signature", error: "invalid signature" };
  }
  return { ok: true, idempotencyKey, timestamp };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? undefined : value;
}
