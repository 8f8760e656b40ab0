import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { RefusalCounter } from "../../src/intake/refusal-counter.js";
import { createLogger } from "../../src/logger.js";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { createIntegration } from "./support.js";

// RefusalCounter as the daemon runs it: logged in as webhooks_dispatcher, against real tables.

const h = useHarness({ dispatcher: true });
let integration: string;
let org: string;

h.before(async () => {
  org = await createOrganization(h.db.pool, "Counted");
  integration = (await createIntegration(h.db.pool, org)).id;
});

function counter(): { counter: RefusalCounter; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return { counter: new RefusalCounter(h.dispatcher.pool, logger), lines };
}

async function rows(): Promise<{ integration_id: string | null; organization_id: string | null; reason: string; http_status: number; count: number }[]> {
  return (await h.db.pool.query(
    "select integration_id, organization_id, reason, http_status, count::int from webhooks.intake_refusals order by reason, integration_id nulls first")).rows;
}

test("one write per flush, one row per (minute, integration, reason), added to by later writes; ids that are no integration count under null", async () => {
  const { counter: refusals, lines } = counter();
  const minute = Date.parse("2030-01-01T10:00:00Z");
  for (let i = 0; i < 300; i++) refusals.count(null, "unknown_integration", minute + i);
  for (let i = 0; i < 40; i++) refusals.count(integration, "invalid_signature", minute + 59_000);
  refusals.count(randomUUID(), "retired_endpoint", minute);
  await refusals.flush();
  refusals.count(integration, "invalid_signature", minute + 30_000);
  await refusals.flush();
  await refusals.flush();
  assert.deepEqual(await rows(), [
    { integration_id: integration, organization_id: org, reason: "invalid_signature", http_status: 401, count: 41 },
    { integration_id: null, organization_id: null, reason: "retired_endpoint", http_status: 410, count: 1 },
    { integration_id: null, organization_id: null, reason: "unknown_integration", http_status: 404, count: 300 },
  ]);
  const logged = lines.filter((line) => line.message === "inbound requests refused");
  assert.deepEqual(logged.map((line) => line.total), [341, 1], "one line per write that had counts");
  assert.deepEqual(refusals.metrics().filter((line) => !line.startsWith("#")), [
    'pg_webhooks_intake_refusals_total{reason="unknown_integration"} 300',
    'pg_webhooks_intake_refusals_total{reason="invalid_signature"} 41',
    'pg_webhooks_intake_refusals_total{reason="retired_endpoint"} 1',
  ]);
  await h.db.pool.query("delete from webhooks.intake_refusals");
});

test("counts a write failed for are kept and written with the next write", async () => {
  const { counter: refusals, lines } = counter();
  const fn = "webhooks._record_intake_refusals(timestamptz[], uuid[], text[], int[], bigint[])";
  await h.db.pool.query(`revoke execute on function ${fn} from webhooks_dispatcher`);
  try {
    refusals.count(integration, "body_timeout");
    await refusals.flush();
    assert.deepEqual(await rows(), []);
    assert.equal(lines.filter((line) => line.level === "warn").length, 1, "the failed write is logged");
  } finally {
    await h.db.pool.query(`grant execute on function ${fn} to webhooks_dispatcher`);
  }
  refusals.count(integration, "body_timeout");
  await refusals.stop();
  assert.deepEqual((await rows()).map((row) => [row.reason, row.count]), [["body_timeout", 2]]);
});
