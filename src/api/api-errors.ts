import type { FastifyReply } from "fastify";

/** The API's names of configuration columns that it renames (timeout is timeout_seconds). */
const FIELD_OF_COLUMN: Record<string, string> = { timeout_seconds: "timeout" };

/**
 * What the database's refusal of a request means to its client, or undefined for a failure that
 * is not the request's: a value its checks refuse (naming the column: 400 with the API's field
 * name), a row that is not there or is another organization's (404, never 403), a duplicate (409).
 */
export function answerDatabaseRefusal(error: unknown, reply: FastifyReply): FastifyReply | undefined {
  const { code, column, message } = (error ?? {}) as { code?: unknown; column?: unknown; message?: unknown };
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  if (code === "P0002") return reply.code(404).send({ error: message });
  if (code === "23505") return reply.code(409).send({ error: message });
  if (/^(22|23)/.test(code)) {
    const field = typeof column === "string" ? (FIELD_OF_COLUMN[column] ?? column) : null;
    return reply.code(400).send({ error: message, field });
  }
  return undefined;
}
