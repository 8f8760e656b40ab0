import { parseArgs } from "node:util";

/** A command line a command refuses: printed with the usage, exit code 1. */
export class UsageError extends Error {
  override name = "UsageError";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function uuidOption(value: string | undefined, flag: string): string | undefined {
  if (value !== undefined && !UUID.test(value)) throw new UsageError(`${flag} must be a uuid`);
  return value;
}

export function limitOption(value: string | undefined): number {
  const limit = Number(value ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError("--limit must be a whole number from 1 to 10000");
  return limit;
}

/** The options of a command line (strict: an unknown option is a UsageError), and its positionals. */
export function parse<T extends Record<string, { type: "string" | "boolean" }>>(args: string[], options: T, positionals = false) {
  try {
    const parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals });
    return { ...parsed.values, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
