import type { FastifyReply } from "fastify";

/** The API's names of configuration columns that it renames (timeout is timeout_seconds). */
const FIELD_OF_COLUMN: Record<string, string> = { timeout_seconds: "timeout" };

export interface Refusal {
  status: 400 | 404 | 409 | 503;
  error: string;
  /** The API's name of the refused field, where the database named a column. */
  field: string | null;
}

/**
 * What the database's refusal of a request means to its client, or undefined for a failure that
 * is not the request's: a value its checks refuse (naming the column, by the API's field name:
 * 400), a row that is not there or is another organization's (404, never 403), a duplicate (409),
 * a request that ran past its statement timeout (503).
 */
export function describeRefusal(error: unknown): Refusal | undefined {
  const { code, column, message } = (error ?? {}) as { code?: unknown; column?: unknown; message?: unknown };
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  if (code === "P0002") return { status: 404, error: message, field: null };
  // statement_timeout (organization-transaction.ts): the request asked for too much at once.
  if (code === "57014") return { status: 503, error: "the request took too long; narrow it (filters, a smaller limit) or try again", field: null };
  if (code === "23505") return { status: 409, error: message, field: null };
  if (/^(22|23)/.test(code)) {
    return { status: 400, error: message, field: typeof column === "string" ? (FIELD_OF_COLUMN[column] ?? column) : null };
  }
  return undefined;
}

/** The API's answer to such a refusal: `{"error", "field"}` (400) or `{"error"}`; undefined otherwise. */
export function answerDatabaseRefusal(error: unknown, reply: FastifyReply): FastifyReply | undefined {
  const refusal = describeRefusal(error);
  if (!refusal) return undefined;
  const { status, ...body } = refusal;
  return reply.code(status).send(status === 400 ? body : { error: body.error });
}
