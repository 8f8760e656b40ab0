import { createHmac, timingSafeEqual } from "node:crypto";
import type { Pool } from "../db/pool.js";

/**
 * Sessions of the admin page (README "API and admin page"). Signing in with an API key opens a
 * session in the database (sql/000020_admin_sessions.sql): the browser keeps only its random token,
 * in an HttpOnly, SameSite=Strict cookie scoped to /admin; the key itself is never stored or sent
 * back. A session lasts 12 hours, ends at sign-out, and ends at once when its key is revoked.
 *
 * Forms that change something carry a CSRF token derived from the session token (an HMAC of it):
 * another site can neither read the cookie nor compute the token, and SameSite=Strict keeps the
 * cookie off its requests anyway.
 */

export const SESSION_COOKIE = "pgwh_admin_session";

export interface Session {
  token: string;
  organizationId: string;
}

export async function openSession(pool: Pool, key: string): Promise<(Session & { expiresAt: Date }) | undefined> {
  const { rows } = await pool.query<{ token: string; organization_id: string; expires_at: Date }>(
    "select token, organization_id, expires_at from webhooks.create_admin_session($1)", [key]);
  const row = rows[0];
  return row && { token: row.token, organizationId: row.organization_id, expiresAt: row.expires_at };
}

/** The session of a cookie's token: undefined when unknown, expired, or its key revoked. */
export async function findSession(pool: Pool, token: string | undefined): Promise<Session | undefined> {
  if (!token || !/^pgwhs_[0-9a-f]{64}$/.test(token)) return undefined;
  const { rows } = await pool.query<{ organization_id: string }>(
    "select organization_id from webhooks.authenticate_admin_session($1)", [token]);
  return rows[0] && { token, organizationId: rows[0].organization_id };
}

export async function closeSession(pool: Pool, token: string): Promise<void> {
  await pool.query("select webhooks.end_admin_session($1)", [token]);
}

export function csrfToken(session: Session): string {
  return createHmac("sha256", session.token).update("pg-webhooks admin form").digest("base64url");
}

export function csrfTokenMatches(session: Session, given: unknown): boolean {
  if (typeof given !== "string") return false;
  const expected = Buffer.from(csrfToken(session));
  const actual = Buffer.from(given);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
