import type { Pool } from "../db/pool.js";
import { describeError, type Logger } from "../logger.js";
import { isDataError, runIsolatingFailures } from "../util/isolate-failures.js";
import { fanOutStatement, oldestOutboxIdsStatement, setAsideStatement, type OutboxSelection } from "./fan-out-statement.js";

export interface FanOutResult {
  events: number;
  deliveries: number;
  /** Outbox rows moved to webhooks.outbox_set_aside because the fan-out failed on them alone. */
  setAside: number;
}

/** A cheap check (one primary-key probe) before a fan-out transaction. */
export async function outboxHasEvents(pool: Pool): Promise<boolean> {
  const { rowCount } = await pool.query({ name: "pg-webhooks:outbox-has-events", text: "select 1 from webhooks.outbox order by id limit 1" });
  return (rowCount ?? 0) > 0;
}

/**
 * Fans out the oldest `limit` outbox rows in one statement. Should that fail because of a row's
 * contents, the same rows are fanned out again in halves, down to single rows, and a row that
 * fails alone is set aside with its error: every other event flows.
 */
export async function fanOut(pool: Pool, limit: number, logger: Logger): Promise<FanOutResult> {
  try {
    return await fanOutSelection(pool, { limit });
  } catch (error) {
    if (!isDataError(error)) throw error;
    logger.warn("fan-out failed on a batch; retrying it in halves to find the row", { error: describeError(error) });
  }
  const { rows } = await pool.query<{ id: number }>(oldestOutboxIdsStatement(limit));
  const outcomes = await runIsolatingFailures(rows.map((row) => row.id), async (ids) => {
    const result = await fanOutSelection(pool, { ids });
    return ids.map(() => result);
  });
  const total: FanOutResult = { events: 0, deliveries: 0, setAside: 0 };
  const counted = new Set<FanOutResult>();
  for (const [index, outcome] of outcomes.entries()) {
    if (outcome.ok) {
      if (counted.has(outcome.value)) continue;
      counted.add(outcome.value);
      total.events += outcome.value.events;
      total.deliveries += outcome.value.deliveries;
    } else if (isDataError(outcome.error)) {
      const id = rows[index]!.id;
      const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      const { rows: moved } = await pool.query<{ event_id: string }>(setAsideStatement(id, message));
      if (moved.length > 0) {
        total.setAside += 1;
        logger.error("set aside an event the fan-out fails on; every other event flows", {
          outboxId: id,
          eventId: moved[0]!.event_id,
          error: describeError(outcome.error),
          hint: "select * from webhooks.outbox_set_aside; then webhooks.release_set_aside(id) or webhooks.discard_set_aside(id)",
        });
      }
    } else {
      throw outcome.error;
    }
  }
  return total;
}

async function fanOutSelection(pool: Pool, selection: OutboxSelection): Promise<FanOutResult> {
  const { rows } = await pool.query<{ events: number; deliveries: number }>(fanOutStatement(selection));
  return { events: rows[0]?.events ?? 0, deliveries: rows[0]?.deliveries ?? 0, setAside: 0 };
}
