import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import pg from "pg";
import { packageRoot } from "../../src/package-info.js";
import { runCli } from "../support/cli.js";
import { organizationWithEndpoint, type LogRow } from "../support/fixtures.js";
import { freePort } from "../support/free-port.js";
import { useHarness } from "../support/harness.js";
import { waitFor } from "../support/wait.js";

// A configuration's static headers often carry credentials ("Authorization: Bearer …"). The
// receiver gets them; webhook_logs.request_headers keeps their names with the value
// "[redacted]" (src/delivery/attempt.ts), so whoever may read logs learns which headers were
// sent, never their values. The signature headers stay: they prove what was sent and reveal no
// secret. Nothing else the product prints or answers holds a static header value or a secret.

const h = useHarness({ receiver: true, daemon: true });

/** A value that can be searched for in any output. */
const marker = (what: string) => `${what}-${randomBytes(8).toString("hex")}`;

const endpoint = (values: Record<string, unknown> = {}) => organizationWithEndpoint(h.db.pool, h.receiver, values);

async function logFor(deliveryId: string): Promise<LogRow> {
  return waitFor("the attempt's log row", async () => {
    const { rows } = await h.db.pool.query<LogRow>("select * from webhooks.webhook_logs where delivery_id = $1", [deliveryId]);
    return rows[0];
  });
}

for (const scheme of ["standard", "hmac-hex", "hmac-prefixed", "hmac-timestamped"]) {
  test(`${scheme}: static headers reach the receiver with their values; the log keeps their names as [redacted] and every signature header`, async () => {
    const token = marker("token");
    const key = marker("key");
    const { org, hook, requests } = await endpoint({
      signature_scheme: scheme,
      signature_header: "X-Acme-Signature",
      headers: { Authorization: `Bearer ${token}`, "X-Api-Key": key },
    });
    await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);

    const request = await waitFor("the POST", () => requests()[0]);
    assert.equal(request.headers["authorization"], `Bearer ${token}`, "the receiver gets the real value");
    assert.equal(request.headers["x-api-key"], key);
    const log = await logFor(String(request.headers["x-webhook-delivery-id"]));
    assert.equal(log.request_headers["Authorization"], "[redacted]");
    assert.equal(log.request_headers["X-Api-Key"], "[redacted]");

    // Every other header is logged exactly as sent: the standard ones and the signature's.
    const sent = Object.fromEntries(
      Object.entries(request.headers).filter(([name]) => !["authorization", "x-api-key", "host", "content-length", "connection"].includes(name)),
    );
    const logged = Object.fromEntries(
      Object.entries(log.request_headers).filter(([name]) => !["Authorization", "X-Api-Key"].includes(name)),
    );
    assert.deepEqual(logged, sent);
    const signatureHeader = scheme === "standard" ? "webhook-signature" : scheme === "hmac-timestamped" ? "x-webhook-signature" : "x-acme-signature";
    assert.ok(logged[signatureHeader], `${signatureHeader} is logged`);

    const row = JSON.stringify(log);
    for (const secret of [token, key, hook.secret]) assert.equal(row.includes(secret), false, "no credential anywhere in the log row");
  });
}

test("no static header value or secret appears in errors, in send-test's or logs' output, or in the daemon's debug log", async () => {
  const token = marker("token");
  const daemon = await h.spawnDaemon({ LOG_LEVEL: "debug" });
  const { org, hook, requests } = await endpoint({ headers: { Authorization: `Bearer ${token}` } });
  const { rows: [integration] } = await h.db.pool.query<{ id: string; signing_secret: string }>(
    "insert into webhooks.inbound_integrations (organization_id, name) values ($1, 'leads') returning id, signing_secret", [org]);

  // Statements that fail on a configuration or integration holding credentials: the error
  // names what is wrong and carries no row (a superuser would otherwise get "Failing row
  // contains (…)" with the secret and headers in it).
  const failing = [
    ["insert into webhooks.webhook_configurations (organization_id, name, url, events, headers, is_active) values ($1, 'x', 'https://example.com', '{*}', $2, null)",
      [org, { Authorization: `Bearer ${token}` }], /^webhook_configurations\.is_active must not be null$/],
    ["update webhooks.webhook_configurations set created_at = null where id = $1", [hook.id], /^webhook_configurations\.created_at must not be null$/],
    ["update webhooks.inbound_integrations set is_active = null where id = $1", [integration!.id], /^inbound_integrations\.is_active must not be null$/],
  ] as const;
  for (const [statement, values, message] of failing) {
    await assert.rejects(h.db.pool.query(statement, [...values]), (error: pg.DatabaseError) => {
      assert.equal(error.code, "23502", error.message);
      assert.match(error.message, message);
      const told = JSON.stringify({ ...error, message: error.message });
      for (const secret of [token, hook.secret, integration!.signing_secret]) assert.equal(told.includes(secret), false, `${statement}: ${told}`);
      return true;
    });
  }

  const sent = await runCli(h.db.url, "send-test", hook.id);
  await waitFor("the test event", () => requests().some((request) => request.headers["x-webhook-event"] === "webhook.test"));
  await h.db.pool.query("insert into contacts (organization_id, first_name) values ($1, 'Ada')", [org]);
  await waitFor("two attempts logged", async () =>
    (await h.db.pool.query("select 1 from webhooks.webhook_logs where webhook_id = $1", [hook.id])).rowCount === 2);
  const printed = sent + (await runCli(h.db.url, "logs", "--webhook", hook.id));
  assert.match(printed, /webhook\.test/);
  await daemon.kill("SIGTERM");
  const output = daemon.output();
  assert.match(output, /"level":"debug"/, "the daemon logged at debug level");
  for (const secret of [token, hook.secret, integration!.signing_secret]) {
    assert.equal(printed.includes(secret), false, "CLI output");
    assert.equal(output.includes(secret), false, "daemon output");
  }
});

test("embedded Postgres's server log, which the daemon forwards at debug level, holds no failing statement's text or row", { timeout: 120_000 }, async () => {
  const token = marker("token");
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "pgw-redact-"));
  await chmod(dataDir, 0o755);
  const child = spawn(process.execPath, [path.join(packageRoot, "dist/src/cli.js"), "start"], {
    env: {
      PATH: process.env.PATH,
      PORT: String(await freePort()),
      WEBHOOKS_EMBEDDED_PG_PORT: String(await freePort()),
      WEBHOOKS_DATA_DIR: dataDir,
      LOG_LEVEL: "debug",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const url = await waitFor("the printed DATABASE_URL", () => /DATABASE_URL=(\S+)/.exec(output)?.[1], 90_000);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query("insert into organizations (id, name) values ('00000000-0000-0000-0000-0000000000aa', 'x')");
      // An application that writes its values into the statement text, and gets it wrong.
      await assert.rejects(client.query(
        `insert into webhooks.webhook_configurations (organization_id, name, url, events, headers)
         values ('00000000-0000-0000-0000-0000000000aa', 'x', 'not a url', '{*}', '{"Authorization": "Bearer ${token}"}')`,
      ), /webhook_configurations\.url must be/);
      await assert.rejects(client.query(`select 1/0 where '${token}' is not null`), /division by zero/);
    } finally {
      await client.end();
    }
    await waitFor("the server's log line of the failure", () => /division by zero/.test(output), 10_000);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  } finally {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  }
  assert.equal(output.includes(token), false, "no statement text in the daemon's output");
  assert.equal(/whsec_/.test(output), false, "no secret in the daemon's output");
});
