import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { packageRoot } from "../../src/package-info.js";

const execFileAsync = promisify(execFile);

/** Runs the built `pg-webhooks …args` against `databaseUrl`; resolves to what it printed on stdout. */
export async function runCli(databaseUrl: string, ...args: string[]): Promise<string> {
  return runCliWithEnv(databaseUrl, {}, ...args);
}

/** runCli with more environment variables (WEBHOOKS_RETENTION_DAYS, say). */
export async function runCliWithEnv(databaseUrl: string, env: Record<string, string>, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [path.join(packageRoot, "dist/src/cli.js"), ...args], {
    env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, LOG_LEVEL: "error", ...env },
  });
  return stdout;
}
