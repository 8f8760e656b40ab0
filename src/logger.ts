import type { LogLevel } from "./config.js";

const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry `scope` (e.g. "dispatch", "deliver"). */
  scope(scope: string): Logger;
}

/**
 * Errors are reduced to name, message and code: a pg error's `detail` can echo a failing row,
 * and rows can hold secrets, so it is never logged.
 */
export function describeError(error: unknown): Record<string, unknown> {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, ...(typeof code === "string" ? { code } : {}) };
  }
  return { message: String(error) };
}

/** Structured JSON lines on stderr, one logger for the whole program, scoped per unit. */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
  base: Record<string, unknown> = {},
): Logger {
  const threshold = levels[level];
  const emit = (lineLevel: Exclude<LogLevel, "silent">, message: string, fields?: Record<string, unknown>) => {
    if (levels[lineLevel] < threshold) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level: lineLevel, ...base, message };
    for (const [key, value] of Object.entries(fields ?? {})) {
      entry[key] = value instanceof Error ? describeError(value) : value;
    }
    write(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    scope: (scope) => createLogger(level, write, { ...base, scope }),
  };
}
