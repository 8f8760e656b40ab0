import assert from "node:assert/strict";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { packageRoot } from "../../src/package-info.js";
import { startAndTryIt } from "../support/newcomer.js";

test("`pg-webhooks start` without DATABASE_URL runs embedded Postgres, prints a working try-it, delivers, and exits 0 on SIGTERM", { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "pgw-start-"));
  await chmod(dataDir, 0o755);
  try {
    const run = await startAndTryIt(packageRoot, { WEBHOOKS_DATA_DIR: dataDir });
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(/whsec_/.test(run.stdout + run.stderr), false, "no secret in the daemon's output");
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
