import { createHash, randomBytes } from "node:crypto";
import type { Pool } from "../../src/db/pool.js";

export interface AcceptResult {
  http_status: number;
  status: string;
  event_id: string | null;
}

export function requestId(): string {
  return `req_${randomBytes(8).toString("hex")}`;
}

export function sha256(body: unknown): string {
  return createHash("sha256").update(JSON.stringify(body)).digest("hex");
}

export async function createIntegration(
  pool: Pool,
  organizationId: string,
  values: Record<string, unknown> = {},
): Promise<{ id: string; signing_secret: string }> {
  const all: Record<string, unknown> = { organization_id: organizationId, name: "Landing page", ...values };
  const columns = Object.keys(all);
  const params = Object.values(all);
  const { rows } = await pool.query(
    `insert into webhooks.inbound_integrations (${columns.join(", ")})
     values (${columns.map((_, i) => `$${i + 1}`).join(", ")}) returning id, signing_secret`,
    params,
  );
  return rows[0];
}

/** Calls webhooks._accept_lead the way the HTTP layer will: one autocommit statement. */
export async function acceptLead(pool: Pool, integrationId: string, key: string, body: unknown): Promise<AcceptResult> {
  const { rows } = await pool.query<AcceptResult>(
    "select * from webhooks._accept_lead($1, $2, $3, $4, $5)",
    [integrationId, requestId(), key, sha256(body), JSON.stringify(body)],
  );
  return rows[0]!;
}

export async function processLead(pool: Pool, eventId: string): Promise<{ contact_id: string; deal_id: string } | undefined> {
  const { rows } = await pool.query("select * from webhooks._process_lead($1)", [eventId]);
  return rows[0];
}
