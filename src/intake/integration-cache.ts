import { sql, type InferResult } from "kysely";
import { queryBuilder, toStatement } from "../db/database.js";
import type { Pool } from "../db/pool.js";
import { Batcher } from "../util/batcher.js";

export interface Integration {
  id: string;
  organizationId: string;
  signingSecret: string;
  isActive: boolean;
}

export interface IntegrationCacheOptions {
  /** How long an answer (found or not) is reused: a change to an integration shows within this. */
  ttlMs: number;
  /** Answers kept at most; the oldest go first. Unknown ids are cached too, so this bounds them. */
  maxEntries: number;
}

export const defaultIntegrationCacheOptions: IntegrationCacheOptions = { ttlMs: 5_000, maxEntries: 10_000 };

/** The part of a pg Pool the cache uses. */
export type Queryable = Pick<Pool, "query">;

/**
 * Integrations by id for the inbound endpoint, read before a byte of a request's body is. Look-ups
 * that miss are sent together (one `= any($1)` statement at a time, whatever the request rate), and
 * both answers are kept for `ttlMs`: a flood of requests, to known or unknown ids, costs the
 * database a bounded number of reads. webhooks._accept_lead checks the integration again in the
 * transaction that accepts a lead, so a stale answer never lets a lead of an inactive one in.
 */
export class IntegrationCache {
  private readonly entries = new Map<string, { integration: Integration | null; expiresAt: number }>();
  private readonly lookUps: Batcher<string, Integration | null>;

  constructor(pool: Queryable, private readonly options: IntegrationCacheOptions = defaultIntegrationCacheOptions) {
    this.lookUps = new Batcher((ids) => readIntegrations(pool, ids), { maxBatch: 500, maxInFlight: 1 });
  }

  /** The integration with this (lower-case uuid) id, or null if there is none. */
  async get(id: string): Promise<Integration | null> {
    const cached = this.entries.get(id);
    if (cached && cached.expiresAt > Date.now()) return cached.integration;
    const integration = await this.lookUps.add(id);
    this.entries.delete(id);
    this.entries.set(id, { integration, expiresAt: Date.now() + this.options.ttlMs });
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return integration;
  }
}

async function readIntegrations(pool: Queryable, ids: string[]): Promise<(Integration | null)[]> {
  const query = queryBuilder
    .selectFrom("webhooks.inbound_integrations")
    .select(["id", "organization_id", "signing_secret", "is_active"])
    .where("id", "=", sql<string>`any(${[...new Set(ids)]}::uuid[])`);
  const { rows } = await pool.query<InferResult<typeof query>[number]>(toStatement(query));
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => {
    const row = byId.get(id);
    return row ? { id: row.id, organizationId: row.organization_id, signingSecret: row.signing_secret, isActive: row.is_active } : null;
  });
}
