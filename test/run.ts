/**
 * `npm test`: picks a PostgreSQL server (TEST_DATABASE_URL, else testcontainers when a Docker
 * engine answers, else embedded Postgres), migrates a template database once, and runs every
 * test file with node's test runner; each file clones the template into a database of its own.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmod, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { createLogger } from "../src/logger.js";
import { createPool } from "../src/db/pool.js";
import { migrate } from "../src/db/migrate.js";
import { startEmbeddedPostgres } from "../src/db/embedded-postgres.js";
import { freePort } from "./support/free-port.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const logger = createLogger(process.env.TEST_LOG_LEVEL === "debug" ? "debug" : "warn");

interface Server {
  adminUrl: string;
  describe: string;
  stop(): Promise<void>;
}

async function chooseServer(): Promise<Server> {
  if (process.env.TEST_DATABASE_URL) {
    return { adminUrl: process.env.TEST_DATABASE_URL, describe: "TEST_DATABASE_URL", stop: async () => undefined };
  }
  if (spawnSync("docker", ["info"], { stdio: "ignore", timeout: 10_000 }).status === 0) {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:15-alpine").start();
    return { adminUrl: container.getConnectionUri(), describe: "testcontainers postgres:15", stop: async () => void (await container.stop()) };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "pg-webhooks-test-"));
  await chmod(dir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir: dir, port: await freePort(), logger }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    adminUrl: embedded.url,
    describe: "embedded Postgres",
    stop: async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}


function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = "/" + database;
  return parsed.toString();
}

async function main(): Promise<number> {
  const server = await chooseServer();
  const template = `pgw_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${template}`);
    await admin.query(`create database ${template}`);
    const pool = createPool(withDatabase(server.adminUrl, template), { max: 2 });
    await migrate(pool, logger);
    await pool.end();

    const files = process.argv.slice(2).length
      ? process.argv.slice(2)
      : (await readdir(here, { recursive: true }))
          .filter((file) => file.endsWith(".test.js"))
          .sort()
          .map((file) => path.join(here, file));
    console.log(`# database: ${server.describe}; ${files.length} test files`);
    const child = spawn(process.execPath, ["--test", "--test-concurrency=2", ...files], {
      stdio: "inherit",
      env: { ...process.env, TEST_ADMIN_URL: server.adminUrl, TEST_TEMPLATE_DB: template },
    });
    return await new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await admin.query(`drop database if exists ${template} with (force)`).catch(() => undefined);
    await admin.end();
    await server.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
