import { parseArgs } from "node:util";
import { createDb } from "../db/database.js";
import { createPool } from "../db/pool.js";

/** A command line the read commands refuse: printed with the command's usage, exit code 1. */
export class UsageError extends Error {
  override name = "UsageError";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuidOption(value: string | undefined, flag: string): string | undefined {
  if (value !== undefined && !UUID.test(value)) throw new UsageError(`${flag} must be a uuid`);
  return value;
}

function limitOption(value: string | undefined): number {
  const limit = Number(value ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError("--limit must be a whole number from 1 to 10000");
  return limit;
}

function parse<T extends Record<string, { type: "string" | "boolean" }>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * `pg-webhooks logs [--webhook ID] [--failed] [--limit N]`: the latest attempts, oldest first, one
 * JSON object per line. Never a request's headers or body (they may be long; see webhook_logs).
 */
export async function printLogs(url: string, args: string[]): Promise<void> {
  const values = parse(args, { webhook: { type: "string" }, failed: { type: "boolean" }, limit: { type: "string" } });
  const webhookId = uuidOption(values.webhook, "--webhook");
  const limit = limitOption(values.limit);
  const pool = createPool(url, { max: 1 });
  const db = createDb(pool);
  try {
    let query = db
      .selectFrom("webhooks.webhook_logs")
      .select(["created_at", "webhook_id", "event_type", "attempt", "response_status", "success", "duration_ms", "error"])
      .orderBy("id", "desc")
      .limit(limit);
    if (webhookId) query = query.where("webhook_id", "=", webhookId);
    if (values.failed) query = query.where("success", "=", false);
    for (const row of (await query.execute()).reverse()) console.log(JSON.stringify(row));
  } finally {
    await pool.end();
  }
}

/**
 * `pg-webhooks intake [--integration ID] [--limit N] [--refusals]`: the latest signed inbound
 * requests, or the per-minute counts of those refused before authentication. Never an
 * integration's signing secret: only activity columns.
 */
export async function printIntake(url: string, args: string[]): Promise<void> {
  const values = parse(args, { integration: { type: "string" }, limit: { type: "string" }, refusals: { type: "boolean" } });
  const integrationId = uuidOption(values.integration, "--integration");
  const limit = limitOption(values.limit);
  const pool = createPool(url, { max: 1 });
  const db = createDb(pool);
  try {
    const rows = values.refusals
      ? await db
          .selectFrom("webhooks.intake_refusals")
          .select(["minute", "integration_id", "organization_id", "reason", "http_status", "count"])
          .$if(integrationId !== undefined, (q) => q.where("integration_id", "=", integrationId!))
          .orderBy("minute", "desc")
          .orderBy("count", "desc")
          .limit(limit)
          .execute()
      : await db
          .selectFrom("webhooks.intake_activity")
          .select(["received_at", "request_id", "integration_id", "organization_id", "event_id", "idempotency_key", "http_status",
                   "outcome", "error", "contact_id", "deal_id", "processed_at"])
          .$if(integrationId !== undefined, (q) => q.where("integration_id", "=", integrationId!))
          .orderBy("id", "desc")
          .limit(limit)
          .execute();
    for (const row of rows.reverse()) console.log(JSON.stringify(row));
  } finally {
    await pool.end();
  }
}
