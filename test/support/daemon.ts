import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { loadConfig, type Config } from "../../src/config.js";
import { startDaemon, type Daemon } from "../../src/daemon.js";
import { createLogger } from "../../src/logger.js";
import { packageRoot } from "../../src/package-info.js";
import { freePort } from "./free-port.js";

/** Fast intervals so crash recovery is observable within a test's patience. */
export const testEnvironment = {
  PORT: "0",
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "error",
  WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
  WEBHOOKS_ALLOW_HTTP: "true",
  WEBHOOKS_CONCURRENCY: "8",
  WEBHOOKS_SWEEP_INTERVAL_MS: "200",
  WEBHOOKS_HEARTBEAT_INTERVAL_MS: "200",
  WEBHOOKS_STALE_DAEMON_MS: "1500",
};

/** The daemon in this process, against `databaseUrl`. */
export async function startTestDaemon(databaseUrl: string, overrides: Record<string, string> = {}): Promise<Daemon> {
  const config: Config = loadConfig({ ...testEnvironment, ...overrides, DATABASE_URL: databaseUrl });
  return startDaemon({ ...config, databaseUrl }, createLogger(config.logLevel));
}

/** `pg-webhooks start` as a child process, for kill -9. Resolves once /healthz answers 200 (unless told not to wait). */
export interface DaemonProcess {
  child: ChildProcess;
  /** Its HTTP server, e.g. `${url}/healthz`. */
  url: string;
  /** Its HTTP server's port (PORT). */
  port: number;
  output: () => string;
  /** Its structured log lines so far (JSON on stderr), parsed. */
  logLines: () => Record<string, unknown>[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The built CLI's `pg-webhooks start`, or the `start` script of package.json as `npm start` runs it (after its build). */
export type StartCommand = "pg-webhooks start" | "npm start";

export async function spawnDaemon(
  databaseUrl: string,
  overrides: Record<string, string> = {},
  { healthy = true, command = "pg-webhooks start" }: { healthy?: boolean; command?: StartCommand } = {},
): Promise<DaemonProcess> {
  const port = String(await freePort());
  const env = { PATH: process.env.PATH, ...testEnvironment, LOG_LEVEL: "info", PORT: port, ...overrides, DATABASE_URL: databaseUrl };
  const [file, args] = command === "npm start"
    ? ["sh", ["-c", (JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { scripts: { start: string } }).scripts.start]]
    : [process.execPath, [path.join(packageRoot, "dist/src/cli.js"), "start"]];
  const child = spawn(file, args, { cwd: packageRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  for (; healthy; ) {
    if (child.exitCode !== null) throw new Error(`daemon exited early (${child.exitCode}):\n${output}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`daemon did not become healthy:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    port: Number(port),
    output: () => output,
    logLines: () =>
      output.split("\n").flatMap((line) => {
        if (!line.startsWith("{")) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    kill: (signal = "SIGKILL") => {
      child.kill(signal);
      return exited;
    },
  };
}

