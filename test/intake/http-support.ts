import { intakeSignature } from "../../src/intake/verify-signature.js";

export interface SignedPostOptions {
  key?: string;
  /** Unix seconds as sent; defaults to now. */
  timestamp?: string;
  /** Overrides the computed x-webhook-signature header value. */
  signatureHeader?: string;
  /** Signs with this secret instead of the integration's. */
  signWith?: string;
  headers?: Record<string, string>;
  /** Header names left out. */
  omit?: string[];
}

/** POSTs `body` (raw text, or raw bytes) to /v2/webhook/integration/:id, signed as a sender would. */
export async function signedPost(
  base: string,
  integration: { id: string; signing_secret: string },
  body: string | Buffer,
  options: SignedPostOptions = {},
): Promise<Response> {
  const key = options.key ?? `key-${Math.random().toString(36).slice(2)}`;
  const timestamp = options.timestamp ?? String(Math.floor(Date.now() / 1000));
  const signature = intakeSignature(options.signWith ?? integration.signing_secret, timestamp, body, key);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-webhook-signature": options.signatureHeader ?? `signature=${signature}`,
    "x-webhook-timestamp": timestamp,
    "idempotency-key": key,
    ...options.headers,
  };
  for (const name of options.omit ?? []) delete headers[name];
  return fetch(`${base}/v2/webhook/integration/${integration.id}`, { method: "POST", headers, body });
}

export const REQUEST_ID = /^req_[A-Za-z0-9_-]+$/;
