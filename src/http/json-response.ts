import { randomBytes } from "node:crypto";
import http from "node:http";

/** The id every intake answer (and every error the HTTP layer writes itself) carries: req_ + 16 base64url characters. */
export function newRequestId(): string {
  return `req_${randomBytes(12).toString("base64url")}`;
}

/**
 * Answers with a JSON body. A request whose body has not been read is answered with
 * `Connection: close`: Node then closes the connection once the answer is out, instead of reading
 * (and discarding) whatever the sender still has to send.
 */
export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const unread = res.req !== undefined && !res.req.complete;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(text)),
    ...(unread ? { connection: "close" } : {}),
    ...headers,
  });
  res.end(text);
}

/** A whole JSON error response as raw HTTP/1.1, for a socket that has no ServerResponse (Node's clientError). */
export function rawJsonResponse(status: number, body: unknown): string {
  const text = JSON.stringify(body);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`;
}
