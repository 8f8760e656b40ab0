import dns from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { Agent, buildConnector, request } from "undici";
import { checkResolved, checkUrl, type TargetPolicy } from "./target-guard.js";

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
  /**
   * Nothing was sent and retrying cannot help: the target guard refused the URL or an address it
   * resolved to, or the payload is over the 256 KiB limit.
   */
  refused?: boolean;
}

/**
 * POSTs with a pooled keep-alive undici Agent. Never throws: a failure is a result. Redirects are
 * not followed (a 3xx is returned like any other status). The whole exchange, body included,
 * must finish within timeoutMs.
 *
 * The target guard (SPEC 1) lives in the Agent's connector, as in Svix: every new connection
 * resolves its host once, refuses it if ANY address is refused, and connects to the addresses it
 * checked, never resolving again (no DNS rebinding). Host header and TLS servername stay the
 * URL's host. Both flags default to false, the SPEC defaults.
 */
export class HttpSender {
  private readonly agent: Agent;
  private readonly policy: TargetPolicy;

  constructor(options: { connectionsPerOrigin?: number; allowPrivateTargets?: boolean; allowHttp?: boolean } = {}) {
    this.policy = { allowPrivateTargets: options.allowPrivateTargets ?? false, allowHttp: options.allowHttp ?? false };
    const guarded = !(this.policy.allowPrivateTargets && this.policy.allowHttp);
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      connections: options.connectionsPerOrigin ?? 128,
      pipelining: 1,
      // With both flags on every http(s) address is allowed: the plain connector then.
      ...(guarded ? { connect: guardedConnector(this.policy) } : {}),
    });
  }

  async send({ url, headers, body, timeoutMs }: HttpRequest): Promise<HttpResult> {
    const verdict = checkUrl(url, this.policy);
    if (!verdict.allowed) return refusedResult(verdict.reason, 0);
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
      if (error instanceof TargetRefusedError) return refusedResult(error.reason, elapsed());
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

/** Raised inside the connector when the guard refuses the host's addresses. */
export class TargetRefusedError extends Error {
  override name = "TargetRefusedError";
  readonly code = "ERR_TARGET_REFUSED";
  constructor(readonly reason: string) {
    super(`refused: ${reason}`);
  }
}

function refusedResult(reason: string, durationMs: number): HttpResult {
  return { status: null, headers: null, body: null, error: `refused: ${reason}`, durationMs, refused: true };
}

/**
 * A connector that checks before connecting. An IP-literal host is checked here (net.connect
 * does not call `lookup` for one); a name is resolved and checked in `lookup`, and net.connect
 * uses exactly the addresses that lookup returns.
 */
function guardedConnector(policy: TargetPolicy): buildConnector.connector {
  const connectors = new Map<string, buildConnector.connector>(
    ["http:", "https:"].map((protocol) => [protocol, buildConnector({ timeout: 10_000, lookup: guardedLookup(protocol, policy) })]),
  );
  return (options, callback) => {
    const connect = connectors.get(options.protocol);
    const host = options.hostname.replace(/^\[(.*)\]$/, "$1");
    const verdict = !connect
      ? { allowed: false as const, reason: `only http:// and https:// targets are delivered to` }
      : isIP(host)
        ? checkResolved(host, options.protocol, [host], policy)
        : { allowed: true as const };
    if (!verdict.allowed) {
      queueMicrotask(() => callback(new TargetRefusedError(verdict.reason), null));
      return;
    }
    connect!(options, callback);
  };
}

function guardedLookup(protocol: string, policy: TargetPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { family: options.family, hints: options.hints, all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const verdict = checkResolved(hostname, protocol, addresses.map((entry) => entry.address), policy);
      if (!verdict.allowed) return callback(new TargetRefusedError(verdict.reason), "", 0);
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
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
