import { RequestError } from "./request-error.js";

/**
 * The API's keyset cursors: the last row's (created_at, id), so rows inserted meanwhile never
 * shift a page. created_at travels as Postgres printed it (microseconds kept).
 */
export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(`${createdAt}|${id}`).toString("base64url");
}

const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function decodeCursor(cursor: string | undefined): [string, string] | [null, null] {
  if (!cursor) return [null, null];
  const [at, id] = Buffer.from(cursor, "base64url").toString().split("|");
  if (!at || !id || !UUID.test(id) || !TIMESTAMP.test(at)) {
    throw new RequestError(400, "cursor: not a cursor this API gave", "cursor");
  }
  return [at, id];
}
