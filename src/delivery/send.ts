import { StringDecoder } from "node:string_decoder";
import { Agent, request } from "undici";

/** SPEC 2: webhook_logs.response_body keeps the first 16 KiB; reading stops there. */
export const RESPONSE_BODY_CAP_BYTES = 16 * 1024;

export interface HttpRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

export interface HttpResult {
  status: number | null;
  headers: Record<string, string> | null;
  body: string | null;
  /** Why no response was received (timeout, refused, reset…). */
  error: string | null;
  durationMs: number;
}

/**
 * POSTs with a pooled keep-alive undici Agent. Never throws: a failure is a result. Redirects are
 * not followed (a 3xx is returned like any other status). The whole exchange, body included,
 * must finish within timeoutMs.
 */
export class HttpSender {
  private readonly agent: Agent;

  constructor(options: { connectionsPerOrigin?: number } = {}) {
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      connections: options.connectionsPerOrigin ?? 128,
      pipelining: 1,
    });
  }

  async send({ url, headers, body, timeoutMs }: HttpRequest): Promise<HttpResult> {
    const started = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new TimeoutError(timeoutMs)), timeoutMs);
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const response = await request(url, {
        method: "POST",
        headers,
        body,
        dispatcher: this.agent,
        signal: abort.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const chunks: Buffer[] = [];
      let length = 0;
      for await (const chunk of response.body) {
        const buffer = chunk as Buffer;
        chunks.push(buffer);
        length += buffer.length;
        if (length >= RESPONSE_BODY_CAP_BYTES) {
          response.body.destroy();
          break;
        }
      }
      return {
        status: response.statusCode,
        headers: flattenHeaders(response.headers),
        body: decodeText(Buffer.concat(chunks).subarray(0, RESPONSE_BODY_CAP_BYTES)),
        error: null,
        durationMs: elapsed(),
      };
    } catch (error) {
      const reason = abort.signal.aborted ? abort.signal.reason : error;
      return { status: null, headers: null, body: null, error: describeFailure(reason), durationMs: elapsed() };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

class TimeoutError extends Error {
  override name = "TimeoutError";
  constructor(readonly timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof TimeoutError) return error.message;
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const code = (error as { code?: string }).code ?? (cause as { code?: string } | undefined)?.code;
    const message = cause instanceof Error && cause.message ? cause.message : error.message;
    return code && !message.includes(code) ? `${code}: ${message}` : message;
  }
  return String(error);
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

/**
 * UTF-8 with replacement characters; NUL cannot be stored in a Postgres text column. A character
 * cut by the 16 KiB cap is dropped (StringDecoder holds it back): decoding it would store U+FFFD,
 * 3 bytes, and the text would exceed the cap.
 */
function decodeText(bytes: Buffer): string {
  return new StringDecoder("utf8").write(bytes).replaceAll("\u0000", "");
}
