import { randomBytes } from "node:crypto";
import pg from "pg";
import { createPool, type Pool } from "../../src/db/pool.js";

export interface TestDatabase {
  url: string;
  name: string;
  /** A superuser pool on the test database (tenancy tests use their own roles). */
  pool: Pool;
  drop(): Promise<void>;
}

function adminUrl(): string {
  const url = process.env.TEST_ADMIN_URL;
  if (!url) throw new Error("TEST_ADMIN_URL is not set: run the suite with `npm test`");
  return url;
}

export function databaseUrl(database: string): string {
  const parsed = new URL(adminUrl());
  parsed.pathname = "/" + database;
  return parsed.toString();
}

/** A fresh, migrated database cloned from the suite's template (graphile-worker's habit). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `pgw_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${process.env.TEST_TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const pool = createPool(url, { max: 5 });
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: adminUrl() });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
      await client.end();
    },
  };
}
