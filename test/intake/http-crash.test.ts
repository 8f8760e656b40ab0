import assert from "node:assert/strict";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// docs/intake.md: a crash right after a 202 still produces the lead (the job is queued in the
// transaction that recorded the request, before the answer is sent).

const h = useHarness();

// The killed daemon's worker often has the process_lead job locked already: the new daemon's
// registry must unlock it (DaemonRegistry.reapStale covers every task the daemon runs), or the lead
// would wait for graphile-worker's 4-hour lock expiry.

test("a daemon killed with SIGKILL right after answering 202 still yields the lead once a new daemon runs", async () => {
  const org = await createOrganization(h.db.pool, "Crash");
  const integration = await createIntegration(h.db.pool, org);
  const child = await h.spawnDaemon();
  // spawnDaemon picks the port; the daemon logs it once running.
  const port = await waitFor("the daemon's port in its log", () => /"port":(\d+)/.exec(child.output())?.[1]);
  const base = `http://127.0.0.1:${port}`;
  const response = await signedPost(base, integration, JSON.stringify({ customer_phone: "+15550106070", first_name: "Kill" }), { key: "crash-1" });
  await child.kill("SIGKILL");
  assert.equal(response.status, 202);
  const { event_id: eventId } = (await response.json()) as { event_id: string };

  await h.startDaemon();
  const lead = await waitFor("the lead processed by the new daemon", async () => {
    const { rows } = await h.db.pool.query("select contact_id, deal_id from webhooks.intake_activity where event_id = $1 and outcome = 'processed'", [eventId]);
    return rows[0] as { contact_id: string; deal_id: string } | undefined;
  });
  const { rows } = await h.db.pool.query("select count(*)::int as n from deals where contact_id = $1", [lead.contact_id]);
  assert.equal(rows[0].n, 1);
});
