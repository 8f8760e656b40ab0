import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { packageRoot } from "../../src/package-info.js";
import type { Snippet } from "./markdown-snippets.js";

/** An argument that reaches the snippet as bytes (Node: Buffer, Python: bytes). */
export interface Bytes {
  base64: string;
}

export const bytes = (value: Buffer): Bytes => ({ base64: value.toString("base64") });

/** One call of a function the snippet defines. Arguments travel as JSON; `Bytes` become bytes. */
export interface Call {
  call: string;
  args: unknown[];
}

/**
 * Node runner: imports the snippet's module, makes each call (awaiting promises) and prints the
 * results as one JSON array. Bytes arguments become Buffers.
 */
const NODE_RUNNER = `
import { readFileSync } from "node:fs";
const snippet = await import(process.argv[2]);
const calls = JSON.parse(readFileSync(0, "utf8"));
const decode = (arg) => arg && typeof arg === "object" && Object.keys(arg).join() === "base64" ? Buffer.from(arg.base64, "base64") : arg;
const results = [];
for (const { call, args } of calls) {
  if (typeof snippet[call] !== "function") throw new Error("the snippet exports no function " + call);
  results.push(await snippet[call](...args.map(decode)));
}
process.stdout.write(JSON.stringify(results));
`;

/** Python runner: executes the snippet's source as a module, then the same protocol. */
const PYTHON_RUNNER = `
import base64, json, sys
path = sys.argv[1]
namespace = {"__name__": "snippet"}
with open(path, encoding="utf-8") as source:
    exec(compile(source.read(), path, "exec"), namespace)
calls = json.load(sys.stdin)
decode = lambda arg: base64.b64decode(arg["base64"]) if isinstance(arg, dict) and list(arg) == ["base64"] else arg
results = []
for call in calls:
    if not callable(namespace.get(call["call"])):
        raise SystemExit("the snippet defines no function " + call["call"])
    results.append(namespace[call["call"]](*[decode(arg) for arg in call["args"]]))
json.dump(results, sys.stdout)
`;

/**
 * Runs documentation snippets in child processes: Node snippets as ES modules (written under the
 * package, so that `import "standardwebhooks"` resolves to its node_modules), Python snippets with
 * `python3`, shell snippets with `bash`. A missing interpreter is an error, never a skip.
 */
export class SnippetRunner {
  private constructor(private readonly directory: string) {}

  static async create(): Promise<SnippetRunner> {
    const directory = path.join(packageRoot, "dist", "test", "docs", `snippets-${randomBytes(4).toString("hex")}`);
    await mkdir(directory, { recursive: true });
    await writeFile(path.join(directory, "run.mjs"), NODE_RUNNER);
    await writeFile(path.join(directory, "run.py"), PYTHON_RUNNER);
    return new SnippetRunner(directory);
  }

  /** Makes `calls` against the functions `snippet` defines; resolves to their results, in order. */
  async call(snippet: Snippet, calls: Call[]): Promise<unknown[]> {
    const file = path.join(this.directory, `${snippet.name.replace(/[^a-z0-9]+/gi, "-")}.${snippet.language === "python" ? "py" : "mjs"}`);
    await writeFile(file, snippet.code);
    const [command, args] =
      snippet.language === "python"
        ? ["python3", [path.join(this.directory, "run.py"), file]]
        : snippet.language === "js"
          ? [process.execPath, [path.join(this.directory, "run.mjs"), pathToFileURL(file).href]]
          : unsupported(snippet);
    const { stdout } = await run(command, args, { input: JSON.stringify(calls) });
    return JSON.parse(stdout) as unknown[];
  }

  /** Runs a shell snippet with `bash -eu`, the environment given; resolves to its output. */
  async shell(snippet: Snippet, env: Record<string, string>): Promise<string> {
    if (snippet.language !== "sh") unsupported(snippet);
    const { stdout } = await run("bash", ["-eu", "-c", snippet.code], { env: { PATH: process.env.PATH ?? "", ...env } });
    return stdout;
  }

  async remove(): Promise<void> {
    await rm(this.directory, { recursive: true, force: true });
  }
}

function unsupported(snippet: Snippet): never {
  throw new Error(`snippet "${snippet.name}": no runner for \`\`\`${snippet.language}`);
}

/** Runs a command to completion; rejects on a missing command, a non-zero exit or 60 s. */
function run(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"], timeout: 60_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", (error: NodeJS.ErrnoException) => {
      reject(
        error.code === "ENOENT"
          ? new Error(`${command} is not installed or not on PATH: the documentation's snippets need it to be proven`)
          : error,
      );
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve({ stdout });
      else reject(new Error(`${command} ${args.join(" ")} exited with ${code ?? signal}:\n${stderr}${stdout}`));
    });
    child.stdin.on("error", () => undefined); // a child that exits early: its exit code tells
    child.stdin.end(options.input ?? "");
  });
}
