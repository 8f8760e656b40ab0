import dns from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { Agent, buildConnector, type Dispatcher } from "undici";
import { checkResolved, checkTarget, type CheckedTarget, type TargetPolicy } from "./target-guard.js";

/** webhook_logs.response_body keeps the first 16 KiB; reading stops there. */
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
 * The target guard (README "Configuration") lives in the Agent's connector, as in Svix: every new connection
 * resolves its host once, refuses it if ANY address is refused, and connects to the addresses it
 * checked, never resolving again (no DNS rebinding). Host header and TLS servername stay the
 * URL's host. Both flags default to false (docs/configuration.md).
 */
export class HttpSender {
  private readonly agent: Agent;
  private readonly policy: TargetPolicy;
  private readonly targets: CheckedTargets;

  constructor(options: { connectionsPerOrigin?: number | null; allowPrivateTargets?: boolean; allowHttp?: boolean } = {}) {
    this.policy = { allowPrivateTargets: options.allowPrivateTargets ?? false, allowHttp: options.allowHttp ?? false };
    this.targets = new CheckedTargets(this.policy);
    const guarded = !(this.policy.allowPrivateTargets && this.policy.allowHttp);
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 300_000,
      // Unlimited by default: each endpoint's max_in_flight bounds its connections, and a request
      // that waited here for a connection would spend its timeout before reaching the endpoint.
      connections: options.connectionsPerOrigin ?? null,
      pipelining: 1,
      // With both flags on every http(s) address is allowed: the plain connector then.
      ...(guarded ? { connect: guardedConnector(this.policy) } : {}),
    });
  }

  /**
   * One exchange through the Agent's dispatch API (a handler, no response stream or abort
   * signal: per delivery this costs under half of `undici.request`). The result settles once:
   * on the response's end, at the body cap, on an error, or when timeoutMs runs out (the
   * exchange is then aborted as soon as undici hands over its controller).
   */
  send({ url, headers, body, timeoutMs }: HttpRequest): Promise<HttpResult> {
    const target = this.targets.resolve(url);
    if (!target.allowed) return Promise.resolve(refusedResult(target.reason, 0));
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    return new Promise<HttpResult>((resolve) => {
      let settled = false;
      let controller: Dispatcher.DispatchController | undefined;
      let status: number | null = null;
      let responseHeaders: Record<string, string> | null = null;
      const chunks: Buffer[] = [];
      let length = 0;
      const settle = (result: HttpResult, abortWith?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
        if (abortWith) controller?.abort(abortWith);
      };
      const response = (): HttpResult => ({
        status,
        headers: responseHeaders,
        body: decodeText(Buffer.concat(chunks, length).subarray(0, RESPONSE_BODY_CAP_BYTES)),
        error: null,
        durationMs: elapsed(),
      });
      let timeout: TimeoutError | undefined; // created only when it happens: an Error captures a stack
      const timer = setTimeout(() => {
        timeout = new TimeoutError(timeoutMs);
        settle(failedResult(timeout, elapsed()), timeout);
      }, timeoutMs);
      this.agent.dispatch(
        { origin: target.origin, path: target.path, method: "POST", headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
        {
          onRequestStart(started) {
            controller = started;
            if (timeout) started.abort(timeout);
          },
          onResponseStart(_controller, statusCode, rawHeaders) {
            status = statusCode;
            responseHeaders = flattenHeaders(rawHeaders);
          },
          onResponseData(_controller, chunk) {
            if (settled) return;
            chunks.push(chunk);
            length += chunk.length;
            // Reading stops at the cap: the rest of the body is never read (the connection is dropped).
            if (length >= RESPONSE_BODY_CAP_BYTES) settle(response(), new BodyCapReached());
          },
          onResponseEnd() {
            settle(response());
          },
          onResponseError(_controller, error) {
            settle(error instanceof TargetRefusedError ? refusedResult(error.reason, elapsed()) : failedResult(error, elapsed()));
          },
        },
      );
    });
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

/** Reaching the 16 KiB cap ends the exchange early; the result is already settled by then. */
class BodyCapReached extends Error {
  override name = "BodyCapReached";
  constructor() {
    super(`response body reached the ${RESPONSE_BODY_CAP_BYTES}-byte cap`);
  }
}

/**
 * checkTarget, memoised per URL string: an endpoint's URL is checked and split once, not on every
 * attempt. The rules are pure and the policy fixed for the sender's life, so a memo is never stale.
 * Bounded: emptied when it reaches its size.
 */
class CheckedTargets {
  private readonly memo = new Map<string, CheckedTarget>();
  constructor(
    private readonly policy: TargetPolicy,
    private readonly size = 10_000,
  ) {}

  resolve(url: string): CheckedTarget {
    let target = this.memo.get(url);
    if (!target) {
      if (this.memo.size >= this.size) this.memo.clear();
      target = checkTarget(url, this.policy);
      this.memo.set(url, target);
    }
    return target;
  }
}

function refusedResult(reason: string, durationMs: number): HttpResult {
  return { status: null, headers: null, body: null, error: `refused: ${reason}`, durationMs, refused: true };
}

function failedResult(error: unknown, durationMs: number): HttpResult {
  return { status: null, headers: null, body: null, error: describeFailure(error), durationMs };
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
