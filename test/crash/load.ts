import { setTimeout as delay } from "node:timers/promises";
import type { Pool } from "../../src/db/pool.js";
import type { Receiver } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";

/**
 * Shared by the crash tests: a stream of contact inserts that records exactly which ones
 * committed, and the checks that every committed one reached the receiver and ended `succeeded`.
 */
export interface InsertStream {
  /** Ids of contacts whose insert committed (the payload's data.id). */
  readonly committed: string[];
  /** Inserts whose outcome is unknown or failed (e.g. Postgres was down): never counted. */
  readonly failures: number;
  /** Resolves once at least `count` inserts have committed since the call. */
  committedAtLeast(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Inserts one contact every `intervalMs` (retrying after errors) until stopped, `max` commit, or `maxMs` pass. */
export function streamContacts(
  pool: Pool,
  organizationId: string,
  { intervalMs = 5, max = 400, maxMs = 30_000 }: { intervalMs?: number; max?: number; maxMs?: number } = {},
): InsertStream {
  const committed: string[] = [];
  let failures = 0;
  let stopped = false;
  const deadline = Date.now() + maxMs;
  const loop = (async () => {
    while (!stopped && committed.length < max && Date.now() < deadline) {
      try {
        const { rows } = await pool.query<{ id: string }>(
          "insert into contacts (organization_id, first_name) values ($1, $2) returning id",
          [organizationId, `contact ${committed.length}`],
        );
        committed.push(rows[0]!.id);
        await delay(intervalMs);
      } catch {
        failures += 1;
        await delay(50);
      }
    }
  })();
  return {
    committed,
    get failures() {
      return failures;
    },
    async committedAtLeast(count, timeoutMs = 20_000) {
      const target = committed.length + count;
      await waitFor(`${count} more committed inserts`, () => committed.length >= target, timeoutMs);
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** How many requests the receiver got per contact id (payload data.id). */
export function receivedContactIds(receiver: Receiver): Map<string, number> {
  const counts = new Map<string, number>();
  for (const request of receiver.requests) {
    const id = (JSON.parse(request.body) as { data: { id: string } }).data.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Waits until every id in `ids` has reached the receiver at least once. */
export async function waitUntilReceived(receiver: Receiver, ids: readonly string[], timeoutMs = 60_000): Promise<void> {
  await waitFor(
    `all ${ids.length} committed events at the receiver`,
    () => {
      const received = receivedContactIds(receiver);
      return ids.every((id) => received.has(id));
    },
    timeoutMs,
  ).catch((error: Error) => {
    const received = receivedContactIds(receiver);
    const missing = ids.filter((id) => !received.has(id));
    throw new Error(`${error.message}; ${missing.length} never arrived, e.g. ${missing.slice(0, 3).join(", ")}`);
  });
}

export interface DeliverySummary {
  /** Deliveries per state, over all of webhooks.deliveries. */
  states: Record<string, number>;
  /** Committed contact ids with a succeeded delivery to every endpoint. */
  succeededContacts: number;
  outbox: number;
  /** Deliveries still queued or claimed (webhooks.delivery_queue). */
  jobs: number;
}

export async function summarizeDeliveries(pool: Pool, contactIds: readonly string[], endpoints = 1): Promise<DeliverySummary> {
  const { rows: states } = await pool.query<{ state: string; count: number }>(
    "select state, count(*)::int as count from webhooks.deliveries group by state",
  );
  const { rows: done } = await pool.query<{ count: number }>(
    `select count(*)::int as count from (
       select e.body::jsonb->'data'->>'id' as contact_id
         from webhooks.deliveries d join webhooks.events e on e.id = d.event_id
        where d.state = 'succeeded' and e.body::jsonb->'data'->>'id' = any ($1::text[])
        group by 1 having count(*) = $2) per_contact`,
    [contactIds, endpoints],
  );
  const { rows: outbox } = await pool.query<{ count: number }>("select count(*)::int as count from webhooks.outbox");
  const { rows: jobs } = await pool.query<{ count: number }>("select count(*)::int as count from webhooks.delivery_queue");
  return {
    states: Object.fromEntries(states.map((row) => [row.state, row.count])),
    succeededContacts: done[0]!.count,
    outbox: outbox[0]!.count,
    jobs: jobs[0]!.count,
  };
}

/**
 * Waits until every committed contact has a succeeded delivery per endpoint and nothing is left
 * pending: no delivery in another state, an empty outbox, no job queued or locked.
 */
export async function waitUntilAllSucceeded(
  pool: Pool,
  contactIds: readonly string[],
  { endpoints = 1, timeoutMs = 60_000 }: { endpoints?: number; timeoutMs?: number } = {},
): Promise<DeliverySummary> {
  let last: DeliverySummary | undefined;
  try {
    return await waitFor(
      "every committed event's deliveries to succeed",
      async () => {
        last = await summarizeDeliveries(pool, contactIds, endpoints);
        const unfinished = Object.entries(last.states).some(([state, count]) => state !== "succeeded" && count > 0);
        const done = last.succeededContacts === contactIds.length && !unfinished && last.outbox === 0 && last.jobs === 0;
        return done ? last : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; expected ${contactIds.length} contacts, last saw ${JSON.stringify(last)}`, { cause: error });
  }
}
