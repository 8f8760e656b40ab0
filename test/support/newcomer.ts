import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import pg from "pg";
import { freePort } from "./free-port.js";
import { waitFor } from "./wait.js";

/** What a newcomer saw: everything `pg-webhooks start` printed, and how it exited after SIGTERM. */
export interface StartRun {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/**
 * `pg-webhooks start` without DATABASE_URL from `projectDir`, as a newcomer runs it: waits for the
 * printed DATABASE_URL, checks /healthz, runs the printed "try it" statements, waits for the
 * successful contact.created attempt in webhook_logs, then sends SIGTERM.
 */
export async function startAndTryIt(projectDir: string, env: Record<string, string> = {}): Promise<StartRun> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(projectDir, "dist/src/cli.js"), "start"], {
    cwd: projectDir,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      WEBHOOKS_EMBEDDED_PG_PORT: String(await freePort()),
      // What `npm start` sets: the try-it snippet delivers to the built-in echo receiver.
      WEBHOOKS_DEMO_ECHO: "true",
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOKS_ALLOW_HTTP: "true",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await Promise.race([
      waitFor("the printed DATABASE_URL", () => /DATABASE_URL=(\S+)/.exec(stdout)?.[1], 90_000),
      exited.then((code) => Promise.reject(new Error(`pg-webhooks start exited with ${code} before printing DATABASE_URL`))),
    ]).catch((error: Error) => {
      throw new Error(`${error.message}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`);
    });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);

    // Run the statements of the printed "try it" line, as a newcomer would paste them.
    const statements = /-c "(insert into organizations[^"]+)"/.exec(stdout)?.[1];
    assert.ok(statements, `no try-it snippet in:\n${stdout}`);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(statements);
      const log = await waitFor("a successful attempt in webhook_logs", async () => {
        const { rows } = await client.query("select event_type, response_status, success from webhooks.webhook_logs where success");
        return rows.find((row) => row.event_type === "contact.created");
      });
      assert.equal(log.response_status, 200);
    } finally {
      await client.end();
    }
    child.kill("SIGTERM");
    return { stdout, stderr, exitCode: await exited };
  } finally {
    child.kill("SIGKILL");
  }
}
