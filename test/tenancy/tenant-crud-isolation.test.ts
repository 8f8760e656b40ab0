import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { useHarness } from "../support/harness.js";
import { asTenant, assertPolicyViolation } from "./roles.js";

// The tables an application reads and writes (README "Tenancy"): logged in as a webhooks_app member with
// organization A's setting, organization B's rows are invisible, untouchable, and cannot be
// created or moved into; without a setting nothing is visible.

interface TenantTable {
  table: string;
  /** The column holding the tenant: organization_id, or id for organizations. */
  tenant: string;
  /** A text column to update. */
  column: string;
  /** Inserts one row for organization $1, returning id. */
  insert: string;
}

const tables: TenantTable[] = [
  { table: "organizations", tenant: "id", column: "name", insert: "insert into organizations (id, name) values ($1, 'Org') returning id" },
  { table: "contacts", tenant: "organization_id", column: "first_name", insert: "insert into contacts (organization_id, first_name) values ($1, 'Ada') returning id" },
  { table: "deals", tenant: "organization_id", column: "title", insert: "insert into deals (organization_id, title, stage) values ($1, 'Deal', 'lead') returning id" },
  { table: "conversations", tenant: "organization_id", column: "channel", insert: "insert into conversations (organization_id, channel, status) values ($1, 'sms', 'open') returning id" },
  { table: "messages", tenant: "organization_id", column: "body", insert: "insert into messages (organization_id, direction, body) values ($1, 'inbound', 'hi') returning id" },
  {
    table: "webhooks.webhook_configurations",
    tenant: "organization_id",
    column: "name",
    insert: "insert into webhooks.webhook_configurations (organization_id, name, url, events) values ($1, 'Hook', 'https://example.com/hook', '{*}') returning id",
  },
];

const h = useHarness({ app: true, twoOrganizations: true });
/** table → organization → the id of a row the superuser seeded. */
const seeded = new Map<string, { a: string; b: string }>();

h.before(async () => {
  for (const { table, insert } of tables) {
    if (table === "organizations") {
      seeded.set(table, { a: h.orgA, b: h.orgB });
      continue;
    }
    const a = (await h.db.pool.query<{ id: string }>(insert, [h.orgA])).rows[0]!.id;
    const b = (await h.db.pool.query<{ id: string }>(insert, [h.orgB])).rows[0]!.id;
    seeded.set(table, { a, b });
  }
});

/** What the superuser sees of a row: proof that a refused or filtered statement changed nothing. */
async function rowAsSuperuser(spec: TenantTable, id: string): Promise<{ tenant: string; value: string } | undefined> {
  const { rows } = await h.db.pool.query<{ tenant: string; value: string }>(
    `select ${spec.tenant} as tenant, ${spec.column} as value from ${spec.table} where id = $1`,
    [id],
  );
  return rows[0];
}

for (const spec of tables) {
  const { table, tenant, column } = spec;
  describe(table, () => {
    test("with organization A's setting, a SELECT returns A's rows and none of B's", async () => {
      const { a, b } = seeded.get(table)!;
      const rows = await asTenant(h.app.pool, h.orgA, async (client) => {
        const all = await client.query<{ id: string; tenant: string }>(`select id, ${tenant} as tenant from ${table}`);
        const byId = await client.query(`select 1 from ${table} where id = $1`, [b]);
        const byTenant = await client.query(`select 1 from ${table} where ${tenant} = $1`, [h.orgB]);
        assert.equal(byId.rowCount, 0, "B's row by its id");
        assert.equal(byTenant.rowCount, 0, "B's rows by their organization");
        return all.rows;
      });
      assert.ok(rows.some((row) => row.id === a), "A's own row is visible");
      assert.deepEqual([...new Set(rows.map((row) => row.tenant))], [h.orgA]);
    });

    test("with organization A's setting, UPDATE and DELETE of B's rows touch 0 rows", async () => {
      const { b } = seeded.get(table)!;
      const before = await rowAsSuperuser(spec, b);
      await asTenant(h.app.pool, h.orgA, async (client) => {
        const updated = await client.query(`update ${table} set ${column} = 'taken over' where id = $1`, [b]);
        const updatedAll = await client.query(`update ${table} set ${column} = 'taken over' where ${tenant} = $1`, [h.orgB]);
        assert.equal(updated.rowCount, 0);
        assert.equal(updatedAll.rowCount, 0);
        // The reference tables cascade deletes from organizations, so B's organization goes last.
        const deleted = await client.query(`delete from ${table} where id = $1`, [b]);
        const deletedAll = await client.query(`delete from ${table} where ${tenant} = $1`, [h.orgB]);
        assert.equal(deleted.rowCount, 0);
        assert.equal(deletedAll.rowCount, 0);
      });
      assert.deepEqual(await rowAsSuperuser(spec, b), before, "B's row is unchanged");
    });

    test("with organization A's setting, inserting a row for another organization fails the policy's WITH CHECK", async () => {
      // organizations: a new organization id that is not this transaction's; elsewhere B's id.
      const other = table === "organizations" ? randomUUID() : h.orgB;
      await assertPolicyViolation(
        asTenant(h.app.pool, h.orgA, (client) => client.query(spec.insert, [other])),
        `inserting into ${table} for another organization`,
      );
      const { rows } = await h.db.pool.query(`select 1 from ${table} where ${tenant} = $1`, [other]);
      assert.equal(rows.length, table === "organizations" ? 0 : 1, "only the seeded row exists");
    });

    test("with organization A's setting, moving A's row to organization B fails the policy's WITH CHECK", async () => {
      const { a } = seeded.get(table)!;
      await assertPolicyViolation(
        asTenant(h.app.pool, h.orgA, (client) => client.query(`update ${table} set ${tenant} = $1 where id = $2`, [h.orgB, a])),
        `moving a ${table} row to another organization`,
      );
      assert.equal((await rowAsSuperuser(spec, a))?.tenant, h.orgA);
    });

    test("without an organization setting (unset or empty), nothing is visible, changeable or insertable", async () => {
      const { a, b } = seeded.get(table)!;
      const before = [await rowAsSuperuser(spec, a), await rowAsSuperuser(spec, b)];
      for (const setting of [null, ""]) {
        await asTenant(h.app.pool, setting, async (client) => {
          const selected = await client.query(`select 1 from ${table}`);
          const updated = await client.query(`update ${table} set ${column} = 'x' where id = any($1)`, [[a, b]]);
          const deleted = await client.query(`delete from ${table} where id = any($1)`, [[a, b]]);
          assert.equal(selected.rowCount, 0, `setting ${JSON.stringify(setting)}: SELECT`);
          assert.equal(updated.rowCount, 0, `setting ${JSON.stringify(setting)}: UPDATE`);
          assert.equal(deleted.rowCount, 0, `setting ${JSON.stringify(setting)}: DELETE`);
        });
        await assertPolicyViolation(
          asTenant(h.app.pool, setting, (client) => client.query(spec.insert, [table === "organizations" ? randomUUID() : h.orgA])),
          `inserting into ${table} without an organization`,
        );
      }
      assert.deepEqual([await rowAsSuperuser(spec, a), await rowAsSuperuser(spec, b)], before, "both rows unchanged");
    });

    test("within its own organization the application can insert, read, update and delete", async () => {
      // A new organization for the organizations table: deleting A would cascade to the other tests' rows.
      const org = table === "organizations" ? randomUUID() : h.orgA;
      await asTenant(h.app.pool, org, async (client) => {
        const id = (await client.query<{ id: string }>(spec.insert, [org])).rows[0]!.id;
        const updated = await client.query(`update ${table} set ${column} = 'renamed' where id = $1`, [id]);
        assert.equal(updated.rowCount, 1);
        const read = await client.query<{ value: string }>(`select ${column} as value from ${table} where id = $1`, [id]);
        assert.deepEqual(read.rows, [{ value: "renamed" }]);
        const deleted = await client.query(`delete from ${table} where id = $1`, [id]);
        assert.equal(deleted.rowCount, 1);
      });
    });
  });
}

test("a malformed organization setting is an error, never a wildcard", async () => {
  await assert.rejects(
    asTenant(h.app.pool, "not-a-uuid", (client) => client.query("select 1 from contacts")),
    (error: { code?: string }) => error.code === "22P02",
  );
});
