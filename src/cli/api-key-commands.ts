import { createPool } from "../db/pool.js";
import { parse, UsageError, uuidOption } from "./arguments.js";

/**
 * `pg-webhooks api-key create|revoke|list` (README "API keys"): the SQL functions of
 * sql/000018_api_keys.sql, run as the login of DATABASE_URL. `create` prints the key, the only time
 * it is shown; `list` prints one JSON object per key, never a key or its hash.
 */
export async function apiKeyCommand(url: string, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  const pool = createPool(url, { max: 1 });
  try {
    switch (action) {
      case "create": {
        const values = parse(rest, { organization: { type: "string" }, name: { type: "string" } });
        const organizationId = uuidOption(values.organization, "--organization");
        if (!organizationId) throw new UsageError("api-key create needs --organization <uuid>");
        if (!values.name) throw new UsageError("api-key create needs --name <name>");
        const { rows } = await pool.query<{ key: string }>("select webhooks.create_api_key($1, $2) as key", [organizationId, values.name]);
        console.log(rows[0]!.key);
        console.error("This key is shown once: store it now (Authorization: Bearer <key>).");
        return;
      }
      case "revoke": {
        const { positionals } = parse(rest, {}, true);
        const id = uuidOption(positionals[0], "<key-id>");
        if (!id || positionals.length !== 1) throw new UsageError("api-key revoke needs one <key-id> (a uuid, from api-key list)");
        await pool.query("select webhooks.revoke_api_key($1)", [id]);
        console.log(`revoked ${id}`);
        return;
      }
      case "list": {
        const values = parse(rest, { organization: { type: "string" } });
        const organizationId = uuidOption(values.organization, "--organization");
        const { rows } = await pool.query(
          `select id, organization_id, name, created_at, last_used_at, revoked_at from webhooks.api_keys
            where $1::uuid is null or organization_id = $1 order by created_at, id`,
          [organizationId ?? null],
        );
        for (const row of rows) console.log(JSON.stringify(row));
        return;
      }
      default:
        throw new UsageError("api-key needs create, revoke or list");
    }
  } finally {
    await pool.end();
  }
}
