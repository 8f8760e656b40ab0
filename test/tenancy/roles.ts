import assert from "node:assert/strict";
import type pg from "pg";
import { withTransaction, type Pool, type PoolClient } from "../../src/db/pool.js";

/** Runs `work` in a transaction whose tenant is `organizationId` (none when null), the way an application must. */
export async function asTenant<T>(
  pool: Pool,
  organizationId: string | null,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return withTransaction(pool, async (client) => {
    if (organizationId !== null) {
      await client.query("select set_config('app.organization_id', $1, true)", [organizationId]);
    }
    return work(client);
  });
}

/** The statement is refused for lack of a privilege (GRANT), not filtered by a policy. */
export async function assertPermissionDenied(promise: Promise<unknown>, what: string): Promise<void> {
  await assertRefused(promise, /^permission denied for /, `${what} must be refused with "permission denied"`);
}

/** The row is refused by a policy's WITH CHECK (it would belong to another organization). */
export async function assertPolicyViolation(promise: Promise<unknown>, what: string): Promise<void> {
  await assertRefused(promise, /^new row violates row-level security policy/, `${what} must be refused by the row-level security policy`);
}

async function assertRefused(promise: Promise<unknown>, message: RegExp, what: string): Promise<void> {
  await assert.rejects(promise, (error: pg.DatabaseError) => {
    assert.equal(error.code, "42501", `${what}; got ${error.code}: ${error.message}`);
    assert.match(error.message, message, what);
    return true;
  }, what);
}
