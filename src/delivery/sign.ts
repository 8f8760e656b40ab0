import { createHmac } from "node:crypto";

export type SignatureScheme = "standard" | "hmac-hex" | "hmac-prefixed" | "hmac-timestamped";

export interface SigningInput {
  /** The exact bytes sent (serialized once). */
  body: string;
  /** Payload id (evt_…): the Standard Webhooks message id. */
  eventId: string;
  /** Stable across retries: the idempotency key of hmac-timestamped. */
  deliveryId: string;
  /** Attempt time. */
  timestamp: Date;
  /** Live secrets, current first (a rotation adds the previous one until it expires). */
  secrets: readonly string[];
  /** Header for hmac-hex and hmac-prefixed. */
  signatureHeader: string;
}

type Scheme = (input: SigningInput) => Record<string, string>;

const hmac = (key: Buffer | string, content: string) => createHmac("sha256", key).update(content, "utf8");
const unixSeconds = (date: Date) => String(Math.floor(date.getTime() / 1000));

/** Standard Webhooks keys are base64 after the whsec_ prefix. */
export function standardKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");
}

/**
 * The signature schemes (README "What a delivery looks like"), each a pure function from what is sent to the headers that
 * sign it. Adding a scheme is adding an entry (and its name to the configuration check in SQL).
 */
export const signatureSchemes: Record<SignatureScheme, Scheme> = {
  standard: ({ body, eventId, timestamp, secrets }) => {
    const ts = unixSeconds(timestamp);
    const signed = `${eventId}.${ts}.${body}`;
    return {
      "webhook-id": eventId,
      "webhook-timestamp": ts,
      "webhook-signature": secrets.map((s) => `v1,${hmac(standardKey(s), signed).digest("base64")}`).join(" "),
    };
  },
  "hmac-hex": ({ body, timestamp, secrets, signatureHeader }) => ({
    "x-webhook-timestamp": timestamp.toISOString(),
    [signatureHeader.toLowerCase()]: hmac(secrets[0]!, body).digest("hex"),
  }),
  "hmac-prefixed": ({ body, secrets, signatureHeader }) => ({
    [signatureHeader.toLowerCase()]: `sha256=${hmac(secrets[0]!, body).digest("hex")}`,
  }),
  "hmac-timestamped": ({ body, deliveryId, timestamp, secrets }) => {
    const ts = unixSeconds(timestamp);
    return {
      "x-webhook-timestamp": ts,
      "idempotency-key": deliveryId,
      "x-webhook-signature": `signature=${hmac(secrets[0]!, `${ts}.${body}.${deliveryId}`).digest("hex")}`,
    };
  },
};

export function sign(scheme: SignatureScheme, input: SigningInput): Record<string, string> {
  if (input.secrets.length === 0) throw new Error("cannot sign without a secret");
  return signatureSchemes[scheme](input);
}
