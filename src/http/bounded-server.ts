import http from "node:http";
import type net from "node:net";
import { newRequestId, rawJsonResponse } from "./json-response.js";

/** What one listener lets a client hold: connections, and time to send a request. */
export interface ConnectionLimits {
  /** Connections held at once; further ones are closed as they arrive (`server.maxConnections`). */
  maxConnections: number;
  /** Request headers must arrive within this (`headersTimeout`), a whole request within 3× (`requestTimeout`). */
  readTimeoutMs: number;
}

/** An idle keep-alive connection is closed after this (Node's default, stated). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** A connection is closed after this many requests; the client opens another. */
const MAX_REQUESTS_PER_CONNECTION = 1_000;
/** How often Node looks for connections past headersTimeout/requestTimeout (its default is 30 s). */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export interface BoundedServer {
  server: http.Server;
  /** Connections closed on arrival because `maxConnections` were open. */
  droppedConnections(): number;
}

/**
 * An HTTP server that bounds what a client can hold (README "Inbound leads", limits): connections,
 * time to send headers and request, requests and idle time per connection. What Node refuses
 * itself (a timeout, a malformed request, headers too large) is answered with a JSON error too.
 */
export function createBoundedServer(limits: ConnectionLimits, handler: http.RequestListener): BoundedServer {
  const server = http.createServer(
    {
      headersTimeout: limits.readTimeoutMs,
      // Headers, then an intake body (read within readTimeoutMs of the look-up that precedes it).
      requestTimeout: 3 * limits.readTimeoutMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    },
    handler,
  );
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_CONNECTION;
  let dropped = 0;
  server.on("drop", () => (dropped += 1));
  server.on("clientError", (error: NodeJS.ErrnoException, socket: net.Socket) => {
    // As Node's own handler: answer only if no answer of this exchange has started on the socket.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
    if (socket.writable && !answering && error.code !== "ECONNRESET") {
      const [status, message] =
        error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, `request not received within ${limits.readTimeoutMs / 1000} seconds`]
          : error.code === "HPE_HEADER_OVERFLOW"
            ? [431, "request headers too large"]
            : [400, "malformed HTTP request"];
      socket.write(rawJsonResponse(status, { error: message, request_id: newRequestId() }));
    }
    socket.destroy();
  });
  return { server, droppedConnections: () => dropped };
}

/** Listens on `host` (every interface when undefined) and `port`; resolves once listening. */
export function listen(server: http.Server, port: number, host: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    const listening = () => {
      server.off("error", reject);
      resolve();
    };
    if (host === undefined) server.listen(port, listening);
    else server.listen(port, host, listening);
  });
}
