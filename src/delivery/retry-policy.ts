export const MAX_RETRY_DELAY_MS = 24 * 60 * 60 * 1000;

export interface RetryInput {
  /** 1-based number of the attempt that just failed. */
  attempt: number;
  maxRetries: number;
  retryBaseSeconds: number;
  /** A uniform random number in [0, 1): the jitter. */
  random: number;
}

/**
 * After a failed attempt: the delay before the next one, or undefined when the delivery is dead
 * (the first attempt plus maxRetries retries have all failed). The delay doubles from
 * retryBaseSeconds (capped at 24 h) and is spread by ±20 % jitter so that a burst of failures
 * does not come back as a burst of retries.
 */
export function nextRetryDelayMs({ attempt, maxRetries, retryBaseSeconds, random }: RetryInput): number | undefined {
  if (attempt > maxRetries) return undefined;
  const base = Math.min(retryBaseSeconds * 1000 * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
  return Math.min(Math.round(base * (0.8 + 0.4 * random)), MAX_RETRY_DELAY_MS);
}

/**
 * A response's Retry-After as milliseconds from `now`: delta-seconds or an HTTP date. Undefined
 * when absent or unparseable; never negative; capped at 24 h (a server cannot park a delivery
 * longer than our own longest backoff).
 */
export function parseRetryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  let ms: number;
  if (/^\d+$/.test(trimmed)) ms = Number(trimmed) * 1000;
  else {
    // An HTTP date names its month; Date.parse alone would take "-5" for a year.
    if (!/[A-Za-z]{3}/.test(trimmed)) return undefined;
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), MAX_RETRY_DELAY_MS);
}
