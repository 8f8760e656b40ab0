import { randomBytes } from "node:crypto";
import pg from "pg";
import { createPool, type Pool } from "../../src/db/pool.js";
import type { TestDatabase } from "./database.js";

/**
 * Tenancy tests log in as the migrations' roles, never as a superuser (which bypasses RLS).
 * webhooks_app and webhooks_dispatcher are NOLOGIN and cluster-wide, so each test file creates
 * LOGIN roles of its own that are members of one of them, and drops them when it is done.
 */
export interface LoginRole {
  name: string;
  url: string;
  pool: Pool;
}

export type GroupRole = "webhooks_app" | "webhooks_dispatcher";

export class LoginRoles {
  private readonly roles: LoginRole[] = [];
  constructor(private readonly db: TestDatabase) {}

  /** A LOGIN role that is a member of `group` only: not superuser, not BYPASSRLS. */
  async create(group: GroupRole, options: { poolSize?: number } = {}): Promise<LoginRole> {
    const name = `pgw_${group === "webhooks_app" ? "app" : "disp"}_${randomBytes(5).toString("hex")}`;
    const password = randomBytes(12).toString("hex");
    await this.db.pool.query(`create role ${name} login password '${password}' in role ${group}`);
    const url = new URL(this.db.url);
    url.username = name;
    url.password = password;
    const role = { name, url: url.toString(), pool: createPool(url.toString(), { max: options.poolSize ?? 2 }) };
    this.roles.push(role);
    return role;
  }

  /** Ends the roles' pools, drops the test database (which holds any objects they own), then the roles. */
  async dropAll(): Promise<void> {
    await Promise.all(this.roles.map((role) => role.pool.end().catch(() => undefined)));
    await this.db.drop();
    if (this.roles.length === 0) return;
    const admin = new pg.Client({ connectionString: process.env.TEST_ADMIN_URL });
    await admin.connect();
    try {
      for (const role of this.roles) await admin.query(`drop role if exists ${role.name}`);
    } finally {
      await admin.end();
    }
  }
}
