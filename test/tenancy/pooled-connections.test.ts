import assert from "node:assert/strict";
import { test } from "node:test";
import { createWebhook } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { asTenant } from "./roles.js";

// Applications share pooled connections between organizations. The organization is a
// transaction-local setting, so the next transaction on a connection starts with none: it never
// inherits the previous user's organization, and an unset (or reset-to-empty) setting sees nothing.

const TRANSACTIONS = 1000;

const h = useHarness({ app: { poolSize: 2 }, twoOrganizations: true });
/** organization → the ids of its contacts and webhooks. */
const owned = new Map<string, string[]>();

h.before(async () => {
  for (const org of [h.orgA, h.orgB]) {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { rows } = await h.db.pool.query<{ id: string }>(
        "insert into contacts (organization_id, first_name) values ($1, $2) returning id",
        [org, `c${i}`],
      );
      ids.push(rows[0]!.id);
    }
    ids.push((await createWebhook(h.db.pool, { organizationId: org, url: "https://example.com/hook" })).id);
    owned.set(org, ids.sort());
  }
});

interface Seen {
  backend: number;
  organization: string | null;
  ids: string[];
}

/** One application transaction: optionally set the organization, read everything it can. */
async function visit(organization: string | null): Promise<Seen> {
  return asTenant(h.app.pool, organization, async (client) => {
    const { rows } = await client.query<{ backend: number; id: string | null }>(
      `select pg_backend_pid() as backend, t.id
         from (select 1) one
         left join (select id from contacts union all select id from webhooks.webhook_configurations) t on true`,
    );
    const ids = rows.flatMap((row) => (row.id ? [row.id] : [])).sort();
    return { backend: rows[0]!.backend, organization, ids };
  });
}

test(`${TRANSACTIONS} alternating-organization transactions over a 2-connection pool each see only their own organization`, async () => {
  // Queued all at once: the pool hands each of its two connections from one organization to the other.
  const results = await Promise.all(
    Array.from({ length: TRANSACTIONS }, (_, i) => visit(i % 2 === 0 ? h.orgA : h.orgB)),
  );
  for (const result of results) {
    assert.deepEqual(result.ids, owned.get(result.organization!), "exactly the organization's own rows");
  }
  const backends = new Set(results.map((result) => result.backend));
  assert.equal(backends.size, 2, "two connections were reused throughout");
  for (const backend of backends) {
    const organizations = new Set(results.filter((r) => r.backend === backend).map((r) => r.organization));
    assert.equal(organizations.size, 2, "each connection served both organizations");
  }
});

test("a transaction without a setting, on a connection just used by an organization, sees nothing", async () => {
  // A, none, B, none, …: every unset transaction follows some organization's on a reused connection.
  const plan = Array.from({ length: 400 }, (_, i) => (i % 2 === 1 ? null : i % 4 === 0 ? h.orgA : h.orgB));
  const results = await Promise.all(plan.map((organization) => visit(organization)));
  for (const result of results) {
    assert.deepEqual(result.ids, result.organization ? owned.get(result.organization) : [], `organization ${result.organization}`);
  }
  assert.equal(new Set(results.map((result) => result.backend)).size, 2);
});

test("a rolled-back transaction's organization does not survive it either", async () => {
  const client = await h.app.pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('app.organization_id', $1, true)", [h.orgA]);
    await assert.rejects(client.query("select 1 / 0"));
    await client.query("rollback");
    const { rows } = await client.query<{ setting: string | null; n: number }>(
      "select current_setting('app.organization_id', true) as setting, (select count(*)::int from contacts) as n",
    );
    assert.deepEqual(rows, [{ setting: "", n: 0 }], "the setting is back to empty and nothing is visible");
  } finally {
    client.release();
  }
});
