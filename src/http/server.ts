import http from "node:http";
import type { Logger } from "../logger.js";
import type { IntakeRoutes } from "../intake/intake-route.js";

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

/**
 * The daemon's HTTP server: GET /healthz, GET /metrics, POST /demo/echo and, given `intake`, the
 * inbound lead endpoint POST /v2/webhook/integration/:id (and the retired v1 path, 410).
 */
export function startHttpServer(port: number, health: Health, logger: Logger, intake?: IntakeRoutes): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (intake?.handle(req, res, path)) return;
    const send = (status: number, body: unknown, type = "application/json") => {
      res.writeHead(status, { "content-type": type });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    if (path === "/healthz") {
      if (req.method !== "GET" && req.method !== "HEAD") return send(405, { error: "method not allowed" });
      const status = health.status();
      return send(status.status === "ok" ? 200 : 503, status);
    }
    if (path === "/metrics") {
      if (req.method !== "GET") return send(405, { error: "method not allowed" });
      health
        .metrics()
        .then((text) => send(200, text, "text/plain; version=0.0.4"))
        .catch((error: unknown) => {
          logger.warn("metrics failed", { error });
          send(503, { error: "metrics unavailable" });
        });
      return;
    }
    if (path === "/demo/echo") {
      // A receiver for the README's two-minute tour: answers 200 with what it got.
      if (req.method !== "POST") return send(405, { error: "method not allowed" });
      let size = 0;
      req.on("data", (chunk: Buffer) => (size += chunk.length));
      req.on("end", () => send(200, { received: true, event: req.headers["x-webhook-event"] ?? null, bytes: size }));
      return;
    }
    send(404, { error: "not found" });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
