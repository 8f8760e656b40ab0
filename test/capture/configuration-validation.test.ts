import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import type { DatabaseError } from "pg";
import { createOrganization } from "../support/fixtures.js";
import { useHarness } from "../support/harness.js";

const h = useHarness();
let org: string;

h.before(async () => {
  org = await createOrganization(h.db.pool);
});

/** jsonb values travel as JSON text: pg would turn a JS array into a Postgres array literal. */
const json = (value: unknown) => JSON.stringify(value);
const whsec = (bytes = 32) => "whsec_" + randomBytes(bytes).toString("base64");

function goodValues(): Record<string, unknown> {
  return { organization_id: org, name: "crm hook", url: "https://example.com/hooks/crm", events: ["contact.created"] };
}

async function insert(overrides: Record<string, unknown>) {
  const values = { ...goodValues(), ...overrides };
  const columns = Object.keys(values);
  const { rows } = await h.db.pool.query(
    `insert into webhooks.webhook_configurations (${columns.join(", ")})
     values (${columns.map((_, i) => `$${i + 1}`).join(", ")}) returning *`,
    Object.values(values),
  );
  return rows[0]!;
}

async function update(id: string, changes: Record<string, unknown>) {
  const columns = Object.keys(changes);
  const { rows } = await h.db.pool.query(
    `update webhooks.webhook_configurations set ${columns.map((c, i) => `${c} = $${i + 2}`).join(", ")}
     where id = $1 returning *`,
    [id, ...Object.values(changes)],
  );
  return rows[0]!;
}

async function countRows(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>("select count(*)::int as n from webhooks.webhook_configurations");
  return rows[0]!.n;
}

async function snapshot(id: string): Promise<unknown> {
  const { rows } = await h.db.pool.query("select to_jsonb(c) as row from webhooks.webhook_configurations c where id = $1", [id]);
  return rows[0]!.row;
}

async function refusal(work: () => Promise<unknown>): Promise<DatabaseError> {
  try {
    await work();
  } catch (error) {
    return error as DatabaseError;
  }
  assert.fail("the statement was accepted");
}

function assertNamesColumn(error: DatabaseError, column: string, mentions: string[] = []) {
  assert.equal(error.code, "23514", `check_violation expected, got ${error.code}: ${error.message}`);
  assert.ok(error.message.includes(`webhook_configurations.${column}`), `message does not name the column: ${error.message}`);
  assert.equal(error.column, column);
  for (const text of mentions) assert.ok(error.message.includes(text), `message does not mention ${text}: ${error.message}`);
}

interface BadCase {
  what: string;
  column: string;
  values: Record<string, unknown>;
  mentions?: string[];
}

const badCases: BadCase[] = [
  { what: "an ftp:// url", column: "url", values: { url: "ftp://example.com/hooks" } },
  { what: "a url without a scheme", column: "url", values: { url: "example.com/hooks" } },
  { what: "a url with a space in the host", column: "url", values: { url: "https://exa mple.com/hooks" } },
  { what: "a url with a space in the path", column: "url", values: { url: "https://example.com/my hooks" } },
  { what: "a url with credentials", column: "url", values: { url: "https://user:pw@example.com/hooks" } },
  { what: "an empty url", column: "url", values: { url: "" } },
  { what: "an empty events array", column: "events", values: { events: [] } },
  {
    what: "unknown event types",
    column: "events",
    values: { events: ["contact.created", "contact.exploded", "deal.vanished"] },
    mentions: ["contact.exploded", "deal.vanished"],
  },
  { what: "a null inside events", column: "events", values: { events: ["contact.created", null] } },
  { what: "an unknown signature_scheme", column: "signature_scheme", values: { signature_scheme: "md5" } },
  { what: "a signature_header with a space", column: "signature_header", values: { signature_header: "X Signature" } },
  { what: "a signature_header with a colon", column: "signature_header", values: { signature_header: "X-Signature:" } },
  { what: "max_retries -1", column: "max_retries", values: { max_retries: -1 } },
  { what: "max_retries 26", column: "max_retries", values: { max_retries: 26 } },
  { what: "retry_base_seconds 0", column: "retry_base_seconds", values: { retry_base_seconds: 0 } },
  { what: "timeout_seconds 0", column: "timeout_seconds", values: { timeout_seconds: 0 } },
  { what: "timeout_seconds 61", column: "timeout_seconds", values: { timeout_seconds: 61 } },
  { what: "a filter that is a JSON array", column: "filter", values: { filter: json([{ event: "contact.created" }]) } },
  { what: "a filter that is a JSON string", column: "filter", values: { filter: json("contact.created") } },
  { what: "headers that are a JSON array", column: "headers", values: { headers: json(["X-Tenant: 1"]) } },
  { what: "headers with a non-string value", column: "headers", values: { headers: json({ "X-Tenant": 42 }) } },
  { what: "headers setting content-type", column: "headers", values: { headers: json({ "Content-Type": "text/plain" }) } },
  { what: "headers setting webhook-signature", column: "headers", values: { headers: json({ "webhook-signature": "v1,forged" }) } },
  {
    what: "headers setting the configured signature_header",
    column: "headers",
    values: { signature_scheme: "hmac-hex", signature_header: "X-Acme-Signature", headers: json({ "x-acme-signature": "forged" }) },
  },
  { what: "a standard-scheme secret without the whsec_ prefix", column: "secret", values: { secret: randomBytes(32).toString("base64") } },
  { what: "a standard-scheme secret that is not base64", column: "secret", values: { secret: "whsec_this is not base64 at all!!" } },
];

describe("inserting a bad configuration is refused, names the column and creates nothing", () => {
  for (const bad of badCases) {
    test(`refuses ${bad.what} (webhook_configurations.${bad.column})`, async () => {
      const before = await countRows();
      const error = await refusal(() => insert(bad.values));
      assertNamesColumn(error, bad.column, bad.mentions);
      assert.equal(await countRows(), before);
    });
  }
});

describe("updating a configuration to a bad value is refused, names the column and changes nothing", () => {
  for (const bad of badCases) {
    test(`refuses ${bad.what} (webhook_configurations.${bad.column})`, async () => {
      const row = await insert({});
      const before = await snapshot(row.id);
      const error = await refusal(() => update(row.id, bad.values));
      assertNamesColumn(error, bad.column, bad.mentions);
      assert.deepEqual(await snapshot(row.id), before);
    });
  }
});

test("a refused secret never appears in the error (message, detail, hint or context)", async () => {
  const secret = "whsec_S3cr3t-Value-That-Must-Not-Leak";
  const row = await insert({});
  for (const attempt of [() => insert({ secret }), () => update(row.id, { secret })]) {
    const error = await refusal(attempt);
    assertNamesColumn(error, "secret");
    for (const field of [error.message, error.detail, error.hint, error.where, String(error)]) {
      assert.equal(String(field ?? "").includes("S3cr3t"), false, `secret echoed in: ${field}`);
    }
  }
});

describe("good configurations", () => {
  test("a minimal row gets the SPEC 2 defaults", async () => {
    const row = await insert({});
    assert.equal(row.signature_scheme, "standard");
    assert.equal(row.signature_header, "X-Webhook-Signature");
    assert.equal(row.max_retries, 5);
    assert.equal(row.retry_base_seconds, 1);
    assert.equal(row.timeout_seconds, 5);
    assert.deepEqual(row.headers, {});
    assert.equal(row.is_active, true);
    assert.equal(row.filter, null);
    assert.equal(row.previous_secret, null);
    assert.equal(row.disabled_reason, null);
  });

  test("an absent secret is generated as whsec_ + base64 of at least 24 random bytes", async () => {
    const first = await insert({});
    const second = await insert({ secret: null });
    for (const { secret } of [first, second]) {
      assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
      assert.ok(Buffer.from(secret.slice("whsec_".length), "base64").length >= 24, `too short: ${secret.length} chars`);
    }
    assert.notEqual(first.secret, second.secret);
  });

  test("a given secret is kept as given", async () => {
    const secret = whsec();
    assert.equal((await insert({ secret })).secret, secret);
  });

  test("events {*} subscribes to everything", async () => {
    assert.deepEqual((await insert({ events: ["*"] })).events, ["*"]);
  });

  test("an hmac-hex row accepts an arbitrary shared secret", async () => {
    const row = await insert({ signature_scheme: "hmac-hex", secret: "our shared secret: p@ss w0rd!" });
    assert.equal(row.secret, "our shared secret: p@ss w0rd!");
  });

  test("an object filter, custom string headers, a port and a query string are accepted", async () => {
    const row = await insert({
      url: "https://hooks.example.com:8443/in/crm?token=abc&x=1",
      filter: json({ data: { source: "web" } }),
      headers: json({ Authorization: "Bearer t0ken", "X-Tenant": "acme" }),
      max_retries: 0,
      timeout_seconds: 60,
    });
    assert.deepEqual(row.filter, { data: { source: "web" } });
    assert.deepEqual(row.headers, { Authorization: "Bearer t0ken", "X-Tenant": "acme" });
  });

  test("a url with a query string but no path is accepted", async () => {
    const row = await insert({ url: "https://hooks.example.com?token=abc" });
    assert.equal(row.url, "https://hooks.example.com?token=abc");
  });
});

describe("secret rotation", () => {
  test("a new secret moves the old one into previous_secret, valid for about 24 hours", async () => {
    const oldSecret = whsec();
    const row = await insert({ secret: oldSecret });
    const newSecret = whsec();
    const rotated = await update(row.id, { secret: newSecret });
    assert.equal(rotated.secret, newSecret);
    assert.equal(rotated.previous_secret, oldSecret);
    const { rows } = await h.db.pool.query<{ off_by_seconds: number }>(
      `select abs(extract(epoch from previous_secret_expires_at - (now() + interval '24 hours')))::float8 as off_by_seconds
         from webhooks.webhook_configurations where id = $1`,
      [row.id],
    );
    assert.ok(rows[0]!.off_by_seconds < 60, `expires ${rows[0]!.off_by_seconds}s away from now() + 24h`);
  });

  test("setting the secret to null generates a new one and keeps the old one as previous", async () => {
    const row = await insert({});
    const rotated = await update(row.id, { secret: null });
    assert.match(rotated.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.notEqual(rotated.secret, row.secret);
    assert.equal(rotated.previous_secret, row.secret);
  });

  test("an update that leaves the secret alone does not rotate", async () => {
    const row = await insert({});
    const renamed = await update(row.id, { name: "renamed" });
    assert.equal(renamed.secret, row.secret);
    assert.equal(renamed.previous_secret, null);
    assert.equal(renamed.previous_secret_expires_at, null);
  });
});

test("webhook_logs rows cannot be updated (append-only)", async () => {
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into webhooks.webhook_logs
       (organization_id, webhook_id, event_id, delivery_id, event_type, attempt, url, request_headers, success, response_status)
     values ($1, gen_random_uuid(), 'evt_1', gen_random_uuid(), 'contact.created', 1, 'https://example.com/hooks', '{}', false, 500)
     returning id`,
    [org],
  );
  const id = rows[0]!.id;
  const error = await refusal(() => h.db.pool.query("update webhooks.webhook_logs set success = true, response_status = 200 where id = $1", [id]));
  assert.match(error.message, /append-only/);
  const { rows: after } = await h.db.pool.query("select success, response_status from webhooks.webhook_logs where id = $1", [id]);
  assert.deepEqual(after, [{ success: false, response_status: 500 }]);
});
