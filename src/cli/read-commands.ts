import { limitOption, parse, uuidOption } from "./arguments.js";
import { createDb } from "../db/database.js";
import { createPool } from "../db/pool.js";

/** How often `logs --follow` looks for new attempts. */
const FOLLOW_POLL_MS = 500;
/**
 * Ids are taken when a row is inserted, not when it commits: a record statement that took lower ids
 * can commit after one that took higher ones. Following therefore re-reads the last this-many ids
 * and skips what it printed, so a late commit is still printed (once).
 */
const FOLLOW_WINDOW_IDS = 10_000;

/**
 * `pg-webhooks logs [--webhook ID] [--failed] [--limit N] [--follow]`: the latest attempts, oldest
 * first, one JSON object per line; with --follow it then prints each new attempt as it is written,
 * until interrupted (SIGINT/SIGTERM). Never a request's headers or body (see webhook_logs).
 * Following reads a primary-key range (`id > …`), so it costs the same on any history.
 */
export async function printLogs(url: string, args: string[], signal?: AbortSignal): Promise<void> {
  const values = parse(args, { webhook: { type: "string" }, failed: { type: "boolean" }, limit: { type: "string" }, follow: { type: "boolean" } });
  const webhookId = uuidOption(values.webhook, "--webhook");
  const limit = limitOption(values.limit);
  const pool = createPool(url, { max: 1 });
  const db = createDb(pool);
  const attempts = (range: { upTo: number } | { after: number }) =>
    db
      .selectFrom("webhooks.webhook_logs")
      .select(["id", "created_at", "webhook_id", "event_type", "attempt", "response_status", "success", "duration_ms", "error"])
      .$if(webhookId !== undefined, (q) => q.where("webhook_id", "=", webhookId!))
      .$if(values.failed === true, (q) => q.where("success", "=", false))
      .$if("after" in range, (q) => q.where("id", ">", (range as { after: number }).after).orderBy("id", "asc"))
      .$if("upTo" in range, (q) => q.where("id", "<=", (range as { upTo: number }).upTo).orderBy("id", "desc").limit(limit))
      .execute();
  try {
    // The newest attempt now (not only the newest printed: --failed may skip some) bounds both parts.
    const { max } = await db.selectFrom("webhooks.webhook_logs").select((eb) => eb.fn.max("id").as("max")).executeTakeFirstOrThrow();
    let newest = Number(max ?? 0);
    const printed = new Set<number>();
    const latest = (await attempts({ upTo: newest })).reverse();
    for (const row of latest) {
      printed.add(row.id);
      console.log(JSON.stringify(row));
    }
    // Older than what --limit printed is history, not news: never printed while following.
    const floor = latest.length === limit ? latest[0]!.id : 0;
    while (values.follow && !signal?.aborted) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FOLLOW_POLL_MS);
        signal?.addEventListener("abort", () => (clearTimeout(timer), resolve(undefined)), { once: true });
      });
      if (signal?.aborted) break;
      for (const row of await attempts({ after: Math.max(floor, newest - FOLLOW_WINDOW_IDS) })) {
        newest = Math.max(newest, row.id);
        if (printed.has(row.id)) continue;
        printed.add(row.id);
        console.log(JSON.stringify(row));
      }
      for (const id of printed) if (id <= newest - FOLLOW_WINDOW_IDS) printed.delete(id);
    }
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
