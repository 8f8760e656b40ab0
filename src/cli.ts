#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createLogger, describeError, type Logger } from "./logger.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "./db/embedded-postgres.js";
import { createPool } from "./db/pool.js";
import { migrate } from "./db/migrate.js";
import { startDaemon } from "./daemon.js";
import { prune } from "./daemon/retention.js";
import { apiKeyCommand } from "./cli/api-key-commands.js";
import { UsageError } from "./cli/arguments.js";
import { printIntake, printLogs } from "./cli/read-commands.js";

const usage = `usage: pg-webhooks <command>

  migrate                      apply sql/ migrations (idempotent)
  start                        migrate, then run the dispatcher and the HTTP server
  send-test <webhook-id>       send a webhook.test event to one endpoint
  replay <delivery-id>         deliver one delivery again (webhooks.replay)
  replay --dead --webhook ID   deliver every dead delivery of one webhook again (webhooks.replay_dead)
  logs [--webhook ID] [--failed] [--limit N] [--follow]
                               print recent attempts from webhooks.webhook_logs; --follow
                               then prints new ones as they are written, until Ctrl-C
  api-key create --organization ID --name NAME
                               create an API key for the management API and print it (shown once)
  api-key revoke <key-id>      revoke an API key at once
  api-key list [--organization ID]
                               print the API keys (never the keys themselves)
  prune                        apply the retention now (WEBHOOKS_RETENTION_DAYS, default 30): drop
                               expired partitions of the history tables, create the coming ones
  intake [--integration ID] [--limit N] [--refusals]
                               print recent inbound requests from webhooks.intake_activity, or with
                               --refusals the per-minute counts of those refused before authentication
                               (webhooks.intake_refusals)

Configuration is read from the environment; see README.md.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    console.log(usage);
    return command ? 0 : 1;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`pg-webhooks: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  switch (command) {
    case "migrate":
      return withDatabase(config, logger, async (url) => {
        const pool = createPool(url, { max: 2, logger });
        try {
          const { applied } = await migrate(pool, logger.scope("migrate"));
          console.log(applied.length ? `applied ${applied.join(", ")}` : "database is up to date");
        } finally {
          await pool.end();
        }
        return 0;
      });
    case "start":
      return start(config, logger);
    case "send-test":
      return withDatabase(config, logger, (url) => sendTest(url, args[0]));
    case "replay":
      return withDatabase(config, logger, (url) => replay(url, args));
    case "logs":
      return withDatabase(config, logger, (url) => readCommand(() => printLogs(url, args, untilInterrupted())));
    case "intake":
      return withDatabase(config, logger, (url) => readCommand(() => printIntake(url, args)));
    case "api-key":
      return withDatabase(config, logger, (url) => readCommand(() => apiKeyCommand(url, args)));
    case "prune":
      return withDatabase(config, logger, (url) => pruneNow(url, config.retentionDays));
    default:
      console.error(`pg-webhooks: unknown command ${JSON.stringify(command)}\n\n${usage}`);
      return 1;
  }
}

async function pruneNow(url: string, retentionDays: number): Promise<number> {
  const pool = createPool(url, { max: 1 });
  try {
    const { done, busy } = await prune(pool, retentionDays);
    for (const line of done) console.log(line);
    for (const line of busy) console.error(line);
    if (busy.length > 0) {
      console.error(`retention ${retentionDays} days not fully applied: run pg-webhooks prune again`);
      return 1;
    }
    console.log(`retention ${retentionDays} days applied${done.length === 0 ? ": nothing to do" : ""}`);
    return 0;
  } finally {
    await pool.end();
  }
}

/** Aborted on the first SIGINT or SIGTERM: a following command then ends cleanly, exit code 0. */
function untilInterrupted(): AbortSignal {
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  process.once("SIGTERM", () => controller.abort());
  return controller.signal;
}

/** A read command: 0, or 1 with the usage after a refused command line. */
async function readCommand(run: () => Promise<void>): Promise<number> {
  try {
    await run();
    return 0;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`pg-webhooks: ${error.message}\n\n${usage}`);
    return 1;
  }
}

async function withDatabase(config: Config, logger: Logger, work: (url: string) => Promise<number>): Promise<number> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
  try {
    return await work(config.databaseUrl ?? embedded!.url);
  } finally {
    await embedded?.stop();
  }
}

async function start(config: Config, logger: Logger): Promise<number> {
  let embedded: EmbeddedPostgres | undefined;
  if (!config.databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger: logger.scope("embedded-postgres") });
  }
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  const daemon = await startDaemon({ ...config, databaseUrl }, logger);
  logger.info("pg-webhooks is running", {
    daemon: daemon.id,
    port: config.port,
    host: config.httpHost ?? "every interface",
    metrics: config.metricsListener ? `${config.metricsListener.host}:${config.metricsListener.port}` : `port ${config.port}`,
    demoEcho: config.demoEcho,
  });
  if (embedded) console.log(tryItText(embedded.url, config.port, config));

  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      logger.info("shutting down", { signal });
      resolve();
    };
    process.once("SIGTERM", () => shutdown("SIGTERM"));
    process.once("SIGINT", () => shutdown("SIGINT"));
  });
  await daemon.stop();
  await embedded?.stop();
  logger.info("stopped");
  return 0;
}

function tryItText(url: string, port: number, config: Config): string {
  const org = "00000000-0000-0000-0000-000000000001";
  const guardNote = !config.demoEcho
    ? "\n  (the echo receiver is served only with WEBHOOKS_DEMO_ECHO=true, and is http on 127.0.0.1: start with\n   WEBHOOKS_DEMO_ECHO=true WEBHOOKS_ALLOW_PRIVATE_TARGETS=true WEBHOOKS_ALLOW_HTTP=true, as `npm start` does)\n"
    : config.allowPrivateTargets && config.allowHttp
      ? ""
      : "\n  (the echo receiver is http on 127.0.0.1: start with WEBHOOKS_ALLOW_PRIVATE_TARGETS=true WEBHOOKS_ALLOW_HTTP=true, as `npm start` does)\n";
  return `
pg-webhooks is running on an embedded PostgreSQL:

  DATABASE_URL=${url}

Try it (a webhook to the built-in echo receiver, then a contact):
${guardNote}
  psql "${url}" -c "insert into organizations (id, name) values ('${org}', 'Acme') on conflict do nothing; insert into webhooks.webhook_configurations (organization_id, name, url, events) values ('${org}', 'demo', 'http://127.0.0.1:${port}/demo/echo', '{*}'); insert into contacts (organization_id, first_name, email) values ('${org}', 'Ada', 'ada@example.com');"
  psql "${url}" -c "select attempt, event_type, response_status, success, duration_ms from webhooks.webhook_logs order by id desc limit 5;"
`;
}

async function sendTest(url: string, webhookId: string | undefined): Promise<number> {
  if (!webhookId) {
    console.error("usage: pg-webhooks send-test <webhook-id>");
    return 1;
  }
  const pool = createPool(url, { max: 1 });
  try {
    const { rows } = await pool.query<{ id: string }>("select webhooks.send_test($1::uuid) as id", [webhookId]);
    console.log(`queued webhook.test event ${rows[0]!.id} for webhook ${webhookId}`);
    return 0;
  } finally {
    await pool.end();
  }
}

async function replay(url: string, args: string[]): Promise<number> {
  const dead = args.includes("--dead");
  const webhookIndex = args.indexOf("--webhook");
  const webhookId = webhookIndex >= 0 ? args[webhookIndex + 1] : undefined;
  const deliveryId = args.length === 1 && !args[0]!.startsWith("--") ? args[0] : undefined;
  if (dead ? !webhookId || args.length !== 3 : !deliveryId) {
    console.error("usage: pg-webhooks replay <delivery-id>\n       pg-webhooks replay --dead --webhook <webhook-id>");
    return 1;
  }
  const pool = createPool(url, { max: 1 });
  try {
    if (dead) {
      const { rows } = await pool.query<{ queued: number }>("select webhooks.replay_dead($1::uuid) as queued", [webhookId]);
      console.log(`queued ${rows[0]!.queued} dead deliveries of webhook ${webhookId}`);
    } else {
      const { rows } = await pool.query<{ replay: "queued" | "already queued" | "in flight" }>("select webhooks.replay($1::uuid)", [deliveryId]);
      console.log(replayed[rows[0]!.replay](deliveryId!));
    }
    return 0;
  } finally {
    await pool.end();
  }
}

/** What webhooks.replay answered, said for a person. */
const replayed = {
  queued: (id: string) => `queued delivery ${id}`,
  "already queued": (id: string) => `delivery ${id} is already queued; it is due now`,
  "in flight": (id: string) => `delivery ${id} is being attempted now; not queued again (replay once its attempt is logged)`,
};



main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`pg-webhooks: ${describeError(error).message as string}`);
    process.exit(1);
  },
);
