import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { runCli } from "../support/cli.js";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// The daemon logged in as a plain webhooks_dispatcher member serves the intake endpoint, counts
// refusals and processes the lead; `pg-webhooks intake` then shows the requests without the signing secret.

const h = useHarness({ daemon: { as: "dispatcher" } });

const cli = (...args: string[]) => runCli(h.db.url, ...args);

test("as webhooks_dispatcher the daemon accepts a signed lead, refuses a bad one (counted) and one with a bad body (recorded), and processes the lead", async () => {
  const org = await createOrganization(h.db.pool, "Dispatcher intake");
  const integration = await createIntegration(h.db.pool, org);
  const base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  const accepted = await signedPost(base, integration, JSON.stringify({ customer_phone: "+15550107080" }), { key: "as-dispatcher" });
  assert.equal(accepted.status, 202);
  const { event_id: eventId } = (await accepted.json()) as { event_id: string };
  const refused = await signedPost(base, integration, "{}", { signWith: "another-secret-0123456789" });
  assert.equal(refused.status, 401);
  const noPhone = await signedPost(base, integration, "{}");
  assert.equal(noPhone.status, 400);
  await waitFor("the 401 counted", async () => {
    const { rows } = await h.db.pool.query("select count from webhooks.intake_refusals where integration_id = $1 and reason = 'invalid_signature'", [integration.id]);
    return rows[0]?.count === 1;
  });
  await waitFor("the lead processed", async () => {
    const { rows } = await h.db.pool.query("select 1 from webhooks.intake_activity where event_id = $1 and outcome = 'processed'", [eventId]);
    return rows.length > 0;
  });

  const lines = (await cli("intake", "--integration", integration.id, "--limit", "10")).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines.map((row) => [row.http_status, row.outcome]), [[202, "processed"], [400, "refused"]]);
  assert.equal(lines[0].event_id, eventId);
  const output = JSON.stringify(lines);
  assert.equal(output.includes(integration.signing_secret), false, "the signing secret is never printed");
  assert.equal((await cli("intake", "--limit", "1")).trim().split("\n").length, 1);
  const refusals = (await cli("intake", "--refusals", "--integration", integration.id)).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(refusals.map((row) => [row.integration_id, row.organization_id, row.reason, row.http_status, row.count]),
    [[integration.id, org, "invalid_signature", 401, 1]]);
});
