import type { Pool } from "../db/pool.js";

/**
 * Makes due the first delivery of each fifo lane that waits with nothing ahead of it
 * (webhooks._advance_lanes, sql/000021_fifo_lanes.sql): the repair of the one race the record
 * statement's hand-over cannot see — a fan-out queuing behind a lane's head while that head ends.
 * Run with every heartbeat; without fifo endpoints it reads an empty index. Returns how many.
 */
export async function advanceStuckLanes(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ advanced: number }>("select webhooks._advance_lanes() as advanced");
  return rows[0]!.advanced;
}
