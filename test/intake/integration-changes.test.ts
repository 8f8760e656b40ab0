import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";
import { signedPost } from "./http-support.js";
import { createIntegration } from "./support.js";

// The inbound endpoint reads integrations through a cache (a flood of requests costs the database
// a bounded number of reads): changes to an integration reach it within seconds, and a lead of an
// integration deactivated a moment ago is still never accepted.

const h = useHarness({ daemon: true });
let org: string;
let base: string;
const lead = () => JSON.stringify({ customer_phone: "+15550108888" });

h.before(async () => {
  base = `http://127.0.0.1:${(h.daemon.server.address() as AddressInfo).port}`;
  org = await createOrganization(h.db.pool, "Changes");
});

async function answer(response: Response): Promise<{ http: number; error?: string; event_id?: string }> {
  return { ...((await response.json()) as { error?: string; event_id?: string }), http: response.status };
}

test("an id refused as unknown is served once an integration with that id exists", async () => {
  const id = randomUUID();
  const secret = "0123456789abcdef0123456789abcdef";
  assert.equal((await answer(await signedPost(base, { id, signing_secret: secret }, lead()))).http, 404);
  await createIntegration(h.db.pool, org, { id, signing_secret: secret });
  await waitFor("the new integration served", async () => (await answer(await signedPost(base, { id, signing_secret: secret }, lead()))).http === 202);
});

test("a deactivated integration's leads are refused from that moment on, and as inactive within seconds", async () => {
  const integration = await createIntegration(h.db.pool, org);
  assert.equal((await answer(await signedPost(base, integration, lead()))).http, 202);
  await h.db.pool.query("update webhooks.inbound_integrations set is_active = false where id = $1", [integration.id]);
  const right = await answer(await signedPost(base, integration, lead(), { key: "after-deactivation" }));
  assert.equal(right.http, 404, JSON.stringify(right));
  const { rows } = await h.db.pool.query(
    "select count(*)::int as n from webhooks.intake_activity where idempotency_key = 'after-deactivation' and outcome <> 'refused'");
  assert.equal(rows[0].n, 0, "no lead accepted after deactivation");
  await waitFor("refused as inactive before the body is read", async () =>
    (await answer(await signedPost(base, integration, lead()))).error === "inactive integration");
});

test("a new signing secret is accepted within seconds, and the old one refused", async () => {
  const integration = await createIntegration(h.db.pool, org);
  assert.equal((await answer(await signedPost(base, integration, lead()))).http, 202);
  const rotated = { id: integration.id, signing_secret: "fedcba9876543210fedcba9876543210" };
  await h.db.pool.query("update webhooks.inbound_integrations set signing_secret = $2 where id = $1", [integration.id, rotated.signing_secret]);
  await waitFor("the new secret accepted", async () => (await answer(await signedPost(base, rotated, lead()))).http === 202);
  assert.equal((await answer(await signedPost(base, integration, lead()))).http, 401);
});
