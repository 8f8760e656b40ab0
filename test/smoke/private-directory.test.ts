import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, cp, mkdtemp, realpath, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { packageRoot } from "../../src/package-info.js";
import { freePort } from "../support/free-port.js";
import { startAndTryIt } from "../support/newcomer.js";

const execFileAsync = promisify(execFile);
const asRoot = process.getuid?.() === 0;

// Root's home is 0700 on cloud VMs and in containers. As root, Postgres runs as the `postgres` OS
// user, which cannot traverse such a directory to reach node_modules' binaries or `.data/`.
let home = "";
let project = "";
let reachableTmp = "";

before(async () => {
  if (!asRoot) return;
  home = await mkdtemp(path.join(os.tmpdir(), "pgw-private-home-"));
  await chmod(home, 0o700);
  project = path.join(home, "pg-webhooks");
  if (existsSync(path.join(packageRoot, ".git"))) {
    await execFileAsync("git", ["clone", "--quiet", packageRoot, project]);
  } else {
    for (const entry of ["package.json", "sql"]) await cp(path.join(packageRoot, entry), path.join(project, entry), { recursive: true });
  }
  // What `npm install` (and the build `npm start` runs first) would put there.
  for (const entry of ["node_modules", "dist"]) {
    await cp(await realpath(path.join(packageRoot, entry)), path.join(project, entry), { recursive: true, verbatimSymlinks: true });
  }
  reachableTmp = await mkdtemp(path.join(os.tmpdir(), "pgw-private-tmp-"));
  await chmod(reachableTmp, 0o755);
});

after(async () => {
  if (home) await rm(home, { recursive: true, force: true });
  if (reachableTmp) await rm(reachableTmp, { recursive: true, force: true });
});

test("as root in a 0700 directory, `pg-webhooks start` runs embedded Postgres, delivers the try-it event and exits 0", { skip: !asRoot && "needs root: the case is root with a private home", timeout: 240_000 }, async () => {
  assert.equal((await stat(home)).mode & 0o777, 0o700);
  const run = await startAndTryIt(project, { TMPDIR: reachableTmp });
  assert.equal(run.exitCode, 0, run.stderr);
  assert.doesNotMatch(run.stdout + run.stderr, /EACCES|Unhandled|\n\s+at /, "no spawn error, no stack trace");
});

test("when nothing the postgres user can reach is left, start stops with one paragraph that says what to do", { skip: !asRoot && "needs root", timeout: 120_000 }, async () => {
  const privateTmp = await mkdtemp(path.join(home, "tmp-"));
  await chmod(privateTmp, 0o700);
  const result = await execFileAsync(process.execPath, [path.join(project, "dist/src/cli.js"), "start"], {
    cwd: project,
    env: { PATH: process.env.PATH, TMPDIR: privateTmp, PORT: String(await freePort()), WEBHOOKS_EMBEDDED_PG_PORT: String(await freePort()) },
  }).then(
    () => assert.fail("start succeeded although the postgres user can reach nothing"),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, /postgres" OS user/);
  assert.match(result.stderr, /TMPDIR/);
  assert.match(result.stderr, /DATABASE_URL/);
  assert.doesNotMatch(result.stderr, /\n\s+at |EACCES/, "a message, not a stack trace");
});
