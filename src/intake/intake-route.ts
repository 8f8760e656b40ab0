import { createHash } from "node:crypto";
import type http from "node:http";
import { isDatabaseUnavailable } from "../db/database-unavailable.js";
import type { Pool } from "../db/pool.js";
import { newRequestId, sendJson } from "../http/json-response.js";
import { describeError, type Logger } from "../logger.js";
import { BodyBudget } from "./body-budget.js";
import { IntegrationCache, type Integration } from "./integration-cache.js";
import { parseLeadBody } from "./lead-body.js";
import { readBody } from "./read-body.js";
import { RefusalCounter } from "./refusal-counter.js";
import { REFUSAL_STATUS, type RefusalReason } from "./refusal-reasons.js";
import { verifySignature } from "./verify-signature.js";

/** README "Inbound leads": larger bodies are refused with 413 before any HMAC work. */
export const MAX_INTAKE_BODY_BYTES = 1024 * 1024;

export const INTAKE_PATH = /^\/v2\/webhook\/integration\/([^/]+)$/;
export const RETIRED_INTAKE_PATH = /^\/webhook\/integration\/([^/]+)$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Retry-After (seconds) of a 503: the body budget is full, or the database is unavailable. */
const RETRY_AFTER_SECONDS = "5";
/** At most one log line per this interval for requests failed by an unavailable database. */
const UNAVAILABLE_LOG_INTERVAL_MS = 5_000;

export interface IntakeOptions {
  /** A body must have arrived this long after the integration was found (WEBHOOKS_HTTP_READ_TIMEOUT_MS). */
  bodyTimeoutMs: number;
  /** Memory for bodies being received at once (WEBHOOKS_INTAKE_BODY_MEMORY_MB). */
  bodyMemoryBytes: number;
}

export interface IntakeRoutes {
  /** Answers the request if its path is an intake path; false otherwise. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean;
  /** Prometheus lines: bodies being received, refusals by reason. */
  metrics(): string[];
  /** Writes the refusals counted so far; call once no more requests come. */
  stop(): Promise<void>;
}

/**
 * POST /v2/webhook/integration/:id (README "Inbound leads") and the retired v1 path. Checks, in
 * order, before a byte of the body is read: integration (404: not a uuid, unknown or inactive —
 * the connection is closed), method (405), declared size (413), body memory (503); then reads the
 * body within the time allowed (408, 413) and checks signature, timestamp and idempotency-key
 * (401, 400). Those refusals come before the sender has shown it holds the secret: they are
 * counted (RefusalCounter), not written one row each. After it: the body's UTF-8, JSON and
 * customer_phone (400, one webhooks.intake_activity row each through webhooks._refuse_request);
 * then webhooks._accept_lead records the request and queues the lead in one transaction (202, or
 * 200 duplicate / 409 conflict). Every answer carries a req_ id. A 503 means only that the database
 * is unavailable (or the body memory full); any other failure is a 500.
 */
export function createIntakeRoutes(pool: Pool, logger: Logger, options: IntakeOptions): IntakeRoutes {
  const integrations = new IntegrationCache(pool);
  const budget = new BodyBudget(options.bodyMemoryBytes);
  const refusals = new RefusalCounter(pool, logger);
  refusals.start();

  /** A refusal before authentication: counted, answered, nothing written per request. */
  const refuse = (res: http.ServerResponse, requestId: string, integration: Integration | null, reason: RefusalReason, error: string, headers: Record<string, string> = {}) => {
    refusals.count(integration?.id ?? null, reason);
    send(res, REFUSAL_STATUS[reason], { error, request_id: requestId }, requestId, headers);
  };

  /** A refusal of a request signed with the integration's secret: one intake_activity row (if the database takes it). */
  const refuseSigned = async (res: http.ServerResponse, requestId: string, integration: Integration, error: string) => {
    try {
      await pool.query("select webhooks._refuse_request($1, $2, 400, $3)", [requestId, integration.id, error]);
    } catch (failure) {
      logger.warn("could not record a refused inbound request", { requestId, status: 400, error: describeError(failure) });
    }
    send(res, 400, { error, request_id: requestId }, requestId);
  };

  // While the database is unavailable every request fails alike: one log line per interval, with a count.
  let unavailableSince = 0;
  let unavailableUnlogged = 0;
  const logFailure = (requestId: string, error: unknown, unavailable: boolean) => {
    if (!unavailable) return logger.error("inbound request failed", { requestId, error: describeError(error) });
    unavailableUnlogged += 1;
    if (Date.now() - unavailableSince < UNAVAILABLE_LOG_INTERVAL_MS) return;
    logger.warn("inbound requests answered 503: the database is unavailable", { requests: unavailableUnlogged, requestId, error: describeError(error) });
    unavailableSince = Date.now();
    unavailableUnlogged = 0;
  };

  const findIntegration = async (id: string) => (UUID.test(id) ? integrations.get(id.toLowerCase()) : null);

  const intake = async (req: http.IncomingMessage, res: http.ServerResponse, id: string, requestId: string) => {
    const integration = await findIntegration(id);
    if (!integration) return refuse(res, requestId, null, "unknown_integration", "unknown integration");
    if (!integration.isActive) return refuse(res, requestId, integration, "inactive_integration", "inactive integration");
    if (req.method !== "POST") return refuse(res, requestId, integration, "method_not_allowed", "method not allowed; use POST", { allow: "POST" });
    const declared = req.headers["content-length"] === undefined ? undefined : Number(req.headers["content-length"]);
    if (declared !== undefined && declared > MAX_INTAKE_BODY_BYTES) return refuse(res, requestId, integration, "body_too_large", "body exceeds 1 MiB");

    const reserved = declared ?? MAX_INTAKE_BODY_BYTES;
    if (!budget.tryReserve(reserved)) {
      return refuse(res, requestId, integration, "busy", "too many request bodies are being received; retry later", { "retry-after": RETRY_AFTER_SECONDS });
    }
    res.once("close", () => budget.release(reserved));
    const body = await readBody(req, MAX_INTAKE_BODY_BYTES, options.bodyTimeoutMs);
    if (body === "aborted") return;
    if (body === "too large") return refuse(res, requestId, integration, "body_too_large", "body exceeds 1 MiB");
    if (body === "timeout") {
      return refuse(res, requestId, integration, "body_timeout", `request body not received within ${options.bodyTimeoutMs / 1000} seconds`);
    }

    const verified = verifySignature({
      signature: req.headers["x-webhook-signature"],
      timestamp: req.headers["x-webhook-timestamp"],
      idempotencyKey: req.headers["idempotency-key"],
      body,
      secret: integration.signingSecret,
    });
    if (!verified.ok) return refuse(res, requestId, integration, verified.reason, verified.error);

    const lead = parseLeadBody(body);
    if (!lead.ok) return refuseSigned(res, requestId, integration, lead.error);
    const bodySha256 = createHash("sha256").update(body).digest("hex");
    let result: { http_status: number; status: string; event_id: string | null };
    try {
      const accepted = await pool.query<{ http_status: number; status: string; event_id: string | null }>(
        "select * from webhooks._accept_lead($1, $2, $3, $4, $5::jsonb)",
        [integration.id, requestId, verified.idempotencyKey, bodySha256, lead.text],
      );
      result = accepted.rows[0]!;
    } catch (error) {
      const refusal = jsonbRefusal(error);
      if (refusal) return refuseSigned(res, requestId, integration, refusal);
      throw error;
    }
    if (result.http_status === 202) {
      return send(res, 202, { event_id: result.event_id, status: "accepted", request_id: requestId }, requestId);
    }
    if (result.http_status === 200) return send(res, 200, { status: "duplicate", event_id: result.event_id }, requestId);
    if (result.http_status === 409) {
      return send(res, 409, { error: "idempotency-key already used within 24 hours with a different body", request_id: requestId }, requestId);
    }
    // 404: the integration was deactivated or deleted since it was read; _accept_lead recorded it.
    send(res, result.http_status, { error: result.http_status === 404 ? "unknown or inactive integration" : result.status, request_id: requestId }, requestId);
  };

  const retired = async (res: http.ServerResponse, id: string, requestId: string) => {
    refusals.count((await findIntegration(id))?.id ?? null, "retired_endpoint");
    send(res, REFUSAL_STATUS.retired_endpoint, {
      error: "this endpoint was retired on 2026-06-30; use POST /v2/webhook/integration/:id",
      request_id: requestId,
      use: `/v2/webhook/integration/${encodeURIComponent(id)}`,
    }, requestId);
  };

  return {
    handle(req, res, path) {
      const current = INTAKE_PATH.exec(path);
      const v1 = current ? null : RETIRED_INTAKE_PATH.exec(path);
      if (!current && !v1) return false;
      const requestId = newRequestId();
      const id = decodeSegment((current ?? v1)![1]!);
      const work = current ? intake(req, res, id, requestId) : retired(res, id, requestId);
      work.catch((error: unknown) => {
        const unavailable = isDatabaseUnavailable(error);
        logFailure(requestId, error, unavailable);
        if (unavailable) {
          send(res, 503, { error: "temporarily unavailable; retry later", request_id: requestId }, requestId, { "retry-after": RETRY_AFTER_SECONDS });
        } else {
          send(res, 500, { error: `internal error; the daemon's log has it under ${requestId}`, request_id: requestId }, requestId);
        }
      });
      return true;
    },
    metrics: () => [
      "# HELP pg_webhooks_intake_body_bytes_in_flight Bytes reserved for inbound bodies being received (at most WEBHOOKS_INTAKE_BODY_MEMORY_MB).",
      "# TYPE pg_webhooks_intake_body_bytes_in_flight gauge",
      `pg_webhooks_intake_body_bytes_in_flight ${budget.inFlight}`,
      ...refusals.metrics(),
    ],
    stop: () => refusals.stop(),
  };
}

/**
 * What PostgreSQL refused in a verified body that parseLeadBody let through (e.g. \u0000 or an
 * unpaired surrogate escape in a string): its data exceptions (22) and program limits (54) are
 * the body's, a 400. Undefined for any other error.
 */
function jsonbRefusal(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return undefined;
  if (code === "22003") return "number out of range for PostgreSQL's numeric";
  if (code === "54001") return "JSON nesting too deep for PostgreSQL";
  if (/^(22|54)/.test(code)) return "body is not JSON that PostgreSQL accepts";
  return undefined;
}

function send(res: http.ServerResponse, status: number, body: unknown, requestId: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { "x-request-id": requestId, ...headers });
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
