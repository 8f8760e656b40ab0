import type { Pool } from "../../src/db/pool.js";

/** An outbox row as the capture tests read it (no daemon runs there, so captured rows stay put). */
export interface OutboxRow {
  event_id: string;
  event_type: string;
  organization_id: string;
  data: Record<string, unknown>;
  old_data: Record<string, unknown> | null;
  webhook_id: string | null;
}

/** The outbox rows that `write` added, in capture order. */
export async function outboxRowsAdded(pool: Pool, write: () => Promise<unknown>): Promise<OutboxRow[]> {
  const { rows: [mark] } = await pool.query<{ last: number }>("select coalesce(max(id), 0) as last from webhooks.outbox");
  await write();
  const { rows } = await pool.query<OutboxRow>(
    "select event_id, event_type, organization_id, data, old_data, webhook_id from webhooks.outbox where id > $1 order by id",
    [mark!.last],
  );
  return rows;
}
