import { createHash, randomBytes } from "node:crypto";
import type http from "node:http";
import type { Pool } from "../db/pool.js";
import { describeError, type Logger } from "../logger.js";
import { verifySignature } from "./verify-signature.js";

/** README "Inbound leads": larger bodies are refused with 413 before any HMAC work. */
export const MAX_INTAKE_BODY_BYTES = 1024 * 1024;

export const INTAKE_PATH = /^\/v2\/webhook\/integration\/([^/]+)$/;
export const RETIRED_INTAKE_PATH = /^\/webhook\/integration\/([^/]+)$/;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** After a 413 the rest of the body is discarded unread; a sender still going after this is cut off. */
const DISCARD_GRACE_MS = 5_000;

export interface IntakeRoutes {
  /** Answers the request if its path is an intake path; false otherwise. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean;
}

interface Integration {
  organization_id: string;
  signing_secret: string;
  is_active: boolean;
}

/**
 * POST /v2/webhook/integration/:id (README "Inbound leads") and the retired v1 path. Checks, in order: method
 * (405), size (413), integration (404), signature/timestamp (401), idempotency-key, JSON and
 * customer_phone (400); then webhooks._accept_lead records the request and queues the lead in one
 * transaction (202, or 200 duplicate / 409 conflict). Every refusal is recorded through
 * webhooks._refuse_request; every answer carries a req_ id.
 */
export function createIntakeRoutes(pool: Pool, logger: Logger): IntakeRoutes {
  const refuse = async (res: http.ServerResponse, requestId: string, integrationId: string | null, status: number, error: string, extra: Record<string, unknown> = {}) => {
    try {
      await pool.query("select webhooks._refuse_request($1, $2, $3, $4)", [requestId, integrationId, status, error]);
    } catch (failure) {
      logger.warn("could not record a refused inbound request", { requestId, status, error: describeError(failure) });
    }
    send(res, status, { error, request_id: requestId, ...extra }, requestId);
  };

  const intake = async (req: http.IncomingMessage, res: http.ServerResponse, id: string, requestId: string) => {
    const integrationId = UUID.test(id) ? id.toLowerCase() : null;
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return refuse(res, requestId, integrationId, 405, "method not allowed; use POST");
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > MAX_INTAKE_BODY_BYTES) return refuse(res, requestId, integrationId, 413, "body exceeds 1 MiB");
    const body = await readBody(req, MAX_INTAKE_BODY_BYTES);
    if (body === "too large") return refuse(res, requestId, integrationId, 413, "body exceeds 1 MiB");
    if (body === "aborted") return;

    if (!integrationId) return refuse(res, requestId, null, 404, "unknown integration");
    const { rows } = await pool.query<Integration>(
      "select organization_id, signing_secret, is_active from webhooks.inbound_integrations where id = $1",
      [integrationId],
    );
    const integration = rows[0];
    if (!integration) return refuse(res, requestId, null, 404, "unknown integration");
    if (!integration.is_active) return refuse(res, requestId, integrationId, 404, "inactive integration");

    const verified = verifySignature({
      signature: req.headers["x-webhook-signature"],
      timestamp: req.headers["x-webhook-timestamp"],
      idempotencyKey: req.headers["idempotency-key"],
      body,
      secret: integration.signing_secret,
    });
    if (!verified.ok) return refuse(res, requestId, integrationId, verified.status, verified.error);

    const text = body.toString("utf8");
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return refuse(res, requestId, integrationId, 400, "body is not valid JSON");
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      return refuse(res, requestId, integrationId, 400, "body must be a JSON object");
    }
    const phone = (parsed as Record<string, unknown>).customer_phone;
    if (typeof phone !== "string" || !/\d/.test(phone)) {
      return refuse(res, requestId, integrationId, 400, "customer_phone is required (a string with digits)");
    }

    const bodySha256 = createHash("sha256").update(body).digest("hex");
    let result: { http_status: number; status: string; event_id: string | null };
    try {
      const accepted = await pool.query<{ http_status: number; status: string; event_id: string | null }>(
        "select * from webhooks._accept_lead($1, $2, $3, $4, $5::jsonb)",
        [integrationId, requestId, verified.idempotencyKey, bodySha256, text],
      );
      result = accepted.rows[0]!;
    } catch (error) {
      // JSON that JavaScript reads but jsonb does not (e.g. \u0000 in a string).
      const code = (error as { code?: string }).code;
      if (code === "22P02" || code === "22P05") return refuse(res, requestId, integrationId, 400, "body is not JSON that PostgreSQL accepts");
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

  return {
    handle(req, res, path) {
      const current = INTAKE_PATH.exec(path);
      const retired = current ? null : RETIRED_INTAKE_PATH.exec(path);
      if (!current && !retired) return false;
      const requestId = `req_${randomBytes(12).toString("base64url")}`;
      const id = decodeSegment((current ?? retired)![1]!);
      const work = current
        ? intake(req, res, id, requestId)
        : refuse(res, requestId, UUID.test(id) ? id.toLowerCase() : null, 410, "this endpoint was retired on 2026-06-30; use POST /v2/webhook/integration/:id", {
            use: `/v2/webhook/integration/${encodeURIComponent(id)}`,
          });
      work.catch((error: unknown) => {
        logger.error("inbound request failed", { requestId, error: describeError(error) });
        if (!res.headersSent) send(res, 503, { error: "temporarily unavailable; retry later", request_id: requestId }, requestId);
      });
      return true;
    },
  };
}

function send(res: http.ServerResponse, status: number, body: unknown, requestId: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { "content-type": "application/json", "x-request-id": requestId });
  res.end(JSON.stringify(body));
  const req = res.req;
  if (req && !req.complete) {
    // Node reads and discards the unread body after the response (keeping the connection usable);
    // a sender that keeps streaming is cut off.
    const timer = setTimeout(() => req.socket.destroy(), DISCARD_GRACE_MS);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    req.once("close", () => clearTimeout(timer));
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The raw body, or "too large" as soon as it passes `limit` bytes (reading stops; nothing more is buffered). */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | "too large" | "aborted"> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        resolve("too large");
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onAbort = () => {
      cleanup();
      resolve("aborted");
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onClose);
    };
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAbort);
    req.on("close", onClose);
  });
}
