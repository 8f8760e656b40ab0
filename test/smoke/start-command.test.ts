import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import pg from "pg";
import { packageRoot } from "../../src/package-info.js";
import { freePort } from "../support/free-port.js";
import { waitFor } from "../support/wait.js";


test("`pg-webhooks start` without DATABASE_URL runs embedded Postgres, prints a working try-it, delivers, and exits 0 on SIGTERM", { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "pgw-start-"));
  await chmod(dataDir, 0o755);
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli.js"), "start"], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      WEBHOOKS_EMBEDDED_PG_PORT: String(await freePort()),
      WEBHOOKS_DATA_DIR: dataDir,
      // What `npm start` sets: the try-it snippet delivers to the built-in echo receiver.
      WEBHOOKS_DEMO_ECHO: "true",
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOKS_ALLOW_HTTP: "true",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await waitFor("the printed DATABASE_URL", () => /DATABASE_URL=(\S+)/.exec(stdout)?.[1], 90_000);
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
    assert.equal(await exited, 0, stderr);
  } finally {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  }
  assert.equal(/whsec_/.test(stdout + stderr), false, "no secret in the daemon's output");
});
