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

/**
 * `expressions` are SQL expressions computed by the server (column → SQL), for values too big to
 * send from here quickly: a million-entry array, a 20 MB string.
 */
async function insert(overrides: Record<string, unknown>, expressions: Record<string, string> = {}) {
  const values: Record<string, unknown> = { ...goodValues(), ...overrides };
  for (const column of Object.keys(expressions)) delete values[column];
  const columns = Object.keys(values);
  const { rows } = await h.db.pool.query(
    `insert into webhooks.webhook_configurations (${[...columns, ...Object.keys(expressions)].join(", ")})
     values (${[...columns.map((_, i) => `$${i + 1}`), ...Object.values(expressions)].join(", ")}) returning *`,
    Object.values(values),
  );
  return rows[0]!;
}

async function update(id: string, changes: Record<string, unknown>, expressions: Record<string, string> = {}) {
  const columns = Object.keys(changes);
  const assignments = [...columns.map((c, i) => `${c} = $${i + 2}`), ...Object.entries(expressions).map(([c, sql]) => `${c} = ${sql}`)];
  const { rows } = await h.db.pool.query(
    `update webhooks.webhook_configurations set ${assignments.join(", ")}
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
  /** Columns whose value the server computes (see `insert`). */
  sql?: Record<string, string>;
  mentions?: string[];
}

/** `count` distinct header names (X-H-1, X-H-2, …) with the same value. */
const manyHeaders = (count: number, value = "v") =>
  json(Object.fromEntries(Array.from({ length: count }, (_, i) => [`X-H-${i + 1}`, value])));

/** Bounds on size and cardinality (000010): each refusal names the column and the limit. */
const boundCases: BadCase[] = [
  { what: "a name of 201 characters", column: "name", values: { name: "n".repeat(201) }, mentions: ["200"] },
  { what: "a name of 10 MB", column: "name", values: {}, sql: { name: "repeat('n', 10 * 1024 * 1024)" }, mentions: ["200"] },
  { what: "a url with port 99999", column: "url", values: { url: "https://example.com:99999/x" }, mentions: ["65535"] },
  { what: "a url with port 0", column: "url", values: { url: "https://example.com:0/x" }, mentions: ["65535"] },
  { what: "a url with port 65536", column: "url", values: { url: "https://example.com:65536" }, mentions: ["65535"] },
  { what: "an IPv6 url with port 70000", column: "url", values: { url: "https://[::1]:70000/x" }, mentions: ["65535"] },
  { what: "a url with a port that is not a number", column: "url", values: { url: "https://example.com:https/x" }, mentions: ["65535"] },
  { what: "a url of 2049 characters", column: "url", values: { url: "https://example.com/" + "p".repeat(2029) }, mentions: ["2048"] },
  {
    what: "1,000,000 events",
    column: "events",
    values: {},
    sql: { events: "array(select 'contact.created' from generate_series(1, 1000000))" },
    mentions: ["100"],
  },
  { what: "101 events", column: "events", values: { events: Array(101).fill("contact.created") }, mentions: ["100"] },
  {
    what: "headers with a single 20 MB value",
    column: "headers",
    values: {},
    sql: { headers: "jsonb_build_object('X-Big', repeat('x', 20 * 1024 * 1024))" },
    mentions: ["8 KiB"],
  },
  { what: "21 headers", column: "headers", values: { headers: manyHeaders(21) }, mentions: ["20"] },
  { what: "a header value of 1025 bytes", column: "headers", values: { headers: json({ "X-Tenant": "v".repeat(1025) }) }, mentions: ["1024"] },
  {
    what: "headers of 10 KiB in all (each value under 1024 bytes)",
    column: "headers",
    values: { headers: manyHeaders(10, "v".repeat(1000)) },
    mentions: ["8 KiB"],
  },
  { what: "a header value with a non-ASCII character", column: "headers", values: { headers: json({ "X-Tenant": "café" }) }, mentions: ["ASCII"] },
  { what: "a header value with a tab", column: "headers", values: { headers: json({ "X-Tenant": "a\tb" }) }, mentions: ["ASCII"] },
  { what: "a header value with a control character", column: "headers", values: { headers: json({ "X-Tenant": "a\u0007b" }) }, mentions: ["ASCII"] },
  { what: "a header name of 101 characters", column: "headers", values: { headers: json({ ["X" + "h".repeat(100)]: "v" }) } },
  { what: "headers setting Upgrade", column: "headers", values: { headers: json({ Upgrade: "websocket" }) }, mentions: ["Upgrade"] },
  { what: "headers setting Keep-Alive", column: "headers", values: { headers: json({ "Keep-Alive": "timeout=5" }) }, mentions: ["Keep-Alive"] },
  { what: "headers setting TE", column: "headers", values: { headers: json({ TE: "trailers" }) }, mentions: ["TE"] },
  { what: "headers setting Expect", column: "headers", values: { headers: json({ Expect: "100-continue" }) }, mentions: ["Expect"] },
  { what: "headers setting Proxy-Connection", column: "headers", values: { headers: json({ "Proxy-Connection": "close" }) } },
  { what: "headers setting Trailer", column: "headers", values: { headers: json({ Trailer: "X-Sum" }) } },
  { what: "signature_header Host", column: "signature_header", values: { signature_header: "Host" }, mentions: ["Host"] },
  { what: "signature_header content-length", column: "signature_header", values: { signature_header: "content-length" }, mentions: ["content-length"] },
  { what: "signature_header Transfer-Encoding", column: "signature_header", values: { signature_header: "Transfer-Encoding" } },
  { what: "signature_header webhook-id", column: "signature_header", values: { signature_header: "webhook-id" } },
  { what: "signature_header X-Webhook-Timestamp", column: "signature_header", values: { signature_header: "X-Webhook-Timestamp" } },
  { what: "signature_header User-Agent", column: "signature_header", values: { signature_header: "User-Agent" } },
  { what: "a signature_header of 101 characters", column: "signature_header", values: { signature_header: "X" + "s".repeat(100) }, mentions: ["100"] },
  {
    what: "a filter over 4 KiB",
    column: "filter",
    values: { filter: json({ data: { notes: "f".repeat(4200) } }) },
    mentions: ["4 KiB"],
  },
  {
    what: "a secret of 513 characters (hmac-hex)",
    column: "secret",
    values: { signature_scheme: "hmac-hex", secret: "s".repeat(513) },
    mentions: ["512"],
  },
  { what: "a standard secret over 512 characters", column: "secret", values: { secret: whsec(400) }, mentions: ["512"] },
  { what: "an hmac-hex secret of 15 characters", column: "secret", values: { signature_scheme: "hmac-hex", secret: "s".repeat(15) }, mentions: ["16"] },
  { what: "a one-letter hmac-timestamped secret", column: "secret", values: { signature_scheme: "hmac-timestamped", secret: "a" }, mentions: ["16"] },
  { what: "a previous_secret of 513 characters", column: "previous_secret", values: { previous_secret: "p".repeat(513) }, mentions: ["512"] },
  { what: "a disabled_reason of 4097 characters", column: "disabled_reason", values: { disabled_reason: "r".repeat(4097) }, mentions: ["4096"] },
];

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
  for (const bad of [...badCases, ...boundCases]) {
    test(`refuses ${bad.what} (webhook_configurations.${bad.column})`, async () => {
      const before = await countRows();
      const error = await refusal(() => insert(bad.values, bad.sql));
      assertNamesColumn(error, bad.column, bad.mentions);
      assert.equal(await countRows(), before);
    });
  }
});

describe("updating a configuration to a bad value is refused, names the column and changes nothing", () => {
  for (const bad of [...badCases, ...boundCases]) {
    test(`refuses ${bad.what} (webhook_configurations.${bad.column})`, async () => {
      const row = await insert({});
      const before = await snapshot(row.id);
      const error = await refusal(() => update(row.id, bad.values, bad.sql));
      assertNamesColumn(error, bad.column, bad.mentions);
      assert.deepEqual(await snapshot(row.id), before);
    });
  }
});

test("a refusal of a 20 MB header value does not echo the value", async () => {
  const error = await refusal(() => insert({}, { headers: "jsonb_build_object('X-Big', repeat('x', 20 * 1024 * 1024))" }));
  assertNamesColumn(error, "headers", ["8 KiB"]);
  assert.ok(error.message.length < 200, `message of ${error.message.length} characters`);
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
  test("a minimal row gets the documented defaults", async () => {
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

  test("ports 1..65535 are accepted, IPv6 literals with and without a port too", async () => {
    for (const url of [
      "https://example.com:8443/x",
      "https://example.com:1/x",
      "https://example.com:65535",
      "https://[::1]:8080/x",
      "https://[::1]/x",
      "https://[2001:db8::1]:443/hooks?x=1:2",
    ]) {
      assert.equal((await insert({ url })).url, url);
    }
  });

  test("the upper bounds themselves are accepted", async () => {
    const eightKiB = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`X-H-${i + 1}`, "v".repeat(1024 - 5)])); // 8 × (5 + 1019) = 8192 bytes
    const row = await insert({
      name: "n".repeat(200),
      url: "https://example.com/" + "p".repeat(2028),
      events: Array(100).fill("contact.created"),
      headers: json(eightKiB),
      filter: json({ data: { notes: "f".repeat(4000) } }),
      signature_scheme: "hmac-hex",
      signature_header: "X" + "s".repeat(99),
      secret: "s".repeat(512),
      previous_secret: "p".repeat(512),
      disabled_reason: "r".repeat(4096),
    });
    assert.equal(row.name.length, 200);
    assert.equal(row.url.length, 2048);
    assert.equal(row.events.length, 100);
    assert.deepEqual(row.headers, eightKiB);
    assert.equal(row.secret.length, 512);
    const twenty = await insert({ headers: manyHeaders(20, "Bearer t0ken ~!@#$%^&*()_+{}|:<>?") });
    assert.equal(Object.keys(twenty.headers).length, 20);
  });

  test("a signature_header that only resembles a reserved one is accepted", async () => {
    for (const signature_header of ["X-Webhook-Signature", "X-Host", "Hosts", "X-Acme-Signature"]) {
      const row = await insert({ signature_scheme: "hmac-hex", signature_header });
      assert.equal(row.signature_header, signature_header);
    }
  });

  test("a url with a query string but no path is accepted", async () => {
    const row = await insert({ url: "https://hooks.example.com?token=abc" });
    assert.equal(row.url, "https://hooks.example.com?token=abc");
  });
});

test("a configuration stored with a short hmac secret before the 16-character minimum keeps working until its secret changes", async () => {
  await h.db.pool.query("alter table webhooks.webhook_configurations disable trigger refuse_weak_secret");
  let id: string;
  try {
    id = (await insert({ signature_scheme: "hmac-hex", secret: "short" })).id;
  } finally {
    await h.db.pool.query("alter table webhooks.webhook_configurations enable trigger refuse_weak_secret");
  }
  await h.db.pool.query("update webhooks.webhook_configurations set name = 'renamed', is_active = false where id = $1", [id]);
  await assert.rejects(
    h.db.pool.query("update webhooks.webhook_configurations set secret = 'still short' where id = $1", [id]),
    (error: { column?: string; message: string }) => error.column === "secret" && /16/.test(error.message),
  );
  const { rows } = await h.db.pool.query("select secret, name from webhooks.webhook_configurations where id = $1", [id]);
  assert.deepEqual(rows[0], { secret: "short", name: "renamed" });
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

describe("upgrading: configurations stored before the bounds are disabled (webhooks._disable_out_of_bounds_configurations)", () => {
  /** Stores a row the way an older release could have: with the validation trigger off. */
  async function insertUnchecked(overrides: Record<string, unknown>, expressions: Record<string, string> = {}) {
    await h.db.pool.query("alter table webhooks.webhook_configurations disable trigger validate");
    try {
      return await insert({ secret: whsec(), ...overrides }, expressions);
    } finally {
      await h.db.pool.query("alter table webhooks.webhook_configurations enable trigger validate");
    }
  }

  async function disableOutOfBounds(): Promise<number> {
    const { rows } = await h.db.pool.query<{ n: number }>("select webhooks._disable_out_of_bounds_configurations() as n");
    return rows[0]!.n;
  }

  interface Stored {
    is_active: boolean;
    disabled_reason: string | null;
    headers: Record<string, string>;
    signature_header: string;
    url: string;
    events: string[];
    filter: unknown;
    secret: string;
    failing_since: Date | null;
  }

  async function stored(id: string): Promise<Stored> {
    const { rows } = await h.db.pool.query<Stored>(
      `select is_active, disabled_reason, headers, signature_header, url, events, filter, secret, failing_since
         from webhooks.webhook_configurations where id = $1`,
      [id],
    );
    return rows[0]!;
  }

  test("each offending row is made inactive with a reason naming the column; headers and signature_header are reset; good rows are untouched", async () => {
    const good = await insert({ headers: json({ "X-Tenant": "acme" }) });
    const goodBefore = await snapshot(good.id);
    const bigHeaders = await insertUnchecked({}, { headers: "jsonb_build_object('X-Big', repeat('x', 9 * 1024))", failing_since: "now()" });
    const hostSignature = await insertUnchecked({ signature_scheme: "hmac-hex", signature_header: "Host", secret: "our shared secret" });
    const badPort = await insertUnchecked({ url: "https://example.com:99999/x" });
    const manyEvents = await insertUnchecked({}, { events: "array(select 'contact.created' from generate_series(1, 1000))" });
    const bigFilter = await insertUnchecked({ filter: json({ data: { notes: "f".repeat(5000) } }) });
    const longName = await insertUnchecked({ name: "n".repeat(300), headers: json({ Upgrade: "h2c" }) });

    assert.equal(await disableOutOfBounds(), 6);

    const headers = await stored(bigHeaders.id);
    assert.equal(headers.is_active, false);
    assert.match(String(headers.disabled_reason), /^disabled on upgrade: headers exceeds the limits .*8 KiB/);
    assert.deepEqual(headers.headers, {}, "a 9 KiB header is not left for a test send to carry");
    assert.equal(headers.failing_since, null);

    const signature = await stored(hostSignature.id);
    assert.equal(signature.is_active, false);
    assert.match(String(signature.disabled_reason), /signature_header/);
    assert.equal(signature.signature_header, "X-Webhook-Signature");

    const port = await stored(badPort.id);
    assert.equal(port.is_active, false);
    assert.match(String(port.disabled_reason), /^disabled on upgrade: url .*65535/);
    assert.equal(port.url, "https://example.com:99999/x", "kept for the tenant to correct");

    const events = await stored(manyEvents.id);
    assert.equal(events.is_active, false);
    assert.match(String(events.disabled_reason), /events exceeds the 100-entry limit/);

    const filter = await stored(bigFilter.id);
    assert.equal(filter.is_active, false);
    assert.match(String(filter.disabled_reason), /filter exceeds the 4 KiB limit/);

    const name = await stored(longName.id);
    assert.equal(name.is_active, false);
    assert.match(String(name.disabled_reason), /name exceeds the 200-character limit; headers exceeds/, "every offending column is named");
    assert.deepEqual(name.headers, {});

    assert.deepEqual(await snapshot(good.id), goodBefore);

    // The trigger is on again: the bounds still hold for new rows, and an offending row can only
    // be made active again once the value is corrected.
    assertNamesColumn(await refusal(() => insert({ signature_header: "Host" })), "signature_header");
    assertNamesColumn(await refusal(() => update(badPort.id, { is_active: true })), "url", ["65535"]);
    const fixed = await update(badPort.id, { is_active: true, url: "https://example.com:8443/x" });
    assert.equal(fixed.is_active, true);
    assert.equal(fixed.disabled_reason, null);
  });

  test("a stored secret over 512 characters can be replaced: it is not kept as previous_secret", async () => {
    const legacy = await insertUnchecked({ signature_scheme: "hmac-hex", secret: "s".repeat(600) });
    await disableOutOfBounds();
    const row = await stored(legacy.id);
    assert.equal(row.is_active, false);
    assert.match(String(row.disabled_reason), /secret exceeds the 512-character limit/);
    const replaced = await update(legacy.id, { secret: "a new shared secret", is_active: true });
    assert.equal(replaced.secret, "a new shared secret");
    assert.equal(replaced.previous_secret, null);
    assert.equal(replaced.is_active, true);
  });
});
