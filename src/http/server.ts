import type http from "node:http";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { describeError, type Logger } from "../logger.js";
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

/** Routes mounted on the public listener: the management API (src/api/api-routes.ts), the admin page (src/admin/admin-routes.ts). */
export type Routes = (app: FastifyInstance) => Promise<void>;

/**
 * The daemon's HTTP listeners (README "Configuration"): on `host`:`port` a Fastify app with
 * GET /healthz, the given routes (the management API with /docs, the admin page), and the
 * inbound lead endpoint POST /v2/webhook/integration/:id (and the retired v1 path, 410); GET
 * /metrics there or on the metrics listener; POST /demo/echo when asked for. Both listeners are
 * bounded servers (connections, header and request time).
 *
 * The inbound endpoint answers in Fastify's first hook, before a byte of the body is read: its
 * checks (integration, declared size, body memory) come before the body, which it then streams
 * within its own budget (src/intake/intake-route.ts), never through a body parser.
 */
export async function startHttpServers(
  options: HttpOptions,
  health: Health,
  logger: Logger,
  intake?: IntakeRoutes,
  routes: Routes[] = [],
): Promise<HttpServers> {
  let metricsServer: BoundedServer | undefined;
  const metricsText = async (): Promise<string> => {
    const text = await health.metrics();
    const lines = [
      ...(intake?.metrics() ?? []),
      "# HELP pg_webhooks_http_connections_dropped_total Connections closed on arrival because WEBHOOKS_HTTP_MAX_CONNECTIONS were open.",
      "# TYPE pg_webhooks_http_connections_dropped_total counter",
      `pg_webhooks_http_connections_dropped_total ${publicServer!.droppedConnections()}`,
    ];
    return text + lines.join("\n") + "\n";
  };
  const metrics = (res: http.ServerResponse) => {
    metricsText()
      .then((text) => {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        res.end(text);
      })
      .catch((error: unknown) => {
        logger.warn("metrics failed", { error });
        sendJson(res, 503, { error: "metrics unavailable" });
      });
  };

  let publicServer: BoundedServer | undefined;
  const app = Fastify({
    serverFactory: (handler) => {
      publicServer = createBoundedServer(options, handler);
      return publicServer.server;
    },
    logger: false,
    // Requests of the API and the admin page: JSON and forms, small.
    bodyLimit: API_BODY_LIMIT_BYTES,
    forceCloseConnections: true,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: "not found" }));
  app.setErrorHandler((error, request, reply) => answerError(error, request, reply, logger));

  if (intake) {
    app.addHook("onRequest", (request, reply, done) => {
      if (intake.handle(request.raw, reply.raw, request.url.split("?")[0]!)) reply.hijack();
      done();
    });
  }
  app.all("/healthz", (request, reply) => {
    if (request.method !== "GET" && request.method !== "HEAD") return reply.code(405).send({ error: "method not allowed" });
    const status = health.status();
    return reply.code(status.status === "ok" ? 200 : 503).send(status);
  });
  if (!options.metricsListener) {
    app.all("/metrics", async (request, reply) => {
      if (request.method !== "GET") return reply.code(405).send({ error: "method not allowed" });
      try {
        return reply.type("text/plain; version=0.0.4").send(await metricsText());
      } catch (error) {
        logger.warn("metrics failed", { error });
        return reply.code(503).send({ error: "metrics unavailable" });
      }
    });
  }
  if (options.demoEcho) {
    await app.register(async (echo) => {
      // Whatever was sent, as bytes: the echo only counts them.
      echo.removeAllContentTypeParsers();
      echo.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
      echo.all("/demo/echo", (request, reply) => {
        if (request.method !== "POST") return reply.code(405).send({ error: "method not allowed" });
        const bytes = Buffer.isBuffer(request.body) ? request.body.length : 0;
        return reply.send({ received: true, event: request.headers["x-webhook-event"] ?? null, bytes });
      });
    });
  }
  for (const mount of routes) await app.register(mount);

  if (options.metricsListener) {
    metricsServer = createBoundedServer(options, (req, res) => {
      const path = (req.url ?? "/").split("?")[0]!;
      if (path === "/healthz") return healthz(req, res, health);
      if (path !== "/metrics") return sendJson(res, 404, { error: "not found" });
      if (req.method !== "GET") return sendJson(res, 405, { error: "method not allowed" });
      metrics(res);
    });
  }

  await app.listen({ port: options.port, host: options.host ?? "::" });
  try {
    if (metricsServer && options.metricsListener) await listen(metricsServer.server, options.metricsListener.port, options.metricsListener.host);
  } catch (error) {
    await app.close();
    throw error;
  }
  return {
    server: app.server,
    metricsServer: metricsServer?.server,
    async close() {
      await Promise.all([app.close(), metricsServer ? closeServer(metricsServer.server) : undefined]);
    },
  };
}

/** Bodies the API and the admin page accept (a configuration with its headers and filter is far smaller). */
const API_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Every error as JSON `{"error": …}`, 4xx for the request's fault: a body that fails its schema
 * names the field (`"field"`); the database's refusal of a value names its column the same way;
 * anything else is a 500 whose detail goes to the log only.
 */
function answerError(error: unknown, request: FastifyRequest, reply: FastifyReply, logger: Logger) {
  if (hasZodFastifySchemaValidationErrors(error)) {
    const [first] = error.validation;
    const field = first?.instancePath.replace(/^\//, "").replaceAll("/", ".") ?? "";
    return reply.code(400).send({ error: `${field || error.validationContext}: ${first?.message ?? "invalid"}`, field: field || null });
  }
  const status = (error as { statusCode?: number }).statusCode;
  if (status !== undefined && ((status >= 400 && status < 500) || status === 503)) {
    return reply.code(status).send({ error: (error as Error).message });
  }
  logger.error("request failed", { method: request.method, path: request.url.split("?")[0], error: describeError(error) });
  return reply.code(500).send({ error: "internal error; see the daemon's log" });
}

function healthz(req: http.IncomingMessage, res: http.ServerResponse, health: Health): void {
  if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: "method not allowed" });
  const status = health.status();
  sendJson(res, status.status === "ok" ? 200 : 503, status);
}

/** Stops listening and closes every connection, idle or not. */
async function closeServer(server: http.Server): Promise<void> {
  const closed = new Promise((resolve) => server.close(resolve));
  server.closeAllConnections();
  await closed;
}
