import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { IntegrationCache, type Queryable } from "../../src/intake/integration-cache.js";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";
import { createIntegration } from "./support.js";

// The inbound endpoint's integration look-ups, against real rows, counting the statements sent.

const h = useHarness({ dispatcher: true });

function counting(): { pool: Queryable; statements: () => number } {
  let statements = 0;
  const target = h.dispatcher.pool;
  const query = (...args: unknown[]) => {
    statements += 1;
    return Reflect.apply(target.query, target, args) as unknown;
  };
  const pool = { query } as Queryable;
  return { pool, statements: () => statements };
}

test("1,000 look-ups at once, of a real integration and unknown ids, take a couple of statements; asked again, none", async () => {
  const org = await createOrganization(h.db.pool);
  const real = await createIntegration(h.db.pool, org);
  const { pool, statements } = counting();
  const cache = new IntegrationCache(pool, { ttlMs: 60_000, maxEntries: 10_000 });
  const ids = [real.id, ...Array.from({ length: 999 }, () => randomUUID())];
  const found = await Promise.all(ids.map((id) => cache.get(id)));
  assert.deepEqual(found[0], { id: real.id, organizationId: org, signingSecret: real.signing_secret, isActive: true });
  assert.ok(found.slice(1).every((integration) => integration === null));
  assert.ok(statements() <= 3, `${statements()} statements for 1,000 look-ups`);
  const before = statements();
  await Promise.all(ids.map((id) => cache.get(id)));
  assert.equal(statements(), before, "answers, found or not, are reused");
});

test("answers are kept at most maxEntries and ttlMs: older ones are asked for again", async () => {
  const { pool, statements } = counting();
  const cache = new IntegrationCache(pool, { ttlMs: 60_000, maxEntries: 10 });
  const ids = Array.from({ length: 11 }, () => randomUUID());
  for (const id of ids) await cache.get(id);
  const before = statements();
  await cache.get(ids[10]!);
  assert.equal(statements(), before, "the newest is still kept");
  await cache.get(ids[0]!);
  assert.equal(statements(), before + 1, "the oldest was dropped");

  const shortLived = new IntegrationCache(pool, { ttlMs: 1, maxEntries: 10 });
  await shortLived.get(ids[0]!);
  const then = statements();
  await new Promise((resolve) => setTimeout(resolve, 5));
  await shortLived.get(ids[0]!);
  assert.equal(statements(), then + 1, "an expired answer is asked for again");
});
