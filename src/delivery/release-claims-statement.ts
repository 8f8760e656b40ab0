import type { Statement } from "../capture/fan-out-statement.js";
import { insertAttemptLogs, storedRequestBody } from "./record-statement.js";

/**
 * What an interrupted attempt's log row and its delivery's last_error say, naming the daemon
 * that held the claim.
 */
const INTERRUPTED = `format('interrupted: the daemon sending this attempt stopped (%s) before recording its outcome; the receiver may or may not have got it', claim.claimed_by)`;

/** The same for a claim its daemon never learnt of: the reply to the claim's COMMIT was lost. */
const STRAY = `format('interrupted: this attempt was never made: the daemon that claimed it (%s) lost the reply to its claim with its connection', claim.claimed_by)`;

/**
 * Gives back claimed deliveries (pure, built here and nowhere else): this daemon's, at shutdown
 * once nothing is in flight, or those of daemons no longer registered (the reaper, after a
 * crash), with their published in-flight figures. Returns whose claims they were.
 *
 * A claim is only ever held by an attempt under way whose outcome is not recorded yet (claims
 * are sent at once; recording ends the claim). So each claim given back is an interrupted
 * attempt: it gets its webhook_logs row (the number its claim took, success false, no status,
 * `error` saying so) and its delivery counts it (attempts + 1, failed, due now), in the same
 * statement as the release — crash-safe, and two daemons releasing at once release and log each
 * claim once (the second one's UPDATE finds it released). The delivery is then attempted again
 * as usual: at least once.
 */
export function releaseClaimsStatement(of: { daemonId: string; keep?: readonly string[] } | "unregistered"): Statement {
  const whose = (column: string) => (of === "unregistered" ? `${column} not in (select id from webhooks.daemons)` : `${column} = $1`);
  // A live daemon's stray claims (see DeliveryStore.releaseStrayClaims): all but those in flight;
  // its published in-flight figures stay (they are its own, and its next claim rewrites them).
  const stray = of !== "unregistered" && of.keep !== undefined;
  const reason = stray ? STRAY : INTERRUPTED;
  const logged = insertAttemptLogs(
    {
      organization_id: "i.organization_id",
      webhook_id: "i.webhook_id",
      event_id: "i.event_id",
      delivery_id: "i.id",
      event_type: "e.event_type",
      attempt: "i.attempts",
      url: "c.url",
      // What was sent is unknown: its signature and timestamp were never recorded.
      request_headers: "'{}'::jsonb",
      request_body: storedRequestBody("i.event_id", "i.event_dispatched_at"),
      response_status: "null",
      response_headers: "null",
      response_body: "null",
      error: "i.last_error",
      duration_ms: "null",
      success: "false",
    },
    `from interrupted i
         join webhooks.events e on e.id = i.event_id and e.dispatched_at = i.event_dispatched_at
         join webhooks.webhook_configurations c on c.id = i.webhook_id`,
  );
  return {
    text: `with released as (
       update webhooks.delivery_queue q set claimed_by = null, claimed_at = null, retry = true,
              -- The interrupted attempt's number (below) is taken: the next claim takes the one after.
              attempts = greatest(q.attempts, (select d.attempts + 1 from webhooks.deliveries d
                                                where d.id = q.delivery_id and d.created_at = q.delivery_created_at))
        where q.claimed_by is not null and ${whose("q.claimed_by")}${stray ? " and q.delivery_id <> all ($2::uuid[])" : ""}
       returning q.delivery_id
     ), unpublished as (
       delete from webhooks.endpoint_claims ec where ${stray ? "false" : whose("ec.daemon_id")}
     ), claim as (
       -- The statement's snapshot still holds the claims as they were.
       select q.delivery_id, q.claimed_by, q.attempts, q.delivery_created_at, q.event_dispatched_at
         from webhooks.delivery_queue q join released using (delivery_id)
     ), interrupted as (
       update webhooks.deliveries d
          -- The number the interrupted claim took (sql/000012: each claim takes the next one).
          set attempts = greatest(d.attempts + 1, claim.attempts),
              state = 'failed',
              next_attempt_at = now(),
              last_status = null,
              last_error = ${reason},
              updated_at = now(),
              completed_at = null
         from claim
        where d.id = claim.delivery_id and d.created_at = claim.delivery_created_at
       returning d.id, d.organization_id, d.webhook_id, d.event_id, d.attempts, d.last_error, claim.event_dispatched_at
     ), logged as (
       ${logged}
     )
     select claimed_by from claim`,
    values: of === "unregistered" ? [] : stray ? [of.daemonId, [...of.keep!]] : [of.daemonId],
  };
}
