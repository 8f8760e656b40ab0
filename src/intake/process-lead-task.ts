import type { Task } from "graphile-worker";
import type { Pool } from "../db/pool.js";
import type { Logger } from "../logger.js";

/** Queued by webhooks._accept_lead with payload {"eventId": "ev_…"} in the request's transaction. */
export const PROCESS_LEAD_TASK = "webhooks.process_lead";

const EVENT_ID = /^ev_[0-9a-f]{32}$/;

/**
 * Turns an accepted lead into a contact and a deal (webhooks._process_lead; idempotent, so a job
 * run twice after a crash changes nothing the second time). A malformed payload or an unknown
 * event is logged and dropped: running it again could not succeed. A database failure throws and
 * graphile-worker retries the job.
 */
export function createProcessLeadTask({ pool, logger }: { pool: Pool; logger: Logger }): Task {
  return async (payload) => {
    const eventId = (payload as { eventId?: unknown } | null)?.eventId;
    if (typeof eventId !== "string" || !EVENT_ID.test(eventId)) {
      logger.error("process_lead job without a valid eventId; dropped", { payload });
      return;
    }
    try {
      const { rows } = await pool.query<{ contact_id: string; deal_id: string }>("select * from webhooks._process_lead($1)", [eventId]);
      if (rows[0]) logger.debug("lead processed", { eventId, contactId: rows[0].contact_id, dealId: rows[0].deal_id });
      else logger.warn("lead could not be processed; see webhooks.intake_activity.error", { eventId });
    } catch (error) {
      if ((error as { code?: string }).code === "P0002") {
        logger.error("process_lead job for an unknown event; dropped", { eventId });
        return;
      }
      throw error;
    }
  };
}
