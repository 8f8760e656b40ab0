import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { runCli } from "../support/cli.js";
import { useHarness } from "../support/harness.js";
import { asTenant } from "../tenancy/roles.js";

// API keys of the management API (sql/000018_api_keys.sql): a key acts as one organization, is
// shown once and stored only as its hash; revoking it takes effect at once.

const h = useHarness({ app: true, dispatcher: true, twoOrganizations: true });

interface Authenticated {
  api_key_id: string;
  organization_id: string;
}

async function authenticate(key: string): Promise<Authenticated[]> {
  return (await h.dispatcher.pool.query<Authenticated>("select * from webhooks.authenticate_api_key($1)", [key])).rows;
}

function refused(code: string, message: RegExp) {
  return (error: pg.DatabaseError) => {
    assert.equal(error.code, code, `${error.code}: ${error.message}`);
    assert.match(error.message, message);
    return true;
  };
}

test("pg-webhooks api-key create prints a pgwh_ key once; only its sha256 is stored; the daemon's role finds its organization; list never shows it", async () => {
  const key = (await runCli(h.db.url, "api-key", "create", "--organization", h.orgA, "--name", "ci")).trim();
  assert.match(key, /^pgwh_[0-9a-f]{64}$/);
  const { rows: stored } = await h.db.pool.query("select * from webhooks.api_keys where organization_id = $1", [h.orgA]);
  assert.equal(stored.length, 1);
  assert.ok(!JSON.stringify(stored).includes(key.slice(5)), "the key is not stored");
  const [found] = await authenticate(key);
  assert.equal(found!.organization_id, h.orgA);
  assert.equal(found!.api_key_id, stored[0]!.id);
  const { rows: [used] } = await h.db.pool.query("select last_used_at from webhooks.api_keys where id = $1", [found!.api_key_id]);
  assert.ok(used!.last_used_at, "last_used_at is set");

  const listed = await runCli(h.db.url, "api-key", "list", "--organization", h.orgA);
  assert.equal(JSON.parse(listed.trim()).name, "ci");
  assert.ok(!listed.includes(key.slice(5)) && !listed.includes(String(stored[0]!.key_sha256)), "neither the key nor its hash is listed");

  assert.match(await runCli(h.db.url, "api-key", "revoke", found!.api_key_id), /^revoked /);
  assert.deepEqual(await authenticate(key), [], "a revoked key finds nothing");
  assert.deepEqual(await authenticate(key.replace(/.$/, (c) => (c === "0" ? "1" : "0"))), [], "an unknown key finds nothing");
  assert.deepEqual(await authenticate("Bearer nonsense"), [], "a malformed key finds nothing");
});

test("an application makes and revokes keys for its own organization only, and reads their names, never their hashes", async () => {
  const key = await asTenant(h.app.pool, h.orgA, async (client) =>
    (await client.query<{ key: string }>("select webhooks.create_api_key($1, 'app') as key", [h.orgA])).rows[0]!.key);
  assert.equal((await authenticate(key))[0]!.organization_id, h.orgA);
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.create_api_key($1, 'theirs')", [h.orgB])),
    refused("P0002", /^webhooks\.create_api_key: no organization /),
  );
  await h.db.pool.query("select webhooks.create_api_key($1, 'b')", [h.orgB]);
  const { rows: [keyOfB] } = await h.db.pool.query<{ id: string }>("select id from webhooks.api_keys where organization_id = $1 limit 1", [h.orgB]);
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select webhooks.revoke_api_key($1)", [keyOfB!.id])),
    refused("P0002", /^webhooks\.revoke_api_key: no api key /),
  );
  const { rows: [stillB] } = await h.db.pool.query("select revoked_at from webhooks.api_keys where id = $1", [keyOfB!.id]);
  assert.equal(stillB!.revoked_at, null, "B's key is untouched");

  const seen = await asTenant(h.app.pool, h.orgA, (client) =>
    client.query<{ organization_id: string }>("select id, organization_id, name, revoked_at from webhooks.api_keys"));
  assert.ok(seen.rows.length > 0 && seen.rows.every((row) => row.organization_id === h.orgA), "only its own keys");
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select key_sha256 from webhooks.api_keys")),
    (error: pg.DatabaseError) => error.code === "42501",
  );
  await assert.rejects(
    asTenant(h.app.pool, h.orgA, (client) => client.query("select * from webhooks.authenticate_api_key($1)", [key])),
    (error: pg.DatabaseError) => error.code === "42501",
    "only the daemon checks keys",
  );
});

test("a key's name is refused by column when empty or over 200 characters, and an organization holds at most 100 keys in use", async () => {
  await assert.rejects(
    h.db.pool.query("select webhooks.create_api_key($1, ' ')", [h.orgB]),
    (error: pg.DatabaseError) => error.column === "name" && /must be 1 to 200 characters/.test(error.message),
  );
  await assert.rejects(h.db.pool.query("select webhooks.create_api_key($1, $2)", [h.orgB, "x".repeat(201)]), /name must be 1 to 200/);
  const { rows: [inUse] } = await h.db.pool.query<{ n: number }>(
    "select count(*)::int as n from webhooks.api_keys where organization_id = $1 and revoked_at is null",
    [h.orgB],
  );
  await h.db.pool.query("select webhooks.create_api_key($1, 'k' || n) from generate_series(1, $2) n", [h.orgB, 100 - inUse!.n]);
  await assert.rejects(
    h.db.pool.query("select webhooks.create_api_key($1, 'one too many')", [h.orgB]),
    (error: pg.DatabaseError) => error.column === "organization_id" && /has 100 keys in use already/.test(error.message),
  );
  const { rows: [one] } = await h.db.pool.query<{ id: string }>("select id from webhooks.api_keys where organization_id = $1 and revoked_at is null limit 1", [h.orgB]);
  await h.db.pool.query("select webhooks.revoke_api_key($1)", [one!.id]);
  await h.db.pool.query("select webhooks.create_api_key($1, 'after a revoke')", [h.orgB]);
});

test("api-key refuses a bad command line with the usage and exit code 1", async () => {
  await assert.rejects(runCli(h.db.url, "api-key", "create", "--organization", "nope", "--name", "x"), (error: { code?: number; stderr?: string }) =>
    error.code === 1 && /--organization must be a uuid/.test(String(error.stderr)) && /usage: pg-webhooks/.test(String(error.stderr)));
  await assert.rejects(runCli(h.db.url, "api-key", "rotate"), (error: { code?: number; stderr?: string }) =>
    error.code === 1 && /api-key needs create, revoke or list/.test(String(error.stderr)));
});
