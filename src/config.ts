import { isIP } from "node:net";
import { z } from "zod";
import { DEFAULT_RETENTION_DAYS } from "./daemon/retention.js";

const bool = (name: string, fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"], { error: `${name} must be true or false` })
    .default(fallback ? "true" : "false")
    .transform((value) => value === "true" || value === "1");

const integer = (name: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `${name} must be an integer`)
    .transform(Number)
    .pipe(z.number().min(min, `${name} must be at least ${min}`).max(max, `${name} must be at most ${max}`));

const int = (name: string, fallback: number, min: number, max: number) => integer(name, min, max).default(fallback);

const ipAddress = (name: string) =>
  z.string().trim().refine((value) => isIP(value) !== 0, `${name} must be an IP address to listen on, e.g. 127.0.0.1, 0.0.0.0 or ::`);

/** The one schema over the environment. Nothing else in the program reads process.env. */
const environmentSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// URL")
    .optional(),
  PORT: int("PORT", 8787, 0, 65535),
  // Unset: every interface (IPv4 and IPv6), as before this variable existed.
  WEBHOOKS_HTTP_HOST: ipAddress("WEBHOOKS_HTTP_HOST").optional(),
  WEBHOOKS_HTTP_MAX_CONNECTIONS: int("WEBHOOKS_HTTP_MAX_CONNECTIONS", 1000, 1, 100_000),
  WEBHOOKS_HTTP_READ_TIMEOUT_MS: int("WEBHOOKS_HTTP_READ_TIMEOUT_MS", 10_000, 100, 300_000),
  WEBHOOKS_INTAKE_BODY_MEMORY_MB: int("WEBHOOKS_INTAKE_BODY_MEMORY_MB", 64, 1, 4096),
  // Unset: /metrics is served on PORT. Set: only on a listener of its own, WEBHOOKS_METRICS_HOST (127.0.0.1) and this port.
  WEBHOOKS_METRICS_PORT: integer("WEBHOOKS_METRICS_PORT", 0, 65535).optional(),
  WEBHOOKS_METRICS_HOST: ipAddress("WEBHOOKS_METRICS_HOST").optional(),
  WEBHOOKS_DEMO_ECHO: bool("WEBHOOKS_DEMO_ECHO", false),
  WEBHOOKS_ALLOW_PRIVATE_TARGETS: bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", false),
  WEBHOOKS_ALLOW_HTTP: bool("WEBHOOKS_ALLOW_HTTP", false),
  WEBHOOKS_CONCURRENCY: int("WEBHOOKS_CONCURRENCY", 1024, 1, 10_000),
  // Unset: derived from WEBHOOKS_CONCURRENCY (defaultPoolSize).
  WEBHOOKS_DB_POOL_SIZE: integer("WEBHOOKS_DB_POOL_SIZE", 2, 200).optional(),
  WEBHOOKS_SWEEP_INTERVAL_MS: int("WEBHOOKS_SWEEP_INTERVAL_MS", 1000, 50, 600_000),
  WEBHOOKS_HEARTBEAT_INTERVAL_MS: int("WEBHOOKS_HEARTBEAT_INTERVAL_MS", 5000, 100, 600_000),
  WEBHOOKS_STALE_DAEMON_MS: int("WEBHOOKS_STALE_DAEMON_MS", 30_000, 500, 3_600_000),
  WEBHOOKS_DISABLE_AFTER_FAILING_HOURS: int("WEBHOOKS_DISABLE_AFTER_FAILING_HOURS", 120, 1, 8760),
  WEBHOOKS_LOCK_TIMEOUT_MS: int("WEBHOOKS_LOCK_TIMEOUT_MS", 5000, 100, 600_000),
  WEBHOOKS_STALL_SECONDS: int("WEBHOOKS_STALL_SECONDS", 30, 1, 86_400),
  WEBHOOKS_RETENTION_DAYS: int("WEBHOOKS_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, 1, 3650),
  WEBHOOKS_EMBEDDED_PG_PORT: int("WEBHOOKS_EMBEDDED_PG_PORT", 54329, 1, 65535),
  WEBHOOKS_DATA_DIR: z.string().min(1, "WEBHOOKS_DATA_DIR must not be empty").default(".data"),
  LOG_LEVEL: z
    .enum(["debug", "info", "warn", "error", "silent"], {
      error: "LOG_LEVEL must be one of debug, info, warn, error, silent",
    })
    .default("info"),
}).superRefine((e, context) => {
  if (e.WEBHOOKS_METRICS_PORT !== undefined && e.WEBHOOKS_METRICS_PORT !== 0 && e.WEBHOOKS_METRICS_PORT === e.PORT) {
    context.addIssue({ code: "custom", path: ["WEBHOOKS_METRICS_PORT"], message: "WEBHOOKS_METRICS_PORT must differ from PORT (unset it to serve /metrics on PORT)" });
  }
  if (e.WEBHOOKS_METRICS_HOST !== undefined && e.WEBHOOKS_METRICS_PORT === undefined) {
    context.addIssue({ code: "custom", path: ["WEBHOOKS_METRICS_HOST"], message: "WEBHOOKS_METRICS_HOST needs WEBHOOKS_METRICS_PORT (the metrics listener's port)" });
  }
});

export type LogLevel = z.infer<typeof environmentSchema>["LOG_LEVEL"];

export interface Config {
  /** Undefined: start embedded Postgres. */
  databaseUrl: string | undefined;
  port: number;
  /** The HTTP server's address; undefined: every interface. */
  httpHost: string | undefined;
  /** Connections the HTTP server holds at once; more are closed as they arrive. */
  httpMaxConnections: number;
  /** Request headers must arrive within this, and an intake body within this once its headers have. */
  httpReadTimeoutMs: number;
  /** Memory for intake bodies being received at once, over all requests. */
  intakeBodyMemoryBytes: number;
  /** Undefined: /metrics is served on `port`. Otherwise only on this listener. */
  metricsListener: { host: string; port: number } | undefined;
  /** Serve POST /demo/echo (the local demo's receiver; `npm start` turns it on). */
  demoEcho: boolean;
  allowPrivateTargets: boolean;
  allowHttp: boolean;
  concurrency: number;
  /** Connections in the daemon's pool (besides its LISTEN connection). */
  dbPoolSize: number;
  sweepIntervalMs: number;
  heartbeatIntervalMs: number;
  staleDaemonMs: number;
  /** An endpoint whose attempts have all failed for this many hours is disabled. */
  disableAfterFailingHours: number;
  /** The longest any statement of the daemon waits for a lock (lock_timeout) before it gives up, says who holds it and retries. */
  lockTimeoutMs: number;
  /** Work that has not moved for this long is reported as a stall (log, /healthz, /metrics). */
  stallSeconds: number;
  /** Attempts, events, finished deliveries and intake activity older than this many days are dropped (by whole partitions). */
  retentionDays: number;
  embeddedPgPort: number;
  dataDir: string;
  logLevel: LogLevel;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

/** Parses the environment; throws ConfigError naming every bad variable (never echoing values). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = Object.fromEntries(
    Object.keys(environmentSchema.shape).map((key) => [key, env[key] === "" ? undefined : env[key]]),
  );
  const parsed = environmentSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? "environment");
        return issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    port: e.PORT,
    httpHost: e.WEBHOOKS_HTTP_HOST,
    httpMaxConnections: e.WEBHOOKS_HTTP_MAX_CONNECTIONS,
    httpReadTimeoutMs: e.WEBHOOKS_HTTP_READ_TIMEOUT_MS,
    intakeBodyMemoryBytes: e.WEBHOOKS_INTAKE_BODY_MEMORY_MB * 1024 * 1024,
    metricsListener:
      e.WEBHOOKS_METRICS_PORT === undefined ? undefined : { host: e.WEBHOOKS_METRICS_HOST ?? "127.0.0.1", port: e.WEBHOOKS_METRICS_PORT },
    demoEcho: e.WEBHOOKS_DEMO_ECHO,
    allowPrivateTargets: e.WEBHOOKS_ALLOW_PRIVATE_TARGETS,
    allowHttp: e.WEBHOOKS_ALLOW_HTTP,
    concurrency: e.WEBHOOKS_CONCURRENCY,
    dbPoolSize: e.WEBHOOKS_DB_POOL_SIZE ?? defaultPoolSize(e.WEBHOOKS_CONCURRENCY),
    sweepIntervalMs: e.WEBHOOKS_SWEEP_INTERVAL_MS,
    heartbeatIntervalMs: e.WEBHOOKS_HEARTBEAT_INTERVAL_MS,
    staleDaemonMs: e.WEBHOOKS_STALE_DAEMON_MS,
    disableAfterFailingHours: e.WEBHOOKS_DISABLE_AFTER_FAILING_HOURS,
    lockTimeoutMs: e.WEBHOOKS_LOCK_TIMEOUT_MS,
    stallSeconds: e.WEBHOOKS_STALL_SECONDS,
    retentionDays: e.WEBHOOKS_RETENTION_DAYS,
    embeddedPgPort: e.WEBHOOKS_EMBEDDED_PG_PORT,
    dataDir: e.WEBHOOKS_DATA_DIR,
    logLevel: e.LOG_LEVEL,
  };
}

/**
 * Attempts hold no connection while in flight (deliveries are claimed and attempts recorded in
 * batched statements, one of each at a time), but several kinds of statement run side by side:
 * 8 + concurrency / 32, at most 40 (40 at the default 1024). Several daemons on one server may
 * want fewer all the same (WEBHOOKS_DB_POOL_SIZE).
 */
export function defaultPoolSize(concurrency: number): number {
  return Math.min(40, 8 + Math.ceil(concurrency / 32));
}
