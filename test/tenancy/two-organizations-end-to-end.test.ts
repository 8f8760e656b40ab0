import assert from "node:assert/strict";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import type { ReceivedRequest } from "../support/receiver.js";
import { waitFor } from "../support/wait.js";
import { asTenant } from "./roles.js";

// Two organizations, each configuring a webhook on the same receiver URL through the application
// role, each writing contacts: each endpoint gets only its own organization's events, and each
// organization reads only its own attempt logs. The daemon runs as a webhooks_dispatcher member.

const h = useHarness({ app: true, receiver: true, daemon: { as: "dispatcher" } });

interface Tenant {
  org: string;
  hook: { id: string; secret: string };
  contacts: string[];
}

/** As the application: configure a webhook and write contacts for one organization. */
async function setUp(name: string, contacts: string[]): Promise<Tenant> {
  const org = await createOrganization(h.db.pool, name);
  const hook = await asTenant(h.app.pool, org, async (client) => {
    const { rows } = await client.query<{ id: string; secret: string }>(
      `insert into webhooks.webhook_configurations (organization_id, name, url, events)
       values ($1, $2, $3, '{contact.created}') returning id, secret`,
      [org, `${name} hook`, h.receiver.url],
    );
    return rows[0]!;
  });
  const ids: string[] = [];
  for (const firstName of contacts) {
    await asTenant(h.app.pool, org, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        "insert into contacts (organization_id, first_name) values ($1, $2) returning id",
        [org, firstName],
      );
      ids.push(rows[0]!.id);
    });
  }
  return { org, hook, contacts: ids.sort() };
}

/** The request's payload if it is signed with `secret`, else undefined. */
function verifiedWith(secret: string, request: ReceivedRequest): { organization_id: string; data: { id: string; organization_id: string } } | undefined {
  try {
    return new Webhook(secret).verify(request.body, {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    }) as { organization_id: string; data: { id: string; organization_id: string } };
  } catch {
    return undefined;
  }
}

test("two organizations with webhooks on the same receiver each get only their own events and read only their own logs", async () => {
  const a = await setUp("A", ["Ada", "Alan", "Anita"]);
  const b = await setUp("B", ["Bea", "Bob"]);

  await waitFor("five deliveries", () => h.receiver.requests.length >= 5);
  for (const [tenant, other] of [[a, b], [b, a]] as const) {
    const mine = h.receiver.requests.filter((request) => verifiedWith(tenant.hook.secret, request));
    const payloads = mine.map((request) => verifiedWith(tenant.hook.secret, request)!);
    assert.deepEqual(payloads.map((p) => p.data.id).sort(), tenant.contacts, "exactly the organization's own contacts");
    assert.ok(payloads.every((p) => p.organization_id === tenant.org && p.data.organization_id === tenant.org));
    assert.ok(mine.every((request) => !verifiedWith(other.hook.secret, request)), "nothing signed for the other endpoint");
  }
  assert.equal(h.receiver.requests.length, 5, "no request beyond the five contacts");

  const allLogs = await waitFor("five logged attempts", async () => {
    const { rows } = await h.db.pool.query("select 1 from webhooks.webhook_logs where success");
    return rows.length === 5 ? rows : undefined;
  });
  assert.equal(allLogs.length, 5);
  for (const tenant of [a, b]) {
    const seen = await asTenant(h.app.pool, tenant.org, async (client) => {
      const { rows: logs } = await client.query<{ organization_id: string; webhook_id: string; body: string }>(
        "select organization_id, webhook_id, request_body as body from webhooks.webhook_logs",
      );
      const { rows: deliveries } = await client.query<{ webhook_id: string }>("select webhook_id from webhooks.deliveries");
      const { rows: stats } = await client.query<{ webhook_id: string; succeeded_24h: number }>(
        "select webhook_id, succeeded_24h from webhooks.webhook_stats",
      );
      return { logs, deliveries, stats };
    });
    assert.equal(seen.logs.length, tenant.contacts.length, "one attempt per own contact");
    assert.ok(seen.logs.every((log) => log.organization_id === tenant.org && log.webhook_id === tenant.hook.id));
    assert.deepEqual(seen.logs.map((log) => (JSON.parse(log.body) as { data: { id: string } }).data.id).sort(), tenant.contacts);
    assert.deepEqual(seen.deliveries.map((d) => d.webhook_id), tenant.contacts.map(() => tenant.hook.id));
    assert.deepEqual(seen.stats, [{ webhook_id: tenant.hook.id, succeeded_24h: tenant.contacts.length }]);
  }
});
