import type http from "node:http";
import type { Logger } from "../logger.js";
import type { IntakeRoutes } from "../intake/intake-route.js";
import { createBoundedServer, listen, type BoundedServer, type ConnectionLimits } from "./bounded-server.js";
import { sendJson } from "./json-response.js";

/** What GET /healthz answers: 200 with `{"status": "ok"}`, otherwise 503 with the reason. */
export type HealthStatus =
  | { status: "ok" }
  | { status: "starting" | "stalled" | "stopping"; reason: string; [detail: string]: unknown };

export interface Health {
  /** ok once migrations ran and the dispatcher and workers run, as long as none of them is stalled. */
  status(): HealthStatus;
  /** Prometheus text exposition lines. */
  metrics(): Promise<string>;
}

export interface HttpOptions extends ConnectionLimits {
  port: number;
  /** Undefined: every interface. */
  host: string | undefined;
  /** Undefined: GET /metrics is served on `port`. Otherwise only on a listener of its own there. */
  metricsListener: { host: string; port: number } | undefined;
  /** Serve POST /demo/echo, the local demo's receiver. */
  demoEcho: boolean;
}

export interface HttpServers {
  /** The public listener: the inbound endpoint, /healthz, and /metrics unless it has a listener of its own. */
  server: http.Server;
  metricsServer: http.Server | undefined;
  close(): Promise<void>;
}

/**
 * The daemon's HTTP listeners (README "Configuration"): on `host`:`port` GET /healthz and, given
 * `intake`, the inbound lead endpoint POST /v2/webhook/integration/:id (and the retired v1
 * path, 410); GET /metrics there or on the metrics listener; POST /demo/echo when asked for.
 */
export async function startHttpServers(options: HttpOptions, health: Health, logger: Logger, intake?: IntakeRoutes): Promise<HttpServers> {
  let metricsServer: BoundedServer | undefined;
  const metrics = (res: http.ServerResponse) => {
    health
      .metrics()
      .then((text) => {
        const lines = [
          ...(intake?.metrics() ?? []),
          "# HELP pg_webhooks_http_connections_dropped_total Connections closed on arrival because WEBHOOKS_HTTP_MAX_CONNECTIONS were open.",
          "# TYPE pg_webhooks_http_connections_dropped_total counter",
          `pg_webhooks_http_connections_dropped_total ${publicServer.droppedConnections()}`,
        ];
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(text + lines.join("\n") + "\n");
      })
      .catch((error: unknown) => {
        logger.warn("metrics failed", { error });
        sendJson(res, 503, { error: "metrics unavailable" });
      });
  };

  const publicServer = createBoundedServer(options, (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (intake?.handle(req, res, path)) return;
    if (path === "/healthz") return healthz(req, res, health);
    if (path === "/metrics" && !options.metricsListener) {
      if (req.method !== "GET") return sendJson(res, 405, { error: "method not allowed" });
      return metrics(res);
    }
    if (path === "/demo/echo" && options.demoEcho) return demoEcho(req, res);
    sendJson(res, 404, { error: "not found" });
  });
  if (options.metricsListener) {
    metricsServer = createBoundedServer(options, (req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      if (path === "/healthz") return healthz(req, res, health);
      if (path !== "/metrics") return sendJson(res, 404, { error: "not found" });
      if (req.method !== "GET") return sendJson(res, 405, { error: "method not allowed" });
      metrics(res);
    });
  }

  await listen(publicServer.server, options.port, options.host);
  try {
    if (metricsServer && options.metricsListener) await listen(metricsServer.server, options.metricsListener.port, options.metricsListener.host);
  } catch (error) {
    await closeServer(publicServer.server);
    throw error;
  }
  return {
    server: publicServer.server,
    metricsServer: metricsServer?.server,
    async close() {
      await Promise.all([closeServer(publicServer.server), metricsServer ? closeServer(metricsServer.server) : undefined]);
    },
  };
}

function healthz(req: http.IncomingMessage, res: http.ServerResponse, health: Health): void {
  if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: "method not allowed" });
  const status = health.status();
  sendJson(res, status.status === "ok" ? 200 : 503, status);
}

/**
 * A receiver for the README's two-minute tour: answers 200 with what it got. Served only when
 * WEBHOOKS_DEMO_ECHO is on, as `npm start` sets it: a bare `pg-webhooks start` has no echo.
 */
function demoEcho(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== "POST") return sendJson(res, 405, { error: "method not allowed" });
  let size = 0;
  req.on("data", (chunk: Buffer) => (size += chunk.length));
  req.on("end", () => sendJson(res, 200, { received: true, event: req.headers["x-webhook-event"] ?? null, bytes: size }));
}

/** Stops listening and closes every connection, idle or not. */
async function closeServer(server: http.Server): Promise<void> {
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeAllConnections();
  await closed;
}
